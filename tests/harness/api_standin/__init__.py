"""Local stand-in for the Comfy API's first/last-frame video providers (see service.py), plus a small client that
starts it as its own process and talks to its control endpoints (used by the server tests and the benchmark)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


class StandInProcess:
    """`python tests/harness/api_standin` in a subprocess on a free loopback port."""

    def __init__(self, python: str = sys.executable, **options):
        self.python, self.options = python, options
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> "StandInProcess":
        args = [self.python, str(HERE), "--port", "0"]
        for key, value in self.options.items():
            args += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("listening on "):
                self.url = line.split()[-1]
                return self
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"the API stand-in did not start: {line!r}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def _call(self, path: str, body=None):
        req = urllib.request.Request(self.url + path, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def configure(self, **changes) -> dict:
        return self._call("/_standin/config", changes)

    def reset(self) -> None:
        self._call("/_standin/reset", {})

    def log(self) -> list[dict]:
        return self._call("/_standin/log")

    def generations(self) -> list[dict]:
        return self._call("/_standin/generations")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
