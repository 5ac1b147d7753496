"""Template thumbnails from a real run: the frontend's template browser shows `<workflow file name>.jpg` beside each
workflow as its card picture. This starts a real ComfyUI (the test setup's tiny Wan model and reward weights),
opens every workflow in headless Chromium, runs the ones whose model files the server has, and saves a close-up of
the workflow's last RewardLoop node (its chart, attempts or job status) as workflows/<name>.jpg.

    eval "$(bash tests/harness/setup_env.sh)"; $REWARDLOOP_PYTHON -P tests/harness/make_thumbnails.py [--new-frontend]

Takes a few minutes on a laptop CPU (the main demo and the retry loops really run).
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
runpy.run_path(str(HERE.parents[1] / "pack_import.py"))["import_pack"]()  # the API workflows' input images

from comfy_server import ComfyServer, env_from_setup, prepare_models  # noqa: E402
from pack_info import PACK_ROOT, api_workflow_files, workflow_files  # noqa: E402
from workflows import VIRTUAL_TYPES, load, ui_to_api  # noqa: E402

THUMB_SIZE = (480, 360)
SCRIPT = PACK_ROOT / "tests" / "browser" / "workflow_canvas.js"


def runnable(ui: dict, object_info: dict) -> bool:
    """Whether the server can run the workflow as saved: every choice widget holds one of the server's options
    (a model file the server lacks is not one)."""
    try:
        prompt = ui_to_api(ui, object_info)
    except KeyError:
        return False
    for node in prompt.values():
        spec = object_info[node["class_type"]]["input"]
        options = {**spec.get("required", {}), **spec.get("optional", {})}
        for name, value in node["inputs"].items():
            entry = options.get(name)
            if not entry or not isinstance(value, str):
                continue
            kind, opts = entry[0], (entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {})
            choices = kind if isinstance(kind, list) else opts.get("options") if kind == "COMBO" else None
            if choices is not None and value not in choices:
                return False
    return True


def closeup_node(ui: dict) -> int | None:
    """The workflow's last RewardLoop node: the report, the loop's close node or the training job."""
    ours = [n["id"] for n in ui["nodes"] if n["type"].startswith("RewardLoop") and n["type"] not in VIRTUAL_TYPES]
    return ours[-1] if ours else None


def render(server_url: str, plan: dict, out_dir: Path, env: dict) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_file = out_dir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    proc = subprocess.run(["node", str(SCRIPT), server_url + "/", str(out_dir), str(plan_file)], capture_output=True,
                          text=True, env=dict(os.environ, NODE_PATH=env["REWARDLOOP_NODE_MODULES"]), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the browser run failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fit(img, size=THUMB_SIZE):
    """`img` cropped to the thumbnail's aspect ratio around its centre, then scaled to it."""
    from PIL import Image

    w, h = img.size
    want = size[0] / size[1]
    cw, ch = (min(w, round(h * want)), min(h, round(w / want)))
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    return img.convert("RGB").crop(box).resize(size, Image.LANCZOS)


def api_thumbnails(env: dict, tmp: Path) -> None:
    """The "Paid API - ..." workflows run against the API stand-in (a server with its API nodes on, the frontend logged in
    with the stand-in's key, as tests/browser/test_api_ui.py does): their card picture is the canvas after the run."""
    from api_standin import StandInProcess
    from api_workflows import write_input_images
    from PIL import Image

    files = api_workflow_files()
    with StandInProcess(env["REWARDLOOP_PYTHON"]) as standin:
        standin.configure(pass_rate=1.0, polls=0, latency=0.0, frames=13)
        base = tmp / "api-base"
        prepare_models(base)
        write_input_images(base / "input")
        server = ComfyServer(env["REWARDLOOP_PYTHON"], env["REWARDLOOP_COMFYUI"], base, api_base=standin.url)
        server.start()
        try:
            proc = subprocess.run(["node", str(PACK_ROOT / "tests" / "browser" / "api_workflow.js"), server.url + "/",
                                   str(tmp / "api-shots"), standin.configure()["api_key"], standin.url,
                                   *map(str, files)], capture_output=True, text=True,
                                  env=dict(os.environ, NODE_PATH=env["REWARDLOOP_NODE_MODULES"]), timeout=1800)
        finally:
            server.stop()
    if proc.returncode != 0:
        raise SystemExit(f"the API workflows' browser run failed:\n{proc.stderr[-4000:]}")
    results = json.loads(proc.stdout.strip().splitlines()[-1])["results"]
    for path, result in zip(files, results):
        if result["outcome"] != "success":
            raise SystemExit(f"{path.name} did not run: {result['outcome']}")
        with Image.open(result["closeup"] or result["ran"]) as img:
            fit(img).save(path.with_suffix(".jpg"), quality=82, optimize=True)
        print(f"wrote {path.with_suffix('.jpg')} (ran against the API stand-in)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-frontend", action="store_true", help="use $REWARDLOOP_FRONTEND_NEW")
    parser.add_argument("--out", default=None, help="also keep the screenshots in this folder")
    parser.add_argument("--api-only", action="store_true", help="only the \"Paid API - ...\" workflows' pictures")
    args = parser.parse_args()
    from PIL import Image

    env = env_from_setup()
    if args.api_only:
        with tempfile.TemporaryDirectory() as tmp:
            api_thumbnails(env, Path(tmp))
        return
    extra = ("--front-end-root", env["REWARDLOOP_FRONTEND_NEW"]) if args.new_frontend else ()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        prepare_models(base)
        server = ComfyServer(env["REWARDLOOP_PYTHON"], env["REWARDLOOP_COMFYUI"], base, extra_args=extra)
        server.start()
        try:
            info = server.object_info()
            items = []
            for path in workflow_files():
                ui = load(path)
                items.append({"file": str(path), "run": runnable(ui, info), "closeup": closeup_node(ui)})
            shots = Path(args.out) if args.out else Path(tmp) / "shots"
            report = render(server.url, {"renderer": "classic", "workflows": items}, shots, env)
        finally:
            server.stop()
        for item, result in zip(items, report["workflows"]):
            if item["run"] and result["status"] != "success":
                raise SystemExit(f"{result['file']} did not run: {result['status']}")
            if not result["closeup"]:
                raise SystemExit(f"{result['file']}: no close-up was taken")
            target = Path(item["file"]).with_suffix(".jpg")
            with Image.open(result["closeup"]) as img:
                img.convert("RGB").resize(THUMB_SIZE, Image.LANCZOS).save(target, quality=82, optimize=True)
            print(f"wrote {target} ({'ran' if item['run'] else 'loaded'}, frontend {report['version']})")
        api_thumbnails(env, Path(tmp))


if __name__ == "__main__":
    main()
