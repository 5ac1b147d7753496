"""Specs of the workflows with ComfyUI's own paid first/last-frame API nodes inside the retry loop
(workflows/api_*.json), and the start/middle/end images their LoadImage nodes name. The node definitions of API
nodes exist only on a server started without --disable-api-nodes, so these files are built against such a server
(tests/server/test_api_loop.py checks they match and runs them against the API stand-in; to regenerate:
`REWARDLOOP_WRITE_WORKFLOWS=1 python -m pytest tests/server/test_api_loop.py`) and loaded in the browser by
tests/browser/test_api_ui.py.
"""
from __future__ import annotations

from pathlib import Path

from workflows import Node

API_IMAGES = {"start": "rewardloop_start.png", "middle": "rewardloop_middle.png", "end": "rewardloop_end.png"}
API_PROMPT = "slow cinematic camera pan across a glass skyscraper at sunset, static scene, camera motion only"
API_SEGMENT_PASS = round(0.4 ** (1 / 2), 3)  # what each of two segments must pass for a 40% whole clip


def _luma(key: str, first: str, last: str, open_key: str, title: str) -> Node:
    return Node(key, "LumaImageToVideoNode",
                {"prompt": API_PROMPT, "model": "ray-2", "resolution": "540p", "duration": "5s", "loop": False,
                 "seed": 0}, {"first_image": (first, 0), "last_image": (last, 0), "seed": (open_key, 2)},
                title=title)


def _gate_reward(key: str, frames: str, anchors: str, title: str) -> Node:
    """Keyframe SSIM against the start/end frames, plus a quarter weight of temporal LPIPS (flicker)."""
    from rewardloop.rewards import DEFAULT_WEIGHTS

    weights = {f"w_{name}": 0.0 for name in DEFAULT_WEIGHTS}
    weights.update(w_keyframe_ssim=1.0, w_temporal_lpips=0.25)
    return Node(key, "RewardLoopRewardComposite", {**weights, "options_json": "", "device": "auto"},
                {"frames": (frames, 0), "keyframes": (anchors, 0)}, title=title)


def api_first_last_gated() -> list[Node]:
    """**What it shows:** the first/last-frame scenario with a paid video API. Your start and end frames go to
    ComfyUI's Luma first/last-frame node inside a retry loop; each clip is scored by keyframe SSIM against the two
    frames (plus a quarter weight of temporal LPIPS against flicker) and re-rolled with a new seed below 0.85, at
    most 5 retries and at most 6 API calls in all. The composite is calibrated, so 0.85 means "as good as nine clean
    clips in ten" whatever the weights (for keyframe SSIM: ends as close to your frames as an H.264 copy of them).
    The close node keeps the best clip and a log of every attempt with its seed, reward, API calls and provider
    seconds.

    **What to change:**
    - The two Load Image nodes: your start and end frames (same size).
    - Sign in with your Comfy API key (Settings > API keys); each attempt is one paid generation.
    - The open node: `threshold`, `max_retries`, and the budget `max_api_calls` / `max_total_seconds`.
    - Swap the Luma node for another provider's first/last-frame node; wire `attempt seed` into its seed."""
    return [
        Node("start", "LoadImage", {"image": API_IMAGES["start"]}, title="Start frame (your image)"),
        Node("end", "LoadImage", {"image": API_IMAGES["end"]}, title="End frame (your image)"),
        Node("anchors", "ImageBatch", {}, {"image1": ("start", 0), "image2": ("end", 0)},
             title="Start + end: the reward's keyframes"),
        Node("open", "RewardLoopRetryOpen",
             {"seed": 0, "threshold": 0.85, "max_retries": 5, "mode": "first_pass", "seed_policy": "hash",
              "reward_range": "0..1", "max_total_seconds": 0.0, "max_api_calls": 6},
             title="Retry loop: 0.85, 5 retries, <= 6 API calls"),
        _luma("generate", "start", "end", "open", "Luma first/last frame (paid API)"),
        Node("frames", "GetVideoComponents", {}, {"video": ("generate", 0)}, title="Video -> frames"),
        _gate_reward("reward", "frames", "anchors", "Reward: keyframe SSIM + 0.25 t-LPIPS"),
        Node("close", "RewardLoopRetryClose", {},
             {"loop": ("open", 0), "frames": ("frames", 0), "reward": ("reward", 0), "scores": ("reward", 1)},
             title="Retry loop (close): best attempt + log"),
        Node("video", "CreateVideo", {"fps": 24.0}, {"images": ("close", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/api_first_last", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]


def api_master_frames_per_segment() -> list[Node]:
    """**What it shows:** the master-frames pattern with a paid video API. Three master frames (start, middle,
    end); each segment between two of them is one Luma first/last-frame generation inside its own retry loop,
    gated by keyframe SSIM against its two master frames (calibrated: 0.85 = about as close to them as an
    H.264 copy of them), so a failing segment is re-rolled without paying for the other again. The gated
    segments are joined (the shared frame kept once) and flow Inbetween adds a frame between every two generated
    ones (2x frame rate, once, outside the loops: no API cost).

    **What to change:**
    - The three Load Image nodes: your master frames (same size).
    - Sign in with your Comfy API key (Settings > API keys); each attempt is one paid generation.
    - Each segment's open node: `threshold`, `max_retries`, `max_api_calls`."""
    masters = [("start", "Master frame 1: start"), ("middle", "Master frame 2: middle"), ("end", "Master frame 3: end")]
    nodes = [Node(key, "LoadImage", {"image": API_IMAGES[key]}, title=f"{title} (your image)")
             for i, (key, title) in enumerate(masters)]
    join_links = {}
    for i, (a, b) in enumerate((("start", "middle"), ("middle", "end"))):
        y = 40 + 700 * i
        nodes += [
            Node(f"open{i}", "RewardLoopRetryOpen",
                 {"seed": i, "threshold": 0.85, "max_retries": 3, "mode": "first_pass", "seed_policy": "hash",
                  "reward_range": "0..1", "max_total_seconds": 0.0, "max_api_calls": 4},
                 title=f"Segment {i + 1}: retry loop (<= 4 API calls)"),
            Node(f"anchors{i}", "ImageBatch", {}, {"image1": (a, 0), "image2": (b, 0)},
                 title=f"Segment {i + 1}: its two master frames"),
            _luma(f"generate{i}", a, b, f"open{i}", f"Segment {i + 1}: Luma (paid API)"),
            Node(f"frames{i}", "GetVideoComponents", {}, {"video": (f"generate{i}", 0)},
                 title=f"Segment {i + 1}: video -> frames"),
            _gate_reward(f"reward{i}", f"frames{i}", f"anchors{i}", f"Segment {i + 1}: SSIM + t-LPIPS"),
            Node(f"close{i}", "RewardLoopRetryClose", {},
                 {"loop": (f"open{i}", 0), "frames": (f"frames{i}", 0), "reward": (f"reward{i}", 0),
                  "scores": (f"reward{i}", 1)}, title=f"Segment {i + 1}: keep the passing attempt"),
        ]
        join_links[f"segment_{i + 1}"] = (f"close{i}", 0)
        join_links[f"log_{i + 1}"] = (f"close{i}", 4)
    nodes += [
        Node("join", "RewardLoopJoinSegments", {"overlap": 1}, join_links, title="Join gated segments"),
        Node("inbetween", "RewardLoopInbetween", {"frames_per_gap": 1, "method": "flow"}, {"keyframes": ("join", 0)},
             title="Interpolate: 2x frame rate (no API cost)"),
        Node("video", "CreateVideo", {"fps": 48.0}, {"images": ("inbetween", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/api_master_frames", "format": "mp4",
                                   "codec": "h264"}, {"video": ("video", 0)}),
    ]
    return nodes


API_SPECS = {
    "api_first_last_gated": api_first_last_gated,
    "api_master_frames_per_segment": api_master_frames_per_segment,
}


def write_input_images(folder: Path, width: int = 256, height: int = 144) -> None:
    """The workflows' start/middle/end images: frames 0, 16 and 32 of the procedural pan (16:9, the aspect of the
    videos Luma and Veo return)."""
    from PIL import Image

    from rewardloop.motion import scene

    frames = scene.render_scene(scene.frame_times(33), width, height, 7, "pan")
    folder.mkdir(parents=True, exist_ok=True)
    for name, index in (("start", 0), ("middle", 16), ("end", 32)):
        Image.fromarray((frames[index].numpy() * 255).round().astype("uint8")).save(folder / API_IMAGES[name])
