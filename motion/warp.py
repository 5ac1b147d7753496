"""Warping with the pack's flow convention.

Convention (same everywhere in the pack, and in motion.scene's ground truth): flow[n, y, x] = (dx, dy) in
pixels maps a pixel of the *source* frame to its position in the *destination* frame. Hence
    backward_warp(dst, flow_src_to_dst) ~= src        (sample dst at x + flow)
    forward_splat(src, flow_src_to_dst) ~= dst        (push src pixels to x + flow)
Pixel centres sit at integer coordinates; grid_sample runs with align_corners=False and the matching
half-pixel offset, so a zero flow is an exact identity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(img: torch.Tensor, flow: torch.Tensor) -> None:
    if img.ndim != 4:
        raise ValueError(f"Expected images [N,H,W,C], got shape {tuple(img.shape)}.")
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"Expected flow [N,H,W,2], got shape {tuple(flow.shape)}.")
    if img.shape[:3] != flow.shape[:3]:
        raise ValueError(f"Images {tuple(img.shape)} and flow {tuple(flow.shape)} differ in batch or size: "
                         "the flow must be computed at the images' resolution.")


def sample_grid(flow: torch.Tensor) -> torch.Tensor:
    """grid_sample grid (align_corners=False) that samples at x + flow."""
    N, H, W, _ = flow.shape
    xs = (torch.arange(W, device=flow.device, dtype=flow.dtype) + 0.5) * (2.0 / W) - 1.0
    ys = (torch.arange(H, device=flow.device, dtype=flow.dtype) + 0.5) * (2.0 / H) - 1.0
    base = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)  # [H,W,2]
    scale = torch.tensor([2.0 / W, 2.0 / H], device=flow.device, dtype=flow.dtype)
    # One fused pass over the flow: the per-channel arithmetic and a stack cost several times more on CPU.
    return torch.addcmul(base, flow, scale)


def backward_warp(img: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border",
                  mode: str = "bilinear") -> torch.Tensor:
    """Sample `img` [N,H,W,C] at x + flow [N,H,W,2]: with flow = F(src->dst) and img = dst this rebuilds src.
    Samples that fall outside the frame take the nearest border pixel ("border") or 0 ("zeros"); use
    `inside_mask(flow)` to know which ones did."""
    _check(img, flow)
    out = F.grid_sample(img.permute(0, 3, 1, 2).float(), sample_grid(flow.float()), mode=mode,
                        padding_mode=padding_mode, align_corners=False)
    return out.permute(0, 2, 3, 1)


def inside_mask(flow: torch.Tensor) -> torch.Tensor:
    """[N,H,W] bool: x + flow lands inside the frame (within half a pixel of the border centres)."""
    N, H, W, _ = flow.shape
    xs = torch.arange(W, device=flow.device, dtype=flow.dtype)
    ys = torch.arange(H, device=flow.device, dtype=flow.dtype)[:, None]
    x1, y1 = xs + flow[..., 0], ys + flow[..., 1]
    return (x1 >= -0.5) & (x1 <= W - 0.5) & (y1 >= -0.5) & (y1 <= H - 0.5)


def forward_splat(img: torch.Tensor, flow: torch.Tensor, weights: torch.Tensor | None = None,
                  mode: str = "average", eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Push every source pixel of `img` [N,H,W,C] to x + flow with bilinear footprints.

    mode "average": weighted mean of all contributions (weights [N,H,W] >= 0, default 1);
    mode "softmax": softmax splatting (Niklaus & Liu 2020): contributions weighted by exp(weights), so where
    several source pixels land on one target the one with the larger weight (e.g. nearer, or more
    reliable) wins smoothly. Returns (splatted [N,H,W,C], coverage [N,H,W]): coverage is the bilinear
    footprint received, unweighted (~1 where one source pixel's worth landed, whatever the weights);
    pixels with coverage ~0 are holes (disocclusions) the caller must fill.

    Hand-written with index_add_: the maintained splatting libraries (softmax-splatting, cupy kernels)
    are CUDA-only; index_add_ runs on CPU, CUDA and ROCm alike.
    """
    _check(img, flow)
    if mode not in ("average", "softmax"):
        raise ValueError(f"Unknown splatting mode '{mode}': use 'average' or 'softmax'.")
    N, H, W, C = img.shape
    dev = img.device
    if weights is None:
        w = torch.ones(N, H, W, device=dev)
    else:
        if weights.shape != (N, H, W):
            raise ValueError(f"Splat weights must be [N,H,W] = {(N, H, W)}, got {tuple(weights.shape)}.")
        w = weights.float()
        if mode == "softmax":
            # Shift per image for stability; softmax weights are invariant to a constant per target.
            w = torch.exp(w - w.amax(dim=(1, 2), keepdim=True))
        elif (w < 0).any():
            raise ValueError("Average splatting needs non-negative weights.")
    xs = torch.arange(W, device=dev, dtype=torch.float32)
    ys = torch.arange(H, device=dev, dtype=torch.float32)[:, None]
    x1 = xs + flow[..., 0].float()
    y1 = ys + flow[..., 1].float()
    x0f, y0f = x1.floor(), y1.floor()
    fx, fy = x1 - x0f, y1 - y0f
    x0, y0 = x0f.long(), y0f.long()
    base = (torch.arange(N, device=dev) * H * W)[:, None, None]
    ones = torch.ones_like(w)[..., None]
    src = torch.cat([img.float() * w[..., None], w[..., None], ones], dim=-1).reshape(N * H * W, C + 2)
    acc = torch.zeros(N * H * W, C + 2, device=dev)
    for dx, dy, bw in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xx, yy = x0 + dx, y0 + dy
        ok = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
        idx = (base + yy.clamp(0, H - 1) * W + xx.clamp(0, W - 1)).reshape(-1)
        acc.index_add_(0, idx, src * (bw * ok).reshape(-1, 1))
    acc = acc.view(N, H, W, C + 2)
    out = acc[..., :C] / acc[..., C:C + 1].clamp(min=eps)
    return out, acc[..., C + 1]
