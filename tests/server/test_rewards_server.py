"""Reward nodes inside a real ComfyUI server, where every node runs under torch.inference_mode(): FVD-lite and the
Composite with FVD-lite weighted, given a reference clip, give the core function's value computed outside the
server; bad input ends in an error that names the input and its rule (with a readable error type), and the server
keeps serving."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.server
SIZE, LENGTH = 64, 33
WEIGHTS = Path(os.environ.get("REWARDLOOP_WEIGHTS_CACHE", Path.home() / ".cache" / "comfyui-rewardloop" / "weights"))


def _fresh() -> int:
    """A new value per run: identical prompts are served from ComfyUI's cache without running."""
    return int(time.time() * 1000) % 1_000_000


def scene(seed: int, motion: str = "pan") -> dict:
    return {"class_type": "RewardLoopProceduralScene",
            "inputs": {"width": SIZE, "height": SIZE, "length": LENGTH, "seed": seed, "motion": motion,
                       "keyframe_every": 8}}


def preview(source: list) -> dict:
    return {"class_type": "PreviewAny", "inputs": {"source": source}}


def weights_off() -> dict:
    from rewardloop.rewards import SCORERS

    return {f"w_{name}": 0.0 for name in SCORERS}


def test_fvd_lite_and_composite_with_a_reference_match_the_core(comfy):
    import torch

    from rewardloop.motion import scene as core_scene
    from rewardloop.rewards import Clip, RewardRuntime, calibration, composite, score

    seed = _fresh() % 1000
    prompt = {
        "gen": scene(seed), "ref": scene(seed + 1, "dolly"),
        "fvd": {"class_type": "RewardLoopFVDLite",
                "inputs": {"frames": ["gen", 0], "reference": ["ref", 0], "feature": "pool", "max_crops": 2,
                           "device": "cpu"}},
        "fvd_logits": {"class_type": "RewardLoopFVDLite",
                       "inputs": {"frames": ["gen", 0], "reference": ["ref", 0], "feature": "logits", "max_crops": 2,
                                  "device": "cpu"}},
        "comp": {"class_type": "RewardLoopRewardComposite",
                 "inputs": {"frames": ["gen", 0], "reference": ["ref", 0],
                            "options_json": '{"fvd_lite": {"max_crops": 2}}', "flow_method": "dis_fast",
                            "analysis_size": 256, "device": "cpu",
                            **weights_off(), "w_fvd_lite": 1.0, "w_keyframe_ssim": 0.0}},
        "fvd_out": preview(["fvd", 2]), "fvd_logits_out": preview(["fvd_logits", 2]), "comp_out": preview(["comp", 2]),
    }
    result = comfy.run(prompt)
    assert result.status == "success", result.error
    fvd = json.loads(result.outputs["fvd_out"]["text"][0])
    comp = json.loads(result.outputs["comp_out"]["text"][0])

    times = core_scene.frame_times(LENGTH)
    frames = core_scene.render_scene(times, SIZE, SIZE, seed, "pan")
    reference = core_scene.render_scene(times, SIZE, SIZE, seed + 1, "dolly")
    clip = Clip(frames, reference=reference, runtime=RewardRuntime([WEIGHTS]))
    expected = score("fvd_lite", clip, max_crops=2)
    assert expected.applicable and expected.details["reference_crops"] == 2
    value = fvd["scores"]["fvd_lite"]["value"]
    assert value == pytest.approx(expected.value, rel=1e-6, abs=1e-9)
    assert fvd["scores"]["fvd_lite"]["per_item"] == pytest.approx(expected.per_item.tolist(), rel=1e-5, abs=1e-9)
    logits = json.loads(result.outputs["fvd_logits_out"]["text"][0])["scores"]["fvd_lite"]
    expected_logits = score("fvd_lite", clip, max_crops=2, feature="logits")
    assert logits["details"]["feature"] == "logits" and expected.details["feature"] == "pool"
    assert logits["value"] == pytest.approx(expected_logits.value, rel=1e-6, abs=1e-9)
    agg, _ = composite(clip, {"fvd_lite": 1.0}, {"fvd_lite": {"max_crops": 2}})
    assert comp["aggregate"]["details"]["included"] == ["fvd_lite"]
    calibrated = calibration.get("fvd_lite")(value)  # the composite's 0..1 value of FVD-lite's raw one
    assert comp["aggregate"]["value"] == pytest.approx(agg.value, rel=1e-6, abs=1e-9) == pytest.approx(calibrated)
    assert comp["aggregate"]["details"]["components"]["fvd_lite"]["raw"] == pytest.approx(value)
    assert torch.equal(frames, core_scene.render_scene(times, SIZE, SIZE, seed, "pan"))


def test_a_missing_weight_reads_as_a_rewardloop_error(comfy):
    """ComfyUI prints an error's type as `<module>.<class>`; the pack is imported under its folder path, which
    must not show up as the type of our errors."""
    prompt = {"gen": scene(_fresh() % 1000),
              "clip": {"class_type": "RewardLoopCLIPScore",
                       "inputs": {"frames": ["gen", 0], "prompt": "a city", "num_samples": 2,
                                  "weights": "ViT-B-32-quickgelu.safetensors", "device": "cpu"}},
              "out": preview(["clip", 2])}
    result = comfy.run(prompt)
    assert result.status == "error"
    assert result.error["exception_type"] == "RewardLoop.WeightNotFound"
    message = result.error["exception_message"]
    assert "ViT-B-32-quickgelu.safetensors" in message and "rewardloop" in message and "Download" in message
    assert comfy.get_json("/system_stats")


@pytest.mark.parametrize("node, match", [
    ({"class_type": "RewardLoopRewardComposite",
      "inputs": {"frames": ["gen", 0], "options_json": '{"temporal_lpips": {"nett": "vgg"}}', "flow_method": "dis_fast",
                 "analysis_size": 256, "device": "cpu", **{"w_temporal_lpips": 1.0}}},
     "options_json: temporal_lpips has no option 'nett'; its options are: net, min_valid"),
    ({"class_type": "RewardLoopInbetween",
      "inputs": {"keyframes": ["gen", 1], "frames_per_gap": 3, "method": "flow", "flow_method": "dis_fast",
                 "keyframe_positions": "[0, 1000000000000]"}},
     "keyframe_positions: frame 1000000000000 is beyond the longest clip the pack makes"),
])
def test_bad_input_is_named_and_the_server_keeps_serving(comfy, node, match):
    node = json.loads(json.dumps(node))
    if node["class_type"] == "RewardLoopRewardComposite":
        node["inputs"] = {**weights_off(), **node["inputs"]}
    result = comfy.run({"gen": scene(_fresh() % 1000), "bad": node, "out": preview(["bad", 0])})
    assert result.status == "error"
    assert result.error["exception_type"] == "ValueError" and match in result.error["exception_message"]
    assert comfy.run({"gen": scene(_fresh() % 1000 + 1000), "out": preview(["gen", 2])}).status == "success"
