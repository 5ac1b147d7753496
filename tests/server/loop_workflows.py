"""Specs of the retry-loop example workflows in workflows/ (UI format, built with the harness's builder against a
live server's /object_info so widget order always matches the nodes). The close node shows the reward per attempt
as a chart and keeps the attempt log in its UI output (and 'attempt_log' output, for a save node); PreviewAny is
left out because the frontend adds a 'preview' widget to it that plain UI->API conversion does not know.
test_loop_workflows.py checks the files match SPECS and runs them (the api_* workflows: tests/harness/api_workflows.py).
To regenerate after a node change:

    REWARDLOOP_WRITE_WORKFLOWS=1 python -m pytest tests/server/test_loop_workflows.py tests/server/test_api_loop.py
"""
from __future__ import annotations

from workflows import Node

SIZE, LENGTH, EVERY = 256, 33, 8
# Keyframe SSIM at its calibrated 0.85 (rewards/calibration.py: clean anchor 0.925, rounded down): a raw SSIM gate
# that means what the composite's 0.85 means.
SSIM_THRESHOLD = 0.92
SEGMENT_PASS = round(0.4 ** (1 / 4), 3)  # four segments that each pass this often make a 40% clip


def architectural_pan() -> list[Node]:
    """**What it shows:** a reward-gated retry loop around a generator. Your start and end frames are the anchors;
    each attempt's clip is scored by Reward: Keyframe SSIM against them, and attempts below 0.92 are re-rolled with
    a new seed, at most 5 times (0.92 is keyframe SSIM's calibrated 0.85: ends as close to the anchors as an H.264
    copy of them, which nine real clips in ten reach). The close node keeps the passing (or best) attempt and a log
    of every attempt.
    The generator here is a stand-in that passes 40% of the time, so no model is needed.

    **What to change:**
    - Swap the stand-in for your own generator (a KSampler + VAE Decode, the Keyframe Generator, an API video
      node) and wire the open node's `attempt seed` into its seed.
    - The open node: `threshold`, `max_retries`, `mode` (first_pass or best_of).
    - Connect previews and savers to the close node's outputs, not to nodes inside the loop."""
    return [
        Node("anchors", "RewardLoopProceduralScene",
             {"width": SIZE, "height": SIZE, "length": LENGTH, "seed": 7, "motion": "pan", "keyframe_every": 0},
             title="Start + end frame anchors (glass skyscraper pan)"),
        Node("open", "RewardLoopRetryOpen",
             {"seed": 0, "threshold": SSIM_THRESHOLD, "max_retries": 5, "mode": "first_pass",
              "seed_policy": "hash", "reward_range": "0..1"}, title="Retry loop: threshold 0.92, 5 retries"),
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
    """**What it shows:** per-segment gating. The clip is four segments between keyframes and each segment has its
    own retry loop, so a failing segment is re-rolled without redoing the ones that passed; Join Gated Segments
    joins them (shared keyframes kept once) and says whether all passed. The generators are stand-ins, so no
    model is needed.

    **What to change:**
    - Swap each stand-in generator for your own and wire its loop's `attempt seed` into its seed.
    - Each open node's `threshold` (0.92: keyframe SSIM's calibrated 0.85, an H.264 copy's closeness) and
      `max_retries` (fewer retries per segment than for a whole clip)."""
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
                 {"seed": i + 1, "threshold": SSIM_THRESHOLD, "max_retries": 3, "mode": "first_pass",
                  "seed_policy": "hash",
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
    """**What it shows:** the professional pattern. Only the master frames (one every 8 frames) are generated
    inside the retry loop, which is cheap; once they pass, Inbetween (flow) fills the frames between them a single
    time, outside the loop. The master-frame generator is a stand-in, so no model is needed.

    **What to change:**
    - Swap the stand-in for your keyframe generator (e.g. the Keyframe Generator) and wire `attempt seed` into it.
    - The open node's `threshold` (0.92: keyframe SSIM's calibrated 0.85, an H.264 copy's closeness) and
      `max_retries`; Inbetween's `method` and `flow_method`."""
    return [
        Node("scene", "RewardLoopProceduralScene",
             {"width": SIZE, "height": SIZE, "length": LENGTH, "seed": 7, "motion": "pan", "keyframe_every": EVERY},
             title="Target master frames (every 8th frame)"),
        Node("open", "RewardLoopRetryOpen",
             {"seed": 0, "threshold": SSIM_THRESHOLD, "max_retries": 5, "mode": "first_pass",
              "seed_policy": "hash", "reward_range": "0..1"}, title="Retry loop over the master frames only"),
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

