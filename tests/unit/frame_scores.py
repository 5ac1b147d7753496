"""Quality of rebuilt frames, shared by the inbetweening tests."""
from __future__ import annotations

import torch

from rewardloop.common.image import ssim


def rebuilt_frame_scores(out: torch.Tensor, truth: torch.Tensor, keyframe_positions) -> tuple[float, float]:
    """(mean PSNR in dB, SSIM) over the frames that are not keyframes, [T,H,W,C] in 0..1."""
    mask = torch.ones(out.shape[0], dtype=torch.bool)
    mask[keyframe_positions] = False
    mse = ((out[mask] - truth[mask]) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(1 / mse)).mean().item()
    s = ssim(out[mask], truth[mask]).mean().item()
    return psnr, s
