"""Motion nodes inside a real ComfyUI server: Inbetween, Flow Visualize, Window Split/Merge and Anchor Frames run
through /prompt; keyframes come out bit-exact (both sides saved by SaveImage as 8-bit PNG); bad input ends in
execution_error with a message that says what to fix, and the server keeps serving. Last, the "keyframes then
inbetween" graph (workflows/keyframes_then_inbetween.json) on the tiny Wan 2.1 model."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.server
SIZE = 96


def _fresh() -> int:
    """A new value per run: identical prompts are served from ComfyUI's cache without running."""
    return int(time.time() * 1000) % 1_000_000


def saved(comfy, result, node: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(comfy.output_path(i))) for i in result.outputs[node]["images"]])


def scene(seed: int, length: int = 17, every: int = 4, size: int = SIZE) -> dict:
    return {"class_type": "RewardLoopProceduralScene",
            "inputs": {"width": size, "height": size, "length": length, "seed": seed, "motion": "pan",
                       "keyframe_every": every}}


def save(images: list, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": f"rl_test/{prefix}"}}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255.0 ** 2 / mse))


def test_inbetween_and_flow_visualize(comfy):
    seed = _fresh()
    prompt = {
        "s": scene(3),  # fixed content for the quality bound; the fresh file prefixes make the savers run
        "ib": {"class_type": "RewardLoopInbetween",
               "inputs": {"keyframes": ["s", 1], "frames_per_gap": 3, "method": "flow", "flow_method": "dis_fine",
                          "keyframe_positions": ["s", 2]}},
        "ib2": {"class_type": "RewardLoopInbetween",  # every optional motion input set away from its default
                "inputs": {"keyframes": ["s", 1], "frames_per_gap": 3, "method": "flow", "flow_method": "dis_fine",
                           "keyframe_positions": ["s", 2], "scene_cuts": "crossfade", "motion": "linear",
                           "flow_init": "none", "temporal_mix": 0.3}},
        "fv": {"class_type": "RewardLoopFlowVisualize",
               "inputs": {"frames": ["ib", 0], "flow_method": "dis_medium", "max_magnitude": 0.0}},
        "occ": {"class_type": "MaskToImage", "inputs": {"mask": ["fv", 1]}},
        "out": save(["ib", 0], f"ib_{seed}"),
        "out2": save(["ib2", 0], f"ib2_{seed}"),
        "keys": save(["s", 1], f"ibkeys_{seed}"),
        "truth": save(["s", 0], f"ibtruth_{seed}"),
        "flow": save(["fv", 0], f"flowvis_{seed}"),
        "occl": save(["occ", 0], f"occl_{seed}"),
    }
    result = comfy.run(prompt)
    assert result.status == "success", result.error
    out, keys, truth = saved(comfy, result, "out"), saved(comfy, result, "keys"), saved(comfy, result, "truth")
    assert out.shape == truth.shape == (17, SIZE, SIZE, 3) and out.dtype == np.uint8
    assert np.array_equal(out[::4], keys)  # keyframes bit-exact
    rebuilt = [i for i in range(17) if i % 4]
    # Flow inbetweening rebuilds the pan (measured 27.5 dB at 96x96, scene seed 3), far above holding the
    # nearest keyframe (20.4 dB).
    held = np.stack([keys[min(round(i / 4), 4)] for i in rebuilt])
    assert psnr(out[rebuilt], truth[rebuilt]) > 25.5
    assert psnr(out[rebuilt], truth[rebuilt]) > psnr(held, truth[rebuilt]) + 5.0
    # The options reach the core: other frames, still a flow-quality rebuild, keyframes exact.
    out2 = saved(comfy, result, "out2")
    assert np.array_equal(out2[::4], keys) and not np.array_equal(out2, out)
    assert psnr(out2[rebuilt], truth[rebuilt]) > psnr(held, truth[rebuilt]) + 4.0

    flow, occl = saved(comfy, result, "flow"), saved(comfy, result, "occl")
    assert flow.shape == (16, SIZE, SIZE, 3) and occl.shape[:3] == (16, SIZE, SIZE)
    assert flow.std() > 5  # the pan shows as colour, not a blank image
    assert set(np.unique(occl)) <= {0, 255}


def test_anchor_frames_windows_roundtrip_and_per_window_processing(comfy):
    seed = _fresh()
    first = {"class_type": "ImageFromBatch", "inputs": {"image": ["s", 0], "batch_index": 0, "length": 1}}
    mid = {"class_type": "ImageFromBatch", "inputs": {"image": ["s", 0], "batch_index": 8, "length": 1}}
    last = {"class_type": "ImageFromBatch", "inputs": {"image": ["s", 0], "batch_index": 16, "length": 1}}
    prompt = {
        "s": scene(seed % 1000 + 1, every=8),
        "a": first, "m": mid, "e": last,
        "anchors": {"class_type": "RewardLoopAnchorFrames",
                    "inputs": {"start_frame": ["a", 0], "end_frame": ["e", 0], "middle_keyframes": ["m", 0],
                               "length": 17}},
        "ib": {"class_type": "RewardLoopInbetween",
               "inputs": {"keyframes": ["anchors", 0], "frames_per_gap": 1, "method": "flow",
                          "flow_method": "dis_fast", "scene_cuts": "hold", "keyframe_positions": ["anchors", 1]}},
        "split": {"class_type": "RewardLoopWindowSplit", "inputs": {"frames": ["ib", 0], "window": 8, "overlap": 3}},
        "inv": {"class_type": "ImageInvert", "inputs": {"image": ["split", 1]}},  # runs once per window
        "merge": {"class_type": "RewardLoopWindowMerge", "inputs": {"windows": ["split", 0]}},
        "merge_inv": {"class_type": "RewardLoopWindowMerge", "inputs": {"windows": ["split", 0], "processed": ["inv", 0]}},
        "ranges": {"class_type": "PreviewAny", "inputs": {"source": ["split", 2]}},
        "positions": {"class_type": "PreviewAny", "inputs": {"source": ["anchors", 1]}},
        "clip": save(["ib", 0], f"anch_{seed}"),
        "keys": save(["anchors", 0], f"anchkeys_{seed}"),
        "merged": save(["merge", 0], f"merged_{seed}"),
        "merged_inv": save(["merge_inv", 0], f"mergedinv_{seed}"),
    }
    result = comfy.run(prompt)
    assert result.status == "success", result.error
    assert json.loads(result.outputs["positions"]["text"][0]) == [0, 8, 16]
    assert json.loads(result.outputs["ranges"]["text"][0]) == [[0, 8], [5, 13], [9, 17]]
    clip, keys = saved(comfy, result, "clip"), saved(comfy, result, "keys")
    assert clip.shape == (17, SIZE, SIZE, 3) and keys.shape == (3, SIZE, SIZE, 3)
    assert np.array_equal(clip[[0, 8, 16]], keys)
    merged, merged_inv = saved(comfy, result, "merged"), saved(comfy, result, "merged_inv")
    # merge of the split's own windows is the clip again (float round trip to 1e-6: PNGs within one level)
    assert np.abs(merged.astype(int) - clip.astype(int)).max() <= 1
    # every window inverted, then merged with crossfaded seams = the whole clip inverted
    assert np.abs(merged_inv.astype(int) - (255 - clip.astype(int))).max() <= 1


def _expect_error(comfy, prompt: dict, *fragments: str) -> None:
    result = comfy.run(prompt)
    assert result.status == "error", result.status
    assert result.events("execution_error"), "no execution_error event"
    message = result.error["exception_message"]
    for fragment in fragments:
        assert fragment in message, message
    assert result.error["exception_type"].endswith("ValueError"), result.error


def test_bad_input_is_a_clear_error_and_the_server_keeps_running(comfy):
    seed = _fresh() % 1000
    # keyframes of different sizes (start 96x96, end 64x64)
    small = scene(seed, length=9, size=64)
    _expect_error(comfy, {
        "s": scene(seed, length=9), "t": small,
        "a": {"class_type": "ImageFromBatch", "inputs": {"image": ["s", 0], "batch_index": 0, "length": 1}},
        "e": {"class_type": "ImageFromBatch", "inputs": {"image": ["t", 0], "batch_index": 8, "length": 1}},
        "anchors": {"class_type": "RewardLoopAnchorFrames",
                    "inputs": {"start_frame": ["a", 0], "end_frame": ["e", 0], "length": 9}},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["anchors", 0]}},
    }, "differ in size", "96x96", "64x64")

    # a single keyframe
    _expect_error(comfy, {
        "s": scene(seed + 1, length=9),
        "one": {"class_type": "ImageFromBatch", "inputs": {"image": ["s", 0], "batch_index": 0, "length": 1}},
        "ib": {"class_type": "RewardLoopInbetween",
               "inputs": {"keyframes": ["one", 0], "frames_per_gap": 3, "method": "flow", "flow_method": "dis_fast"}},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["ib", 0]}},
    }, "at least 2 keyframes")

    # positions that do not match the keyframes
    _expect_error(comfy, {
        "s": scene(seed + 2, length=9),
        "pos": {"class_type": "PrimitiveString", "inputs": {"value": "[0, 4]"}},
        "ib": {"class_type": "RewardLoopInbetween",
               "inputs": {"keyframes": ["s", 1], "frames_per_gap": 3, "method": "flow", "flow_method": "dis_fast",
                          "keyframe_positions": ["pos", 0]}},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["ib", 0]}},
    }, "2 keyframe positions for 3 keyframes")

    # zero frames per gap never reaches the node: prompt validation answers 400 for that input
    status, answer = comfy.post_json("/prompt", {"client_id": comfy.client_id, "prompt": {
        "s": scene(seed + 3, length=9),
        "ib": {"class_type": "RewardLoopInbetween",
               "inputs": {"keyframes": ["s", 1], "frames_per_gap": 0, "method": "flow", "flow_method": "dis_fast"}},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["ib", 0]}},
    }})
    assert status == 400 and "frames_per_gap" in json.dumps(answer.get("node_errors", {})), answer

    # the server is alive and still runs a good graph
    assert comfy.get_json("/system_stats")["system"]["comfyui_version"]
    ok = comfy.run({
        "s": scene(seed + 4, length=9),
        "ib": {"class_type": "RewardLoopInbetween",
               "inputs": {"keyframes": ["s", 1], "frames_per_gap": 3, "method": "crossfade", "flow_method": "dis_fast"}},
        "out": {"class_type": "PreviewImage", "inputs": {"images": ["ib", 0]}},
    })
    assert ok.status == "success", ok.error


def test_keyframes_then_inbetween_graph_on_the_tiny_wan(comfy):
    """The graph of workflows/keyframes_then_inbetween.json (Keyframe Generator -> Inbetween -> Flow-guided Refine
    at CFG 3 -> CreateVideo -> SaveVideo) with the tiny Wan 2.1 model and test conditioning, 17 frames of 64x64,
    keyframe every 8."""
    seed = _fresh()
    size, length = 64, 17
    sampler = {"model": ["m", 0], "positive": ["p", 0], "negative": ["n", 0], "vae": ["v", 0], "steps": 2,
               "sampler_name": "euler", "scheduler": "simple"}
    prompt = {
        "m": {"class_type": "UNETLoader", "inputs": {"unet_name": "rl_tiny_wan21.safetensors", "weight_dtype": "default"}},
        "v": {"class_type": "VAELoader", "inputs": {"vae_name": "rl_tiny_wan21_vae.safetensors"}},
        "p": {"class_type": "RLTestTextConditioning", "inputs": {"text": "glass skyscraper, slow camera pan", "tokens": 8}},
        "n": {"class_type": "RLTestTextConditioning", "inputs": {"text": "blurry, flicker", "tokens": 8}},
        "kf": {"class_type": "RewardLoopKeyframeGenerator",
               "inputs": {**sampler, "seed": seed, "cfg": 7.0, "width": size, "height": size, "length": length,
                          "keyframe_every": 8, "consistency": "img2img_chain", "chain_denoise": 0.6}},
        "ib": {"class_type": "RewardLoopInbetween",
               "inputs": {"keyframes": ["kf", 0], "frames_per_gap": 7, "method": "flow", "flow_method": "dis_fine",
                          "keyframe_positions": ["kf", 1]}},
        "rf": {"class_type": "RewardLoopFlowRefine",
               "inputs": {**sampler, "seed": seed + 1, "cfg": 3.0, "frames": ["ib", 0], "keyframe_positions": ["kf", 1],
                          "strength": 0.35}},
        "video": {"class_type": "CreateVideo", "inputs": {"images": ["rf", 0], "fps": 16.0}},
        "save": {"class_type": "SaveVideo", "inputs": {"video": ["video", 0], "filename_prefix": f"rl_test/kti_{seed}",
                                                      "format": "mp4", "codec": "h264"}},
        "frames": save(["rf", 0], f"kti_frames_{seed}"),
        "keys": save(["kf", 0], f"kti_keys_{seed}"),
        "positions": {"class_type": "PreviewAny", "inputs": {"source": ["kf", 1]}},
    }
    result = comfy.run(prompt, timeout=600)
    assert result.status == "success", result.error
    positions = json.loads(result.outputs["positions"]["text"][0])
    assert positions == [0, 8, 16]
    frames, keys = saved(comfy, result, "frames"), saved(comfy, result, "keys")
    assert frames.shape == (length, size, size, 3) and keys.shape == (3, size, size, 3)
    assert np.array_equal(frames[positions], keys)  # generated keyframes survive inbetween + refine bit-exact
    assert frames[1:8].std() > 1  # the in-between frames hold an image, not a constant

    import av  # installed with ComfyUI

    video = comfy.output_path(result.outputs["save"]["images"][0])
    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == length and decoded[0].shape == (size, size, 3)
