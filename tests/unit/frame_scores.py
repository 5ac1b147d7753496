"""Quality of rebuilt frames, shared by the inbetweening tests."""
from __future__ import annotations

import torch
from pytorch_msssim import ssim


def rebuilt_frame_scores(out: torch.Tensor, truth: torch.Tensor, keyframe_positions) -> tuple[float, float]:
    """(mean PSNR in dB, SSIM) over the frames that are not keyframes, [T,H,W,C] in 0..1."""
    mask = torch.ones(out.shape[0], dtype=torch.bool)
    mask[keyframe_positions] = False
    mse = ((out[mask] - truth[mask]) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(1 / mse)).mean().item()
    s = ssim(out[mask].permute(0, 3, 1, 2), truth[mask].permute(0, 3, 1, 2), data_range=1.0, win_size=11).item()
    return psnr, s
