"""README command (1), after setup: start ComfyUI with the pack, run the main example workflow headlessly
through /prompt, and collect its outputs (video + reward report) in a folder it prints.

    python tests/harness/run_demo.py [--workflow workflows/main_demo.json] [--out DIR] [--serve] [--port N]

--serve keeps the server up afterwards and prints the URL; the pack's workflows are also copied into the
server's user workflow folder, so they are one click away in the Workflows sidebar.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # harness helpers only

from comfy_server import ComfyServer, ServerError, env_from_setup  # noqa: E402
from pack_info import PACK_ROOT, declared_node_ids, workflow_files  # noqa: E402
from workflows import load, ui_to_api  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", default=str(PACK_ROOT / "workflows" / "main_demo.json"))
    parser.add_argument("--out", default=str(PACK_ROOT / "demo-output"))
    parser.add_argument("--serve", action="store_true", help="keep the server running and print its URL")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    env = env_from_setup()
    out = Path(args.out).resolve()
    base = out / "comfyui-base"
    base.mkdir(parents=True, exist_ok=True)
    server = ComfyServer(env["REWARDLOOP_PYTHON"], env["REWARDLOOP_COMFYUI"], base, port=args.port)
    t0 = time.time()
    server.start()
    try:
        print(f"[demo] ComfyUI {server.url} ready in {time.time() - t0:.1f} s (log: {server.log_path})")
        failures = server.import_failures()
        missing = [n for n in declared_node_ids() if n not in server.object_info()]
        if failures or missing:
            print("[demo] the pack did not load:", *failures, f"missing nodes: {missing}", sep="\n  ")
            return 1
        user_workflows = base / "user" / "default" / "workflows"
        user_workflows.mkdir(parents=True, exist_ok=True)
        for wf in workflow_files():
            shutil.copy(wf, user_workflows / wf.name)

        prompt = ui_to_api(load(args.workflow), server.object_info())
        t1 = time.time()
        result = server.run(prompt, timeout=args.timeout)
        if result.status != "success":
            print(f"[demo] workflow failed: {json.dumps(result.error, indent=1)[:4000]}")
            return 1
        print(f"[demo] {Path(args.workflow).name} ran in {time.time() - t1:.1f} s")
        collected = collect_outputs(server, result.outputs, out)
        summary = {"workflow": Path(args.workflow).name, "seconds": round(time.time() - t1, 2),
                   "files": [str(p) for p in collected], "ui": result.outputs}
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        for path in collected:
            print(f"[demo]   {path}")
        print(f"[demo] outputs in {out}")
        if args.serve:
            print(f"[demo] serving: open {server.url}/ in a browser (Workflows sidebar -> {Path(args.workflow).name});"
                  " Ctrl-C to stop")
            server.process.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    except ServerError as err:
        print(f"[demo] {err}")
        return 1
    finally:
        server.stop()


def collect_outputs(server: ComfyServer, outputs: dict, out: Path) -> list[Path]:
    """Copy every file the run produced (videos, images, JSON reports) next to summary.json."""
    collected = []
    for node_outputs in outputs.values():
        for key in ("images", "videos", "gifs", "files", "animated", "reports"):
            for item in node_outputs.get(key, []) or []:
                if not isinstance(item, dict) or "filename" not in item:
                    continue
                src = server.output_path(item)
                if src.exists():
                    dst = out / src.name
                    shutil.copy(src, dst)
                    collected.append(dst)
    return collected


if __name__ == "__main__":
    sys.exit(main())
