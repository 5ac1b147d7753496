"""Frame batches (ComfyUI IMAGE: float `[T,H,W,C]` in 0..1): the one validation rule every core function uses.

Bad input is rejected with an error that names the input, says what is wrong and how to fix it; nothing is
clamped or repaired silently (values within `RANGE_TOLERANCE` of 0..1 are float round-off and pass).
"""
from __future__ import annotations

import math

import torch

RANGE_TOLERANCE = 1e-3
CHANNELS = (1, 3, 4)


def check_frames(frames, name: str = "frames", *, min_size: int = 1, max_pixels: int | None = None,
                 rgb: bool = True, chunk: int = 64) -> torch.Tensor:
    """Validate an IMAGE batch [T,H,W,C] (C = 1, 3 or 4; floating point; finite; in 0..1; frames at least
    `min_size` pixels a side and at most `max_pixels` pixels) and return it: as a [T,H,W,3] view when `rgb`
    (grayscale broadcast, alpha dropped), else unchanged. Values are checked `chunk` frames at a time, so a long
    clip gets no full-size temporary."""
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor [N,H,W,C] (a ComfyUI IMAGE), got {type(frames).__name__}.")
    if frames.ndim == 3:
        raise ValueError(f"{name} has shape {tuple(frames.shape)}: expected a batch [N,H,W,C] (N images or frames). "
                         "For a single image add a batch dimension (frames[None]).")
    if frames.ndim != 4:
        raise ValueError(f"{name} must be an IMAGE batch [N,H,W,C], got shape {tuple(frames.shape)}.")
    T, H, W, C = frames.shape
    if T == 0:
        raise ValueError(f"{name} is empty (0 frames): connect a non-empty IMAGE batch.")
    if C not in CHANNELS:
        raise ValueError(f"{name} has {C} channels: expected 1 (grayscale), 3 (RGB) or 4 (RGBA), channels last "
                         "[N,H,W,C]. A [N,C,H,W] tensor must be permuted first.")
    if H < min_size or W < min_size:
        raise ValueError(f"{name} are {W}x{H}: this needs frames of at least {min_size}x{min_size} pixels; "
                         "upscale them first.")
    if max_pixels is not None and H * W > max_pixels:
        raise ValueError(f"{name} are {W}x{H}, above the {max_pixels}-pixel limit per frame: work at a lower "
                         "resolution and upscale the result.")
    if not frames.is_floating_point():
        raise ValueError(f"{name} have dtype {frames.dtype}: expected float32 in 0..1 (divide uint8 frames by 255).")
    for start in range(0, T, max(1, chunk)):
        part = frames[start:start + chunk]
        lo, hi = (float(v) for v in torch.aminmax(part))  # one pass; NaN propagates, inf shows as an extreme
        if not (math.isfinite(lo) and math.isfinite(hi)):
            bad = (~torch.isfinite(part.flatten(1)).all(1)).nonzero()
            first = start + (int(bad[0]) if bad.numel() else 0)
            raise ValueError(f"{name} contain NaN or infinite values (first at frame {first}); fix the upstream node "
                             "or clamp/nan_to_num the frames.")
        if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            hint = " They look like 0..255 values: divide by 255." if hi > 2 else ""
            raise ValueError(f"{name} must be in 0..1, found values in [{lo:.4g}, {hi:.4g}] "
                             f"(frames {start}..{min(start + chunk, T) - 1}).{hint}")
    if not rgb:
        return frames
    if C == 1:
        return frames.expand(T, H, W, 3)
    return frames[..., :3] if C == 4 else frames
