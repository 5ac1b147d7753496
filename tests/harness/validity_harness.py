"""Reward validity on real AI video: clips, their corrupted copies, and how often a reward prefers the original.

Shared by benchmarks/reward_validity.py (the full report) and tests/unit/test_rewards_validity_real.py (a CI-sized
run). The clips are the animated WebP outputs of current video models and APIs in the registry packages
comfyui-workflow-templates-media-assets-01/-02, unpacked by tests/harness/setup_env.sh into $REWARDLOOP_MEDIA_DIR
(never committed).

Clip selection (reproducible): every `*.webp` with at least `min_frames` frames whose name does not mark a 3D
model turntable, an image edit or a pose/geometry utility (`NOT_VIDEO`). Some selected clips show a reference
image inset or a before/after layout, as the templates' previews do; they are kept (they are still model output).

Scoring goes through the core exactly as the Composite node runs it with its defaults: one `rewards.Clip` per copy
(DIS medium flow, analysis size 256), every validated scorer computed on it, the default composite combined from
those same results (`rewards.composite.combine`).
"""
from __future__ import annotations

import functools
import math
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

MEDIA_ENV = "REWARDLOOP_MEDIA_DIR"
NOT_VIDEO = re.compile(r"(^3d_|_to_model|_t2m|_i2m|multiview|image_edit|gpt_image|sam3d|moge|bboxes)")
LONG_SIDE = 256
# Window plan the seam scorer is given: the clips are treated as generated in windows of 21 frames overlapping by
# 9 (33 frames = two windows), so seams exist at both lengths; seam and lighting-jump corruptions sit at a join.
WINDOWS = (21, 9)
LOOP_PERIOD = 8
# Bump when the copies or the way they are scored change in a way no source below shows: benchmarks/reward_validity.py's
# cache keys on it, on each scorer's module and on each copy's corruption function (`copy_keys`).
COPIES_VERSION = 1

# Scorers whose real weights exist offline (LPIPS and I3D through the installer; the rest need none).
VALIDATED = ("keyframe_ssim", "temporal_lpips", "flow_smoothness", "fvd_lite", "structure_constancy",
             "seam_consistency", "loop_break", "framing", "novelty_after_k")
NOT_VALIDATED = {"identity_lock": "facenet (VGGFace2) weights are not obtainable offline",
                 "clip_score": "CLIP ViT-B/32 weights are not obtainable offline",
                 "caption_consistency": "BLIP weights are not obtainable offline",
                 "aesthetic": "CLIP ViT-L/14 weights are not obtainable offline"}

CORRUPTION_TYPES = ("shuffle", "jitter", "stutter", "texture_warp", "structure_warp", "flicker", "lighting_jump",
                    "loop", "pingpong", "seam", "blur", "tilt", "identity_swap")

# What each scorer's definition says it catches (its "own family"), fixed before measuring.
FAMILIES: dict[str, tuple[str, ...]] = {
    # anything that changes the first or last frame (stutter and seam keep both)
    "keyframe_ssim": tuple(c for c in CORRUPTION_TYPES if c not in ("stutter", "seam")),
    # change that motion does not explain (not `loop`: a period-8 copy replays the first 8 frames, whose
    # frame-to-frame change can be lower than the rest of the original; its restarts are loop_break's job)
    "temporal_lpips": ("shuffle", "texture_warp", "structure_warp", "flicker", "lighting_jump", "seam",
                       "identity_swap"),
    # motion that is not locally coherent or not steady: shake, holds and skips, warps, shuffled frames
    "flow_smoothness": ("shuffle", "jitter", "stutter", "texture_warp", "structure_warp"),
    # outlines that do not survive motion compensation
    "structure_constancy": ("shuffle", "texture_warp", "structure_warp"),
    # breaks at window joins
    "seam_consistency": ("seam", "lighting_jump"),
    # a clip stuck repeating itself
    "loop_break": ("loop", "pingpong"),
    # the coherence tax: incoherent change is not novelty
    "novelty_after_k": ("shuffle", "jitter", "flicker"),
    # temporal statistics the I3D features see
    "fvd_lite": ("shuffle", "jitter", "stutter", "texture_warp", "structure_warp", "flicker", "loop", "pingpong",
                 "seam"),
    "framing": ("tilt",),
    "identity_lock": ("identity_swap",),
}


def media_dir() -> Path:
    value = os.environ.get(MEDIA_ENV)
    if not value:
        raise RuntimeError(f"${MEDIA_ENV} is not set: it must name the folder of real AI video clips that "
                           "tests/harness/setup_env.sh unpacks (run `eval \"$(bash tests/harness/setup_env.sh)\"` or "
                           "`bash tests/harness/run_tests.sh`).")
    path = Path(value)
    if not path.is_dir() or not any(path.glob("*.webp")):
        raise RuntimeError(f"${MEDIA_ENV}={value} holds no .webp clips: re-run tests/harness/setup_env.sh.")
    return path


def frame_count(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return int(getattr(im, "n_frames", 1))


def select_clips(media: Path, min_frames: int) -> list[tuple[Path, int]]:
    """(path, native frame count) of the AI video clips with >= min_frames frames, in name order."""
    out = []
    for path in sorted(media.glob("*.webp")):
        if NOT_VIDEO.search(path.name):
            continue
        n = frame_count(path)
        if n >= min_frames:
            out.append((path, n))
    return out


def load_clip(path: Path, frames: int | None = None, long_side: int = LONG_SIDE) -> torch.Tensor:
    """[T,H,W,3] float32 in 0..1: the first `frames` frames (all when None), scaled to `long_side` (antialiased)."""
    from PIL import Image, ImageSequence

    arrays = []
    with Image.open(path) as im:
        for i, frame in enumerate(ImageSequence.Iterator(im)):
            if frames is not None and i >= frames:
                break
            arrays.append(np.asarray(frame.convert("RGB")))
    x = torch.from_numpy(np.stack(arrays)).float() / 255
    H, W = x.shape[1:3]
    s = long_side / max(H, W)
    if long_side and s != 1:
        size = (max(16, round(H * s)), max(16, round(W * s)))
        x = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", antialias=True,
                                            align_corners=False).permute(0, 2, 3, 1)
    return x.clamp(0, 1).contiguous()


def clip_seed(path: Path) -> int:
    return zlib.crc32(path.name.encode())


def join_frame(num_frames: int, windows: tuple[int, int] = WINDOWS) -> int:
    """The middle of the first window overlap: where seam and lighting-jump corruptions start."""
    from rewardloop.motion.windows import window_ranges

    ranges = window_ranges(num_frames, *windows)
    if len(ranges) < 2:
        raise ValueError(f"{num_frames} frames fit in one window of {windows[0]}: no join")
    (_, b0), (a1, _) = ranges[0], ranges[1]
    return (a1 + b0) // 2


# --------------------------------------------------------------------------------------------------- faces
@functools.cache
def _mtcnn():
    """MTCNN with the facenet-pytorch wheel's real weights and the identity scorer's thresholds (loaded once)."""
    from facenet_pytorch import MTCNN

    return MTCNN(image_size=160, margin=0, min_face_size=20, thresholds=[0.6, 0.7, 0.7], select_largest=True)


def face_boxes(frames: torch.Tensor, min_prob: float = 0.95) -> torch.Tensor:
    """[T,4] box of the largest face per frame (NaN where none), found by `_mtcnn()`."""
    out = torch.full((frames.shape[0], 4), math.nan)
    with torch.no_grad():
        boxes, probs = _mtcnn().detect((frames.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    for i, (b, p) in enumerate(zip(boxes, probs)):
        if b is not None and float(np.asarray(p, dtype=np.float32)[0]) >= min_prob:
            out[i] = torch.from_numpy(np.asarray(b, dtype=np.float32)[0])
    return out


def face_crop(frames: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor | None:
    """The face of the first frame that has one, [h,w,3], or None."""
    for t in range(frames.shape[0]):
        b = boxes[t]
        if bool(torch.isfinite(b).all()):
            x0, y0 = max(0, int(b[0])), max(0, int(b[1]))
            x1, y1 = int(math.ceil(b[2])), int(math.ceil(b[3]))
            if x1 - x0 >= 8 and y1 - y0 >= 8:
                return frames[t, y0:y1, x0:x1].clone()
    return None


def has_face(boxes: torch.Tensor, start: int) -> bool:
    """A face in at least half of the frames from `start` on (where an identity swap would show)."""
    late = torch.isfinite(boxes[start:, 0])
    return bool(late.float().mean() >= 0.5)


# ---------------------------------------------------------------------------------------------- copies
def corrupted_copies(frames: torch.Tensor, seed: int, boxes: torch.Tensor | None = None,
                     donor: torch.Tensor | None = None, types=CORRUPTION_TYPES) -> dict[str, torch.Tensor]:
    """{"original": frames, type: corrupted copy} for each type that applies (identity_swap only with a face
    and a donor face)."""
    from rewardloop.rewards import corruptions as C

    T = frames.shape[0]
    at = join_frame(T)
    make: dict[str, Callable[[], torch.Tensor]] = {
        "shuffle": lambda: C.shuffle(frames, seed), "jitter": lambda: C.jitter(frames, seed),
        "stutter": lambda: C.stutter(frames, seed), "texture_warp": lambda: C.texture_warp(frames, seed),
        "structure_warp": lambda: C.structure_warp(frames, seed), "flicker": lambda: C.flicker(frames, seed),
        "lighting_jump": lambda: C.lighting_jump(frames, at), "loop": lambda: C.loop(frames, LOOP_PERIOD),
        "pingpong": lambda: C.pingpong(frames, LOOP_PERIOD), "seam": lambda: C.seam(frames, at),
        "blur": lambda: C.blur(frames), "tilt": lambda: C.tilt(frames, seed),
    }
    if boxes is not None and donor is not None and has_face(boxes, T // 2):
        make["identity_swap"] = lambda: C.identity_swap(frames, boxes, donor, T // 2)
    return {"original": frames, **{t: make[t]() for t in types if t in make}}


def copy_keys(corruptions_source: str) -> dict[str, str]:
    """A cache key per copy: "original" on COPIES_VERSION alone, each corruption type on its own function in
    rewards/corruptions.py plus everything else there (helpers, constants) and `corrupted_copies` (how the copies
    are made), so changing one corruption re-scores only its copies. Code is compared without its docstrings and
    comments (they do not change a copy)."""
    import ast
    import inspect

    tree = ast.parse(corruptions_source)
    harness = ast.parse("\n".join(inspect.getsource(f) for f in (corrupted_copies, join_frame)))
    own, shared = {}, [_code(node) for node in harness.body] + [repr((WINDOWS, LOOP_PERIOD))]
    for node in tree.body:
        if _is_docstring(node):
            continue
        if isinstance(node, ast.FunctionDef) and node.name in CORRUPTION_TYPES:
            own[node.name] = _code(node)
        else:
            shared.append(_code(node))
    missing = set(CORRUPTION_TYPES) - set(own)
    if missing:
        raise ValueError(f"rewards/corruptions.py has no function for {sorted(missing)}")

    return {"original": _digest("original"), **{t: _digest(t, own[t], *shared) for t in CORRUPTION_TYPES}}


def code_key(source: str) -> str:
    """A digest of a module's code without its docstrings or comments (a scorer's cache key in
    benchmarks/reward_validity.py): rewording its documentation does not re-score it."""
    import ast

    return _digest(*(_code(node) for node in ast.parse(source).body if not _is_docstring(node)))


def _digest(*parts: str) -> str:
    """The cache keys' digest: COPIES_VERSION and the parts, in order."""
    import hashlib

    h = hashlib.sha1(str(COPIES_VERSION).encode())
    for part in parts:
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:12]


def _is_docstring(node) -> bool:
    import ast

    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _code(node) -> str:
    """The node's code without docstrings (its own and its nested functions') or comments."""
    import ast
    import copy

    node = copy.deepcopy(node)
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body and _is_docstring(body[0]):
            inner.body = body[1:] or [ast.Pass()]
    return ast.dump(node)


# ---------------------------------------------------------------------------------------------- scoring
def score_copy(frames: torch.Tensor, keyframes: torch.Tensor, reference_features: torch.Tensor | None,
               scorers=VALIDATED, **clip_kw):
    """Every scorer's RewardResult on one copy, computed as the Composite node does (one Clip, node defaults)."""
    from rewardloop.rewards import Clip, composite

    clip = Clip(frames, keyframes=keyframes, windows=WINDOWS, flow_method="dis_medium", **clip_kw)
    options = {"fvd_lite": {"reference_features": reference_features}} if reference_features is not None else {}
    weights = {name: 1.0 for name in scorers}
    _, parts = composite(clip, weights, options)
    return {r.name: r for r in parts}


def reference_features(frames: torch.Tensor, **clip_kw) -> torch.Tensor:
    """FVD-lite's reference: the I3D features of the clip's whole shot (all native frames)."""
    from rewardloop.rewards import Clip
    from rewardloop.rewards.fvd_lite import i3d_features

    feats, _ = i3d_features(Clip(frames, **clip_kw))
    return feats


def wins(raw: dict, scorer: str, corruption: str) -> tuple[int, int]:
    """(clips where the original scores strictly higher than the copy, clips where both have a value) from
    raw[clip][copy][scorer] = value (NaN / None when not applicable)."""
    won = n = 0
    for copies in raw.values():
        o = copies.get("original", {}).get(scorer)
        b = copies.get(corruption, {}).get(scorer)
        if o is None or b is None or not (math.isfinite(o) and math.isfinite(b)):
            continue
        n += 1
        won += o > b
    return won, n
