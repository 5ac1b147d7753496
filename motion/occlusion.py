"""Forward-backward flow consistency (Sundaram, Brox & Keutzer 2010; as used by Lai et al. 2018 for
temporal warping error): a pixel is valid when following the forward flow and then the backward flow
from where it lands returns (nearly) to the start, and it lands inside the frame.

    |w_f + w_b(x + w_f)|^2 < alpha1 * (|w_f|^2 + |w_b(x + w_f)|^2) + alpha2
"""
from __future__ import annotations

import torch

from .warp import backward_warp, inside_mask


def fb_occlusion_mask(fwd: torch.Tensor, bwd: torch.Tensor, alpha1: float = 0.01,
                      alpha2: float = 0.5) -> torch.Tensor:
    """[N,H,W] float32, 1 = valid (visible in both frames, flows agree), 0 = occluded/unreliable, for the
    pixels of the *source* frame of `fwd` (src->dst); `bwd` is dst->src. Swap the arguments for the mask
    of the destination frame. alpha1/alpha2 are the paper's defaults."""
    if fwd.shape != bwd.shape or fwd.ndim != 4 or fwd.shape[-1] != 2:
        raise ValueError(f"Forward and backward flows must both be [N,H,W,2]; got {tuple(fwd.shape)} "
                         f"and {tuple(bwd.shape)}.")
    bwd_at = backward_warp(bwd, fwd)  # backward flow read where each source pixel lands
    diff = (fwd + bwd_at).pow(2).sum(-1)
    bound = alpha1 * (fwd.pow(2).sum(-1) + bwd_at.pow(2).sum(-1)) + alpha2
    return ((diff < bound) & inside_mask(fwd)).float()
