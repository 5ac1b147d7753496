"""Keyframe SSIM: how faithfully the clip passes through its anchor keyframes.

Definition: SSIM (Wang et al. 2004; Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data_range 1, no
sample covariance, valid-window averaging, channel mean; common.image.ssim) between each anchor keyframe and the
generated frame at its position, on the full-resolution RGB frames. Equal to
`skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=-1)` up to float round-off.
Positions: given explicitly, else 1 keyframe -> frame 0; 2 -> first and last; more -> evenly spaced, first and
last included (KeyframePositions.spread).
Value: mean SSIM over keyframes, range [-1, 1], higher = better (1 = identical). per_item: one per keyframe.
"""
from __future__ import annotations

import torch

from ..common.image import ssim
from .context import Clip, resize
from .result import RewardResult
from .scorer import scorer

NAME = "keyframe_ssim"
RANGE = (-1.0, 1.0)
ASPECT_TOLERANCE = 0.01


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


@scorer(NAME, RANGE, uses=("keyframes",),
        summary="SSIM of the frames at the keyframe positions vs the anchor keyframes")
def score(clip: Clip) -> RewardResult:
    if clip.keyframes is None:
        return RewardResult.not_applicable(NAME, "no keyframes given", RANGE, "keyframe")
    positions = clip.anchor_positions()
    keyframes, note = matched_keyframes(clip)
    values = torch.empty(len(positions))
    for s, e in clip.chunks(len(positions), "keyframe SSIM"):
        values[s:e] = ssim(keyframes[s:e], clip.frames_at(positions[s:e])).cpu()
    return RewardResult(NAME, float(values.mean()), values, torch.tensor(positions, dtype=torch.float32),
                        "keyframe", RANGE, {"positions": positions, "min": float(values.min())}, True, note)
