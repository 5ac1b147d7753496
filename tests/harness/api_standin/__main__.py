"""Run the API stand-in by hand (demos) or from the tests:

    python tests/harness/api_standin --port 8190 --pass-rate 0.4 [--seed 0] [--latency 0] [--polls 0]
        [--fail-on 2,5] [--fail-rate 0] [--fail-mode task|http] [--api-key KEY] [--frames 13] [--fps 24]
        [--log requests.jsonl]

then start ComfyUI with `--comfy-api-base http://127.0.0.1:8190` (and without --disable-api-nodes) and log in
with the same API key. It listens on 127.0.0.1 only and prints one line `listening on URL` when ready.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/harness, so the package imports by name

from api_standin.service import FAIL_MODES, Settings, serve  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="api_standin", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one)")
    p.add_argument("--pass-rate", type=float, default=0.4, help="probability that a generation has no defect")
    p.add_argument("--seed", type=int, default=0, help="the stand-in's own seed (Luma's draws)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds each create request takes")
    p.add_argument("--polls", type=int, default=0, help="status polls answered 'in progress' before done")
    p.add_argument("--fail-on", default="", help="comma-separated generation numbers (per provider) that fail")
    p.add_argument("--fail-rate", type=float, default=0.0, help="probability that a generation fails")
    p.add_argument("--fail-mode", choices=FAIL_MODES, default="task")
    p.add_argument("--api-key", default=Settings.api_key)
    p.add_argument("--frames", type=int, default=Settings.frames)
    p.add_argument("--fps", type=float, default=Settings.fps)
    p.add_argument("--max-side", type=int, default=Settings.max_side)
    p.add_argument("--log", help="also append every request as a JSON line to this file")
    a = p.parse_args(argv)
    settings = Settings(pass_rate=a.pass_rate, seed=a.seed, latency=a.latency, polls=a.polls,
                        fail_on=[int(x) for x in a.fail_on.split(",") if x.strip()], fail_rate=a.fail_rate,
                        fail_mode=a.fail_mode, api_key=a.api_key, frames=a.frames, fps=a.fps, max_side=a.max_side)
    httpd, _ = serve(a.port, settings, a.log)
    print(f"listening on http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
