"""Install steps that requirements.txt cannot express safely (ComfyUI-Manager runs this file).

- facenet-pytorch 2.6.0 declares torch<2.3, numpy<2 and Pillow<10.3; a plain install would downgrade a
  working ComfyUI. Its code runs on current versions, so it is installed with --no-deps.
- opencv-python and opencv-python-headless both own the `cv2` module and break each other when both
  are installed. If any OpenCV build is present it is left alone; otherwise opencv-python is installed.
Run it with the Python of the ComfyUI environment: `python install.py` (add `--dry-run` to only print).
"""
from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

FACENET = "facenet-pytorch==2.6.0"
OPENCV = "opencv-python>=4.8"
OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")


def _installed(dist: str) -> bool:
    try:
        md.version(dist)
        return True
    except md.PackageNotFoundError:
        return False


def planned_commands() -> list[list[str]]:
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    commands = []
    if not _installed("facenet-pytorch"):
        commands.append(pip + ["--no-deps", FACENET])
    if not any(_installed(d) for d in OPENCV_DISTS):
        commands.append(pip + [OPENCV])
    return commands


def main(argv: list[str]) -> int:
    for cmd in planned_commands():
        print("[ComfyUI-RewardLoop install]", " ".join(cmd[3:]))
        if "--dry-run" not in argv:
            subprocess.check_call(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
