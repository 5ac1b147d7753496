"""Compact specs of the shareable workflows in workflows/. `make_workflows.py` turns them into UI-format
files with a running server's /object_info (so widget order always matches the nodes). Edit a spec here,
then regenerate; the browser test proves every file loads with no missing nodes."""
from __future__ import annotations

from workflows import Node


def main_demo() -> list[Node]:
    """The main example: the seed's architectural pan as anchor keyframes -> video."""
    return [
        Node("scene", "RewardLoopProceduralScene",
             {"width": 256, "height": 256, "length": 33, "seed": 7, "motion": "pan", "keyframe_every": 8},
             title="Architectural pan (procedural ground truth)"),
        Node("video", "CreateVideo", {"fps": 12.0}, {"images": ("scene", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/main_demo", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]


SPECS = {
    "main_demo": main_demo,
}
