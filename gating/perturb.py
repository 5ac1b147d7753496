"""A stand-in generator whose pass probability is known: the procedural scene with seeded warps.

Used by the loop's server tests, the example workflows and the benchmarks, where a real video model is too slow or
absent. The clip is split into segments between keyframes; each segment independently draws, from (seed, segment
index) alone, whether it is "good" (probability `pass_probability`) and a warp amplitude:
- good: a smooth random warp of at most GOOD_MAX_PX pixels (keyframe SSIM >= 0.97 on the scene at 64..512 px);
- bad: a warp of BAD_PX pixels (scaled up with the frame height beyond 128 px), keyframe SSIM <= 0.66.
So, for any threshold between those bands (the retry loop's default 0.85 included), P(a segment passes) =
pass_probability exactly and a clip of S segments passes with pass_probability ** S. The warp field changes every
frame (texture "swimming", the drift artists complain about). Frame f always gets the same warp for the same seed,
whether the whole clip or only its segment is rendered, so whole-clip and per-segment runs are comparable draw for
draw.
"""
from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F

from ..common.keyframes import KeyframePositions
from ..motion import scene
from .segments import segment_ranges

GOOD_MAX_PX = 0.15
BAD_PX = (2.0, 4.0)
_FIELD_CELLS = 4


def _unit(*parts) -> float:
    """Uniform [0, 1) from a hash of the parts (independent of torch's global RNG and of draw order)."""
    digest = hashlib.blake2b(":".join(str(p) for p in ("rewardloop-perturb", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") / 2**64


def segment_draw(seed: int, segment: int, pass_probability: float, height: int) -> tuple[bool, float]:
    """(good, warp amplitude in pixels) of one segment."""
    if not 0.0 <= pass_probability <= 1.0 or math.isnan(pass_probability):
        raise ValueError(f"pass_probability must be in [0, 1], got {pass_probability}")
    good = _unit(seed, segment, "mode") < pass_probability
    u = _unit(seed, segment, "amplitude")
    if good:
        return True, GOOD_MAX_PX * u
    scale = max(1.0, height / 128)
    return False, (BAD_PX[0] + (BAD_PX[1] - BAD_PX[0]) * u) * scale


def warp_fields(frame_ids: list[int], amplitudes: torch.Tensor, seed: int, height: int, width: int) -> torch.Tensor:
    """Per-frame smooth displacement fields [T, 2, H, W] in pixels with RMS `amplitudes[t]`."""
    # One tiny seeded draw (2x4x4 numbers) per frame so a frame's field depends on its index only, not on which
    # frames are rendered together; the upsampling and warping below are batched.
    coarse = torch.stack([torch.randn(2, _FIELD_CELLS, _FIELD_CELLS, generator=torch.Generator().manual_seed(
        int(_unit(seed, f, "field") * 2**62))) for f in frame_ids])
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    rms = field.flatten(1).pow(2).mean(dim=1).sqrt().clamp_min(1e-6)
    return field * (amplitudes / rms).view(-1, 1, 1, 1)


def warp(frames: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
    """Backward-warp [T,H,W,C] frames by [T,2,H,W] pixel displacements (border padding)."""
    T, H, W, _ = frames.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    grid = torch.stack([(xs + fields[:, 0] + 0.5) / W * 2 - 1, (ys + fields[:, 1] + 0.5) / H * 2 - 1], dim=-1)
    out = F.grid_sample(frames.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.permute(0, 2, 3, 1).clamp_(0.0, 1.0).contiguous()


def perturbed_scene(frames: int, width: int, height: int, scene_seed: int, motion: str, seed: int,
                    pass_probability: float, keyframe_every: int = 0, first_frame: int = 0,
                    last_frame: int | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Frames first_frame..last_frame (inclusive) of a `frames`-long clip of the procedural scene, each segment
    warped per its draw. Returns (frames [T,H,W,3] float32 0..1, one dict per segment touched:
    {segment, first_frame, last_frame, good, amplitude_px})."""
    if frames < 2:
        raise ValueError(f"the clip needs at least 2 frames, got {frames}")
    last_frame = frames - 1 if last_frame is None or last_frame < 0 else last_frame
    if not 0 <= first_frame <= last_frame <= frames - 1:
        raise ValueError(f"frame range {first_frame}..{last_frame} is not inside the clip's 0..{frames - 1}")
    ranges = segment_ranges(frames, keyframes=KeyframePositions.every(frames, keyframe_every))
    draws = [segment_draw(seed, i, pass_probability, height) for i in range(len(ranges))]
    ids = list(range(first_frame, last_frame + 1))
    amp = torch.zeros(len(ids))
    touched = []
    for i, ((a, b), (good, amplitude)) in enumerate(zip(ranges, draws)):
        lo, hi = max(a, first_frame), min(b - 1, last_frame)
        # A segment belongs to the request when they share more than a boundary keyframe (so rendering exactly
        # segment i depends on segment i's draw only); a one-frame request takes the first segment holding it.
        if hi < lo or (hi == lo and (first_frame != last_frame or touched)):
            continue
        sl = slice(lo - first_frame, hi - first_frame + 1)
        # A keyframe shared by two requested segments shows the worse one: a failing segment fails at both ends.
        amp[sl] = torch.maximum(amp[sl], torch.full_like(amp[sl], amplitude))
        touched.append({"segment": i, "first_frame": a, "last_frame": b - 1, "good": good,
                        "amplitude_px": round(amplitude, 4)})
    times = scene.frame_times(frames)[first_frame:last_frame + 1]
    clean = scene.render_scene(times, width, height, scene_seed, motion)
    return warp(clean, warp_fields(ids, amp, seed, height, width)), touched


def keyframes_of(frames: int, keyframe_every: int) -> list[int]:
    """The keyframes of a perturbed clip (a keyframe every `keyframe_every` frames; 0 = first and last only)."""
    return KeyframePositions.every(frames, keyframe_every).to_list()
