"""The README's picture of the API workflow: the API stand-in and a ComfyUI with its API nodes on and the newest
frontend, the workflow loaded and queued from headless Chromium (logged in with the stand-in's key), and the
canvas after the run scaled down into docs/images/.

    eval "$(bash tests/harness/setup_env.sh)"; $REWARDLOOP_PYTHON -P tests/harness/api_screenshot.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from api_standin import StandInProcess  # noqa: E402
from api_standin.render import draw_defect  # noqa: E402
from comfy_server import ComfyServer, env_from_setup  # noqa: E402
from pack_info import PACK_ROOT  # noqa: E402
from workflow_specs import template_path  # noqa: E402

WORKFLOW = "api_first_last_gated"
OUT = PACK_ROOT / "docs" / "images" / f"{WORKFLOW}.png"


def main() -> int:
    import importlib.util

    spec = importlib.util.spec_from_file_location("rewardloop", PACK_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(PACK_ROOT)])
    sys.modules["rewardloop"] = pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    from api_workflows import write_input_images
    from PIL import Image

    env = env_from_setup()
    # a stand-in seed whose first Luma generation has a defect and the second none: the picture shows a retry
    seed = next(s for s in range(1000) if draw_defect(0.4, "luma", f"request:{s}:1") and
                draw_defect(0.4, "luma", f"request:{s}:2") is None)
    with tempfile.TemporaryDirectory() as tmp, StandInProcess(env["REWARDLOOP_PYTHON"], seed=seed) as standin:
        base = Path(tmp)
        write_input_images(base / "input")
        extra = ("--front-end-root", env["REWARDLOOP_FRONTEND_NEW"]) if env.get("REWARDLOOP_FRONTEND_NEW") else ()
        server = ComfyServer(env["REWARDLOOP_PYTHON"], env["REWARDLOOP_COMFYUI"], base, api_base=standin.url,
                             extra_args=extra)
        subprocess.run([env["REWARDLOOP_PYTHON"], str(PACK_ROOT / "install.py"), "--weights", "--models-dir",
                        str(base / "models" / "rewardloop")], check=True, capture_output=True)
        server.start()
        try:
            proc = subprocess.run(["node", str(PACK_ROOT / "tests" / "browser" / "api_workflow.js"), server.url + "/",
                                   str(base / "shots"), standin.configure()["api_key"], standin.url,
                                   str(template_path(WORKFLOW))], capture_output=True, text=True,
                                  env=dict(os.environ, NODE_PATH=env["REWARDLOOP_NODE_MODULES"]), timeout=900)
        finally:
            server.stop()
        if proc.returncode != 0:
            print(proc.stderr[-4000:])
            return 1
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        [result] = report["results"]
        print(json.dumps(result, indent=1))
        if result["outcome"] != "success":
            return 1
        with Image.open(result["ran"]) as img:
            img = img.convert("RGB")
            img.thumbnail((1600, 1000), Image.LANCZOS)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
