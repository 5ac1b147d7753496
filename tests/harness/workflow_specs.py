"""Compact specs of the shareable workflows in workflows/. `make_workflows.py` turns them into UI-format
files with a running server's /object_info (so widget order always matches the nodes). Edit a spec here,
then regenerate; the browser test proves every file loads with no missing nodes."""
from __future__ import annotations

from workflows import Node


def main_demo() -> list[Node]:
    """The main example, seed 000's architectural pan: start/end anchors and keyframes every 8 frames from the
    procedural scene -> flow inbetweening -> composite reward with its report -> video."""
    return [
        Node("scene", "RewardLoopProceduralScene",
             {"width": 256, "height": 256, "length": 33, "seed": 7, "motion": "pan", "keyframe_every": 8},
             title="Architectural pan: anchor keyframes (procedural ground truth)"),
        Node("inbetween", "RewardLoopInbetween", {"frames_per_gap": 7, "method": "flow", "flow_method": "dis_medium"},
             {"keyframes": ("scene", 1), "keyframe_positions": ("scene", 2)}),
        Node("reward", "RewardLoopRewardComposite",
             {"prompt": "Cinematic pan of a glass skyscraper, sunset, static landscape, camera motion only",
              "flow_method": "dis_medium", "analysis_size": 256},
             {"frames": ("inbetween", 0), "keyframes": ("scene", 1), "keyframe_positions": ("scene", 2)}),
        Node("report", "RewardLoopRewardReport", {"filename_prefix": "rewardloop/main_demo_rewards"},
             {"scores": ("reward", 1)}),
        Node("video", "CreateVideo", {"fps": 12.0}, {"images": ("inbetween", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/main_demo", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]


SPECS = {
    "main_demo": main_demo,
}
