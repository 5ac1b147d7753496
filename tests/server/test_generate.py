"""Keyframe generation and flow-guided refinement run through ComfyUI's real sampler and VAE on the tiny Wan."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.server
SIZE = 64


def model_nodes() -> dict:
    return {
        "m": {"class_type": "UNETLoader", "inputs": {"unet_name": "rl_tiny_wan21.safetensors", "weight_dtype": "default"}},
        "v": {"class_type": "VAELoader", "inputs": {"vae_name": "rl_tiny_wan21_vae.safetensors"}},
        "p": {"class_type": "RLTestTextConditioning", "inputs": {"text": "glass skyscraper, camera motion only", "tokens": 8}},
        "n": {"class_type": "RLTestTextConditioning", "inputs": {"text": "", "tokens": 8}},
    }


def sampler(seed: int, **extra) -> dict:
    return {"model": ["m", 0], "positive": ["p", 0], "negative": ["n", 0], "vae": ["v", 0], "seed": seed,
            "steps": 2, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", **extra}


def saved_frames(comfy, result, node: str) -> np.ndarray:
    """Frames saved losslessly by SaveImage (PNG, 8 bit)."""
    return np.stack([np.asarray(Image.open(comfy.output_path(i))) for i in result.outputs[node]["images"]])


def test_keyframes_with_fixed_anchors(comfy):
    seed = int(time.time()) % 100000
    prompt = model_nodes() | {
        "s": {"class_type": "RewardLoopProceduralScene", "inputs": {"width": SIZE, "height": SIZE, "length": 17,
                                                                  "seed": 3, "motion": "pan", "keyframe_every": 16}},
        "k": {"class_type": "RewardLoopKeyframeGenerator",
              "inputs": sampler(seed, width=SIZE, height=SIZE, length=17, keyframe_every=8, consistency="img2img_chain",
                                chain_denoise=0.5, start_image=["s", 1], end_image=["s", 1])},
        "out": {"class_type": "SaveImage", "inputs": {"images": ["k", 0], "filename_prefix": f"rl_test/kf_{seed}"}},
        "anchors": {"class_type": "SaveImage", "inputs": {"images": ["s", 1], "filename_prefix": f"rl_test/anchor_{seed}"}},
    }
    result = comfy.run(prompt)
    assert result.status == "success", result.error
    keyframes, anchor_frames = saved_frames(comfy, result, "out"), saved_frames(comfy, result, "anchors")
    assert keyframes.shape == (3, SIZE, SIZE, 3)          # positions 0, 8, 16
    assert np.array_equal(keyframes[0], anchor_frames[0])  # start anchor untouched
    assert np.array_equal(keyframes[-1], anchor_frames[-1])  # end anchor untouched
    assert not np.array_equal(keyframes[1], anchor_frames[0])  # the middle keyframe was generated


@pytest.mark.parametrize("mode", ["seed_per_keyframe", "anchor_blend"])
def test_batched_keyframe_modes(comfy, mode):
    seed = int(time.time()) % 100000
    prompt = model_nodes() | {
        "s": {"class_type": "RewardLoopProceduralScene", "inputs": {"width": SIZE, "height": SIZE, "length": 9,
                                                                  "seed": 5, "motion": "pan", "keyframe_every": 8}},
        "k": {"class_type": "RewardLoopKeyframeGenerator",
              "inputs": sampler(seed, width=SIZE, height=SIZE, length=25, keyframe_every=8, consistency=mode,
                                chain_denoise=0.7, start_image=["s", 1], end_image=["s", 1])},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["k", 0]}},
    }
    result = comfy.run(prompt)
    assert result.status == "success", result.error
    assert len(result.outputs["out"]["images"]) == 4  # 0, 8, 16, 24


def test_refine_keeps_keyframes_exact_and_changes_the_rest(comfy):
    seed = int(time.time()) % 100000
    prompt = model_nodes() | {
        "s": {"class_type": "RewardLoopProceduralScene", "inputs": {"width": SIZE, "height": SIZE, "length": 17,
                                                                  "seed": 11, "motion": "pan", "keyframe_every": 8}},
        "r": {"class_type": "RewardLoopFlowRefine",
              "inputs": sampler(seed, frames=["s", 0], keyframe_positions="[0, 8, 16]", strength=0.4)},
        "out": {"class_type": "SaveImage", "inputs": {"images": ["r", 0], "filename_prefix": f"rl_test/refined_{seed}"}},
        "orig": {"class_type": "SaveImage", "inputs": {"images": ["s", 0], "filename_prefix": f"rl_test/orig_{seed}"}},
    }
    result = comfy.run(prompt)
    assert result.status == "success", result.error
    refined, original = saved_frames(comfy, result, "out"), saved_frames(comfy, result, "orig")
    assert refined.shape == original.shape == (17, SIZE, SIZE, 3)
    for k in (0, 8, 16):
        assert np.array_equal(refined[k], original[k]), k
    assert not np.array_equal(refined[4], original[4])


def test_refine_rejects_bad_positions_and_server_survives(comfy):
    prompt = model_nodes() | {
        "s": {"class_type": "RewardLoopProceduralScene", "inputs": {"width": SIZE, "height": SIZE, "length": 9,
                                                                  "seed": 1, "motion": "pan", "keyframe_every": 8}},
        "r": {"class_type": "RewardLoopFlowRefine", "inputs": sampler(int(time.time()) % 1000, frames=["s", 0],
                                                                    keyframe_positions="[0, 99]", strength=0.4)},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["r", 0]}},
    }
    result = comfy.run(prompt)
    assert result.status == "error"
    assert "outside the clip" in result.error["exception_message"]
    assert comfy.get_json("/system_stats")
