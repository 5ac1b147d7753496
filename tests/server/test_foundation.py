"""The pack inside a real ComfyUI server: registration, execution through /prompt + websocket + /history,
bad input that leaves the server running, and a broken node module that fails loudly."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from comfy_server import start_server
from pack_info import PACK_ROOT, declared_node_ids

pytestmark = pytest.mark.server


def scene_prompt(seed: int, frames: int = 9, size: int = 64) -> dict:
    return {
        "1": {"class_type": "RewardLoopProceduralScene",
              "inputs": {"width": size, "height": size, "length": frames, "seed": seed, "motion": "pan",
                         "keyframe_every": 4}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": f"rl_test/scene_{seed}",
                                                   "format": "mp4", "codec": "h264"}},
    }


def test_every_pack_node_is_served_with_its_category(comfy):
    info = comfy.object_info()
    ids = declared_node_ids()
    assert ids, "the pack declares no nodes"
    for node_id in ids:
        entry = info[node_id]
        assert entry["category"].startswith("RewardLoop/"), (node_id, entry["category"])
        assert "ComfyUI-RewardLoop" in entry["python_module"], entry["python_module"]
    assert "/extensions/ComfyUI-RewardLoop/rewardloop.js" in comfy.get_json("/extensions")


def test_scene_to_video_runs_in_the_executor(comfy):
    seed = int(time.time()) % 100000  # a new value each session: identical prompts are served from cache
    result = comfy.run(scene_prompt(seed))
    assert result.status == "success", result.error
    executed = result.executed_nodes()
    assert executed[:1] == ["1"] and "3" in executed, executed
    assert result.events("execution_start") and result.events("execution_success")
    video = result.outputs["3"]["images"][0]
    path = comfy.output_path(video)
    assert path.suffix == ".mp4" and path.stat().st_size > 1000
    import av  # installed with ComfyUI

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (64, 64, 3)
    # the scene moves: consecutive frames differ, and the video is not blank
    assert abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 2
    assert frames[0].std() > 10


def test_same_prompt_again_is_cached(comfy):
    prompt = scene_prompt(seed=4242)
    first = comfy.run(prompt)
    assert first.status == "success", first.error
    second = comfy.run(prompt)
    assert second.status == "success"
    assert "1" not in second.executed_nodes(), "an identical prompt must come from ComfyUI's cache"


def test_invalid_input_is_rejected_and_server_keeps_running(comfy):
    bad = scene_prompt(seed=1)
    bad["1"]["inputs"]["width"] = -64
    status, answer = comfy.post_json("/prompt", {"prompt": bad, "client_id": comfy.client_id})
    assert status == 400
    errors = json.dumps(answer.get("node_errors", {}))
    assert "width" in errors, answer
    assert comfy.get_json("/system_stats")["system"]["comfyui_version"]
    # and a valid prompt still runs afterwards
    assert comfy.run(scene_prompt(seed=int(time.time()) % 1000 + 7)).status == "success"


def test_broken_node_module_fails_loudly(tmp_path):
    """A syntax error in one node module must be visible: import failure in the log and the pack's nodes
    missing from /object_info (the session fixture turns either into a failed suite)."""
    broken = tmp_path / "ComfyUI-RewardLoop"
    shutil.copytree(PACK_ROOT, broken, ignore=shutil.ignore_patterns("tests", "test-artifacts", "demo-output",
                                                                      ".git", "__pycache__"))
    module = next(iter(sorted((broken / "nodes").glob("[a-z]*.py"))))
    module.write_text(module.read_text() + "\nthis is not python\n")
    server = start_server(tmp_path / "base", pack_root=broken)
    try:
        assert server.import_failures(), server.log_tail(40)
        info = server.object_info()
        assert not [n for n in declared_node_ids() if n in info]
    finally:
        server.stop()


def test_pack_install_leaves_torch_untouched(tmp_path):
    """requirements.txt + install.py (what ComfyUI-Manager runs) into a ComfyUI venv keep torch as it was:
    recorded around the real install by setup_env.sh, and re-checked with pip's resolver, no pin file."""
    env_dir = Path(os.environ["REWARDLOOP_ENV_DIR"])
    before = (env_dir / "torch_before.txt").read_text().split()
    after = (env_dir / "torch_after.txt").read_text().split()
    assert before == after, (before, after)

    report = tmp_path / "report.json"
    env = dict(os.environ, PIP_CONSTRAINT="", PIP_NO_INPUT="1")
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                    "-r", str(PACK_ROOT / "requirements.txt")], check=True, env=env, capture_output=True)
    would_install = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert not would_install & {"torch", "torchvision", "torchaudio", "numpy", "pillow"}, would_install

    plan = subprocess.run([sys.executable, str(PACK_ROOT / "install.py"), "--dry-run"], check=True,
                          capture_output=True, text=True).stdout
    assert "facenet" not in plan or "--no-deps" in plan
    requirements = (PACK_ROOT / "requirements.txt").read_text().lower().splitlines()
    assert not [l for l in requirements if l.strip().startswith(("torch", "torchvision", "facenet"))]


def test_tiny_wan_samples_through_comfyui(comfy):
    """The tiny real models (tests/harness/tiny_models.py) load with core loaders and sample with core KSampler:
    the path every generator test builds on."""
    from tiny_models import sampler_inputs

    prompt = {
        **sampler_inputs("glass skyscraper, sunset", 64, 9),
        "sample": {"class_type": "KSampler", "inputs": {"model": ["unet", 0], "positive": ["pos", 0],
                                                       "negative": ["neg", 0], "latent_image": ["latent", 0],
                                                       "seed": int(time.time()) % 10000, "steps": 2, "cfg": 3.0,
                                                       "sampler_name": "euler", "scheduler": "simple",
                                                       "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["vae", 0]}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}},
    }
    result = comfy.run(prompt, timeout=300)
    assert result.status == "success", result.error
    assert len(result.outputs["preview"]["images"]) == 9  # Wan: 9 frames <-> 3 latent frames
    assert any(m["type"] == "progress" for m in result.messages)


def test_main_demo_workflow_runs_end_to_end(comfy):
    """The shared main example (UI format, converted as the demo command does) runs in the real server and
    writes its video and reward report."""
    from workflow_specs import template_path
    from workflows import load, ui_to_api

    prompt = ui_to_api(load(template_path("main_demo")), comfy.object_info())
    scene = next(k for k, v in prompt.items() if v["class_type"] == "RewardLoopProceduralScene")
    prompt[scene]["inputs"]["seed"] = int(time.time()) % 100000  # fresh inputs: no cache hit across sessions
    result = comfy.run(prompt, timeout=600)
    assert result.status == "success", result.error
    by_type = {v["class_type"]: k for k, v in prompt.items()}
    video = comfy.output_path(result.outputs[by_type["SaveVideo"]]["images"][0])
    assert video.stat().st_size > 1000
    report_ui = result.outputs[by_type["RewardLoopRewardReport"]]
    assert report_ui["rewardloop_chart"], report_ui.keys()
    chart_png = comfy.output_path(report_ui["rewardloop_files"][0])
    report = json.loads(chart_png.with_suffix(".json").read_text())
    assert report["frames"] == 33
    assert 0.0 < report["aggregate"]["value"] <= 1.0
    assert report["scores"]["keyframe_ssim"]["value"] == pytest.approx(1.0)  # inbetweening keeps the anchors exact
