"""Specs of the retry-loop example workflows in workflows/ (UI format, built with the harness's builder against a
live server's /object_info so widget order always matches the nodes). The close node shows the reward per attempt
as a chart and keeps the attempt log in its UI output (and 'attempt_log' output, for a save node); PreviewAny is
left out because the frontend adds a 'preview' widget to it that plain UI->API conversion does not know.
test_loop_workflows.py checks the files match SPECS and runs them; test_api_loop.py does the same for API_SPECS
(ComfyUI's own paid API nodes inside the loop: their node definitions exist only on a server started without
--disable-api-nodes). To regenerate after a node change:

    REWARDLOOP_WRITE_WORKFLOWS=1 python -m pytest tests/server/test_loop_workflows.py tests/server/test_api_loop.py
"""
from __future__ import annotations

from workflows import Node

SIZE, LENGTH, EVERY = 256, 33, 8
SEGMENT_PASS = round(0.4 ** (1 / 4), 3)  # four segments that each pass this often make a 40% clip


def architectural_pan() -> list[Node]:
    """The architectural pan: start + end frames as fixed anchors, keyframe SSIM reward, threshold 0.85,
    5 retries."""
    return [
        Node("anchors", "RewardLoopProceduralScene",
             {"width": SIZE, "height": SIZE, "length": LENGTH, "seed": 7, "motion": "pan", "keyframe_every": 0},
             title="Start + end frame anchors (glass skyscraper pan)"),
        Node("open", "RewardLoopRetryOpen",
             {"seed": 0, "threshold": 0.85, "max_retries": 5, "mode": "first_pass", "seed_policy": "hash",
              "reward_range": "0..1"}, title="Retry loop: threshold 0.85, 5 retries"),
        Node("generate", "RewardLoopPerturbedScene",
             {"width": SIZE, "height": SIZE, "length": LENGTH, "scene_seed": 7, "motion": "pan", "keyframe_every": 0,
              "first_frame": 0, "last_frame": -1, "seed": 0, "pass_probability": 0.4},
             {"seed": ("open", 2)},
             title="Generator (stand-in passing 40%: swap in your video model, seed <- attempt_seed)"),
        Node("reward", "RewardLoopKeyframeSSIM", {"device": "auto"},
             {"frames": ("generate", 0), "keyframes": ("anchors", 1)}, title="Reward: keyframe SSIM vs the anchors"),
        Node("close", "RewardLoopRetryClose", {},
             {"loop": ("open", 0), "frames": ("generate", 0), "reward": ("reward", 0), "scores": ("reward", 1)},
             title="Retry loop (close): best attempt, passed flag, attempt log"),
        Node("video", "CreateVideo", {"fps": 12.0}, {"images": ("close", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/architectural_pan", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]


def keyframes_then_inbetween_per_segment() -> list[Node]:
    """Keyframe-then-inbetween with per-segment gating: the clip is four segments between keyframes; each has its
    own retry loop, so a failing segment is re-rolled without redoing the ones that passed."""
    segments = [(i * EVERY, (i + 1) * EVERY) for i in range((LENGTH - 1) // EVERY)]
    nodes = [Node("scene", "RewardLoopProceduralScene",
                  {"width": SIZE, "height": SIZE, "length": LENGTH, "seed": 7, "motion": "pan",
                   "keyframe_every": EVERY}, title="Keyframes every 8 frames (master frames)", column=0)]
    join_links = {}
    for i, (a, b) in enumerate(segments):
        nodes += [
            Node(f"anchors{i}", "ImageFromBatch", {"batch_index": i, "length": 2}, {"image": ("scene", 1)},
                 title=f"Segment {i + 1}: its two keyframes", column=1),
            Node(f"open{i}", "RewardLoopRetryOpen",
                 {"seed": i + 1, "threshold": 0.85, "max_retries": 3, "mode": "first_pass", "seed_policy": "hash",
                  "reward_range": "0..1"}, title=f"Segment {i + 1}: retry loop", column=1),
            Node(f"generate{i}", "RewardLoopPerturbedScene",
                 {"width": SIZE, "height": SIZE, "length": LENGTH, "scene_seed": 7, "motion": "pan",
                  "keyframe_every": EVERY, "first_frame": a, "last_frame": b, "seed": 0,
                  "pass_probability": SEGMENT_PASS},
                 {"seed": (f"open{i}", 2)}, title=f"Segment {i + 1}: in-betweens (stand-in generator)", column=2),
            Node(f"reward{i}", "RewardLoopKeyframeSSIM", {"device": "auto"},
                 {"frames": (f"generate{i}", 0), "keyframes": (f"anchors{i}", 0)},
                 title=f"Segment {i + 1}: keyframe SSIM", column=3),
            Node(f"close{i}", "RewardLoopRetryClose", {},
                 {"loop": (f"open{i}", 0), "frames": (f"generate{i}", 0), "reward": (f"reward{i}", 0),
                  "scores": (f"reward{i}", 1)}, title=f"Segment {i + 1}: keep the passing attempt", column=4),
        ]
        join_links[f"segment_{i + 1}"] = (f"close{i}", 0)
        join_links[f"log_{i + 1}"] = (f"close{i}", 4)
    nodes += [
        Node("join", "RewardLoopJoinSegments", {"overlap": 1}, join_links, title="Join gated segments", column=5),
        Node("video", "CreateVideo", {"fps": 12.0}, {"images": ("join", 0)}, column=6),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/per_segment", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}, column=7),
    ]
    return nodes


def master_frames_then_inbetween() -> list[Node]:
    """The professional pattern: gate only the master frames (cheap), then interpolate the middle once."""
    return [
        Node("scene", "RewardLoopProceduralScene",
             {"width": SIZE, "height": SIZE, "length": LENGTH, "seed": 7, "motion": "pan", "keyframe_every": EVERY},
             title="Target master frames (every 8th frame)"),
        Node("open", "RewardLoopRetryOpen",
             {"seed": 0, "threshold": 0.85, "max_retries": 5, "mode": "first_pass", "seed_policy": "hash",
              "reward_range": "0..1"}, title="Retry loop over the master frames only"),
        Node("masters", "RewardLoopPerturbedScene",
             {"width": SIZE, "height": SIZE, "length": 5, "scene_seed": 7, "motion": "pan", "keyframe_every": 0,
              "first_frame": 0, "last_frame": -1, "seed": 0, "pass_probability": 0.4},
             {"seed": ("open", 2)}, title="Master-frame generator (stand-in: 5 frames = the keyframe times)"),
        Node("reward", "RewardLoopKeyframeSSIM", {"device": "auto"},
             {"frames": ("masters", 0), "keyframes": ("scene", 1)}, title="Reward: SSIM of every master frame"),
        Node("close", "RewardLoopRetryClose", {},
             {"loop": ("open", 0), "frames": ("masters", 0), "reward": ("reward", 0), "scores": ("reward", 1)}),
        Node("inbetween", "RewardLoopInbetween", {"frames_per_gap": EVERY - 1, "method": "flow"},
             {"keyframes": ("close", 0)}, title="Interpolate the middle (runs once, outside the loop)"),
        Node("video", "CreateVideo", {"fps": 12.0}, {"images": ("inbetween", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/master_frames", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]


SPECS = {
    "loop_architectural_pan": architectural_pan,
    "loop_keyframes_then_inbetween_per_segment": keyframes_then_inbetween_per_segment,
    "loop_master_frames_then_inbetween": master_frames_then_inbetween,
}


# ---- ComfyUI's own first/last-frame API nodes inside the loop (paid; tests run them against a local stand-in) ----
API_IMAGES = {"start": "rewardloop_start.png", "middle": "rewardloop_middle.png", "end": "rewardloop_end.png"}
API_PROMPT = "slow cinematic camera pan across a glass skyscraper at sunset, static scene, camera motion only"
API_SEGMENT_PASS = round(0.4 ** (1 / 2), 3)  # what each of two segments must pass for a 40% whole clip


def _luma(key: str, first: str, last: str, open_key: str, title: str) -> Node:
    return Node(key, "LumaImageToVideoNode",
                {"prompt": API_PROMPT, "model": "ray-2", "resolution": "540p", "duration": "5s", "loop": False,
                 "seed": 0}, {"first_image": (first, 0), "last_image": (last, 0), "seed": (open_key, 2)}, title=title)


def _gate_reward(key: str, frames: str, anchors: str, title: str) -> Node:
    """Keyframe SSIM against the start/end frames, plus a quarter weight of temporal LPIPS (flicker)."""
    from rewardloop.rewards import DEFAULT_WEIGHTS

    weights = {f"w_{name}": 0.0 for name in DEFAULT_WEIGHTS}
    weights.update(w_keyframe_ssim=1.0, w_temporal_lpips=0.25)
    return Node(key, "RewardLoopRewardComposite", {**weights, "options_json": "", "device": "auto"},
                {"frames": (frames, 0), "keyframes": (anchors, 0)}, title=title)


def api_first_last_gated() -> list[Node]:
    """Start + end frame -> Luma first/last-frame video (a paid API node) inside the retry loop -> keyframe SSIM
    (+ temporal LPIPS) -> threshold 0.85, 5 retries, at most 6 API calls -> video; the close node keeps the attempt
    log (seeds, rewards, API calls, seconds)."""
    return [
        Node("start", "LoadImage", {"image": API_IMAGES["start"]}, title="Start frame (load your image)", column=0),
        Node("end", "LoadImage", {"image": API_IMAGES["end"]}, title="End frame (load your image)", column=0),
        Node("anchors", "ImageBatch", {}, {"image1": ("start", 0), "image2": ("end", 0)},
             title="Start + end as the reward's keyframes", column=1),
        Node("open", "RewardLoopRetryOpen",
             {"seed": 0, "threshold": 0.85, "max_retries": 5, "mode": "first_pass", "seed_policy": "hash",
              "reward_range": "0..1", "max_total_seconds": 0.0, "max_api_calls": 6},
             title="Retry loop: threshold 0.85, 5 retries, at most 6 API calls", column=1),
        _luma("generate", "start", "end", "open", "Luma first/last frame to video (paid API; seed <- attempt_seed)"),
        Node("frames", "GetVideoComponents", {}, {"video": ("generate", 0)}, title="Video -> frames"),
        _gate_reward("reward", "frames", "anchors", "Reward: keyframe SSIM (+ 0.25 temporal LPIPS)"),
        Node("close", "RewardLoopRetryClose", {},
             {"loop": ("open", 0), "frames": ("frames", 0), "reward": ("reward", 0), "scores": ("reward", 1)},
             title="Retry loop (close): best attempt, passed flag, attempt log + spend"),
        Node("video", "CreateVideo", {"fps": 24.0}, {"images": ("close", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/api_first_last", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]


def api_master_frames_per_segment() -> list[Node]:
    """The master-frames pattern with an API generator per segment: three master frames (start, middle, end); each
    segment between two of them is one Luma first/last-frame generation inside its own retry loop, gated against
    its two master frames, so a failing segment is re-rolled without paying for the other again; the gated
    segments are joined (the shared master frame kept once) and the pack's flow Inbetween interpolates a frame
    between every two generated ones (2x frame rate, once, outside the loops: no API cost)."""
    masters = [("start", "Master frame 1: start"), ("middle", "Master frame 2: middle"), ("end", "Master frame 3: end")]
    nodes = [Node(key, "LoadImage", {"image": API_IMAGES[key]}, title=f"{title} (load your image)", column=0)
             for key, title in masters]
    join_links = {}
    for i, (a, b) in enumerate((("start", "middle"), ("middle", "end"))):
        nodes += [
            Node(f"anchors{i}", "ImageBatch", {}, {"image1": (a, 0), "image2": (b, 0)},
                 title=f"Segment {i + 1}: its two master frames", column=1),
            Node(f"open{i}", "RewardLoopRetryOpen",
                 {"seed": i, "threshold": 0.85, "max_retries": 3, "mode": "first_pass", "seed_policy": "hash",
                  "reward_range": "0..1", "max_total_seconds": 0.0, "max_api_calls": 4},
                 title=f"Segment {i + 1}: retry loop (3 retries, at most 4 API calls)", column=1),
            _luma(f"generate{i}", a, b, f"open{i}", f"Segment {i + 1}: Luma first/last frame (paid API)"),
            Node(f"frames{i}", "GetVideoComponents", {}, {"video": (f"generate{i}", 0)},
                 title=f"Segment {i + 1}: video -> frames"),
            _gate_reward(f"reward{i}", f"frames{i}", f"anchors{i}", f"Segment {i + 1}: keyframe SSIM (+ t-LPIPS)"),
            Node(f"close{i}", "RewardLoopRetryClose", {},
                 {"loop": (f"open{i}", 0), "frames": (f"frames{i}", 0), "reward": (f"reward{i}", 0),
                  "scores": (f"reward{i}", 1)}, title=f"Segment {i + 1}: keep the passing attempt"),
        ]
        join_links[f"segment_{i + 1}"] = (f"close{i}", 0)
        join_links[f"log_{i + 1}"] = (f"close{i}", 4)
    nodes += [
        Node("join", "RewardLoopJoinSegments", {"overlap": 1}, join_links, title="Join gated segments", column=7),
        Node("inbetween", "RewardLoopInbetween", {"frames_per_gap": 1, "method": "flow"}, {"keyframes": ("join", 0)},
             title="Interpolate between the generated frames (2x frame rate, no API cost)", column=8),
        Node("video", "CreateVideo", {"fps": 48.0}, {"images": ("inbetween", 0)}, column=9),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/api_master_frames", "format": "mp4",
                                   "codec": "h264"}, {"video": ("video", 0)}, column=10),
    ]
    return nodes


API_SPECS = {
    "api_first_last_gated": api_first_last_gated,
    "api_master_frames_per_segment": api_master_frames_per_segment,
}
