"""Image measures with one definition each: luma and SSIM.

SSIM is Wang et al. 2004 as `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)` defines it: Gaussian window 11 with sigma 1.5, K1 0.01, K2 0.03, and
only windows that lie wholly inside the image (no padded border), so a map is 10 pixels smaller on each axis.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)


def luma(frames: torch.Tensor) -> torch.Tensor:
    """[n,H,W,C] in 0..1 -> [n,H,W] Rec. 601 luma (kornia's rgb_to_grayscale); one channel is taken as luma,
    alpha is ignored."""
    import kornia

    if frames.shape[-1] == 1:
        return frames[..., 0]
    return kornia.color.rgb_to_grayscale(frames[..., :3].permute(0, 3, 1, 2))[:, 0]


def _gaussian_valid(x: torch.Tensor) -> torch.Tensor:
    """[n,c,h,w] -> Gaussian-weighted means over every 11x11 window inside the image, [n,c,h-10,w-10].
    Two 1-D passes (the window is separable): a full 2-D kernel costs 11x the reads a pixel."""
    import kornia

    c = x.shape[1]
    k = kornia.filters.get_gaussian_kernel1d(SSIM_WINDOW, SSIM_SIGMA).to(x)  # [1, 11], sums to 1
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-window SSIM of [n,c,h,w] images: [n,c,h-10,w-10], one value per 11x11 window inside the images.
    Written on torch convolutions because scorers mask the map (structure constancy), and pytorch-msssim returns
    only means."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got "
                         f"{a.shape[-1]}x{a.shape[-2]}")
    a, b = a.float(), b.float()
    c1, c2 = (SSIM_K[0] * data_range) ** 2, (SSIM_K[1] * data_range) ** 2
    mu_a, mu_b = _gaussian_valid(a), _gaussian_valid(b)
    var_a = _gaussian_valid(a * a) - mu_a ** 2
    var_b = _gaussian_valid(b * b) - mu_b ** 2
    cov = _gaussian_valid(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM [n] of [n,H,W,C] frames in 0..1: the mean of the SSIM map over windows and channels."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return ssim_map(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)).mean(dim=(1, 2, 3))
