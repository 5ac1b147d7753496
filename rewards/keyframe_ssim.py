"""Keyframe SSIM: how faithfully the clip passes through its anchor keyframes.

Definition: SSIM (Wang et al. 2004; Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data_range 1, no
sample covariance, valid-window averaging, channel mean) between each anchor keyframe and the generated
frame at its position, computed by pytorch-msssim on the full-resolution RGB frames. Equal to
`skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=-1)` to ~1e-5.
Positions: given explicitly, else 1 keyframe -> frame 0; 2 -> first and last; K == T -> every frame;
otherwise K evenly spaced positions (first and last included).
Value: mean SSIM over keyframes, range [-1, 1], higher = better (1 = identical). per_item: one per keyframe.
"""
from __future__ import annotations

import torch

from .context import Clip, evenly_spaced, resize, to_nchw
from .result import RewardResult

NAME = "keyframe_ssim"
RANGE = (-1.0, 1.0)
ASPECT_TOLERANCE = 0.01


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of [n,H,W,C] frames in 0..1 (the pack's SSIM everywhere)."""
    from pytorch_msssim import ssim as _ssim

    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[1], a.shape[2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape[2]}x{a.shape[1]}")
    return _ssim(to_nchw(a.float()), to_nchw(b.float()), data_range=1.0, size_average=False, win_size=11,
                 win_sigma=1.5, K=(0.01, 0.03))


def resolve_positions(clip: Clip) -> list[int]:
    K, T = clip.keyframes.shape[0], clip.num_frames
    if clip.keyframe_positions is not None:
        positions = clip.keyframe_positions
        if len(positions) != K:
            raise ValueError(f"{K} keyframes but {len(positions)} keyframe positions: give one position per keyframe.")
        bad = [p for p in positions if not 0 <= p < T]
        if bad:
            raise ValueError(f"keyframe positions {bad} are outside the clip (0..{T - 1}).")
        return list(positions)
    if K == 1:
        return [0]
    if K == 2:
        return [0, T - 1]
    if K == T:
        return list(range(T))
    if K > T:
        raise ValueError(f"{K} keyframes for a {T}-frame clip: give keyframe positions explicitly.")
    return evenly_spaced(K, T)


def matched_keyframes(clip: Clip) -> tuple[torch.Tensor, str]:
    """Keyframes at the clip's resolution. Same aspect ratio -> resized (noted); different -> ValueError."""
    kf = clip.keyframes
    (H, W), (h, w) = clip.size, (int(kf.shape[1]), int(kf.shape[2]))
    if (h, w) == (H, W):
        return kf.to(clip.device, torch.float32).clamp(0, 1), ""
    if abs((w / h) / (W / H) - 1) > ASPECT_TOLERANCE:
        raise ValueError(f"keyframes are {w}x{h} but the frames are {W}x{H} (different aspect ratio): resize or crop "
                         "the keyframes to the video's aspect ratio first.")
    out = resize(kf.to(clip.device, torch.float32).clamp(0, 1), (H, W), mode="bicubic").clamp(0, 1)
    return out, f"keyframes resized from {w}x{h} to {W}x{H}"


def score(clip: Clip) -> RewardResult:
    if clip.keyframes is None:
        return RewardResult.not_applicable(NAME, "no keyframes given", RANGE, "keyframe")
    positions = resolve_positions(clip)
    keyframes, note = matched_keyframes(clip)
    values = torch.empty(len(positions))
    for s, e in clip.chunks(len(positions), "keyframe SSIM"):
        values[s:e] = ssim(keyframes[s:e], clip.frames_at(positions[s:e])).cpu()
    return RewardResult(NAME, float(values.mean()), values, torch.tensor(positions, dtype=torch.float32),
                        "keyframe", RANGE, {"positions": positions, "min": float(values.min())}, True, note)
