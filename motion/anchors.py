"""Keyframe anchors: which frames are fixed, where they land in a model's latent, putting them back, and the three
ways the Keyframe Generator makes keyframes.

Pure torch; used by the keyframe generator and the flow-guided refiner (nodes/generate.py), which sample with
the user's model through ComfyUI (given here as callables). Anchors are the artist's "non-negotiable" frames:
they are held fixed in latent space while sampling and then pasted back pixel-exact after decoding, because a VAE
round trip alone would shift them. Keyframe positions follow common.keyframes.KeyframePositions.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

CONSISTENCY_MODES = ("img2img_chain", "seed_per_keyframe", "anchor_blend")


def latent_frame_of(frame: int, temporal_stride: int) -> int:
    """Latent time index holding pixel frame `frame` for causal video VAEs (Wan, Hunyuan, LTX...):
    latent 0 encodes frame 0 alone, latent k >= 1 encodes frames (k-1)*s+1 .. k*s."""
    if temporal_stride <= 1 or frame == 0:
        return frame
    return (frame - 1) // temporal_stride + 1


def latent_length(num_frames: int, temporal_stride: int) -> int:
    return num_frames if temporal_stride <= 1 else (num_frames - 1) // temporal_stride + 1


def video_noise_mask(positions: list[int], num_frames: int, temporal_stride: int, latent_hw: tuple[int, int]) -> torch.Tensor:
    """[1, 1, T', h, w] mask for a 5-D video latent: 0 where a latent frame holds a keyframe (kept), 1 elsewhere
    (re-sampled). A latent frame that also holds non-key frames is kept too: fixing the anchor wins."""
    mask = torch.ones(1, 1, latent_length(num_frames, temporal_stride), *latent_hw)
    for p in positions:
        mask[:, :, latent_frame_of(p, temporal_stride)] = 0.0
    return mask


def image_noise_mask(positions: list[int], num_frames: int, latent_hw: tuple[int, int]) -> torch.Tensor:
    """[T, 1, h, w] mask for a batch of per-frame image latents: 0 on keyframes, 1 elsewhere."""
    mask = torch.ones(num_frames, 1, *latent_hw)
    mask[positions] = 0.0
    return mask


def paste_anchors(frames: torch.Tensor, anchors: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """Frames with anchors written back bit-exact at their positions (frames [T,H,W,C], anchors [K,H,W,C])."""
    if anchors.shape[0] != len(positions):
        raise ValueError(f"{anchors.shape[0]} anchor frames for {len(positions)} positions")
    if anchors.shape[1:] != frames.shape[1:]:
        raise ValueError(f"anchor frames are {tuple(anchors.shape[1:3])} (HxW) but the clip is "
                         f"{tuple(frames.shape[1:3])}: resize the keyframes to the clip size first")
    out = frames.clone()
    out[positions] = anchors.to(out.dtype)
    return out


# sample(latent, seed, denoise, shared_noise) -> latent: the user's model (ComfyUI's sampler) on a latent batch;
# shared_noise gives every batch item the same noise.
SampleFn = Callable[[torch.Tensor, int, float, bool], torch.Tensor]


def keyframe_latents(consistency: str, count: int, seed: int, chain_denoise: float, *, sample: SampleFn,
                     encode: Callable[[torch.Tensor], torch.Tensor], empty: Callable[[int], torch.Tensor],
                     start: torch.Tensor | None = None, end: torch.Tensor | None = None,
                     progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Latents of `count` keyframes ([count, ...], in clip order) by one consistency strategy:

    img2img_chain      keyframe i is keyframe i-1 re-sampled at `chain_denoise` with seed + i (sequential); the
                       first is `start` encoded, else sampled from scratch with `seed`
    seed_per_keyframe  all keyframes in one batch from one seed: from `start` encoded at `chain_denoise`, else
                       from empty latents at full denoise
    anchor_blend       every keyframe starts from a linear blend of `start` and `end` (encoded), shared noise,
                       at `chain_denoise`

    `encode(images)` gives one latent per image, `empty(n)` n empty latents; `progress(n)` is called after n more
    keyframes are done (the node's progress bar; it may raise to cancel). Anchors are not pasted here: decode,
    then `paste_anchors`."""
    if consistency not in CONSISTENCY_MODES:
        raise ValueError(f"consistency must be one of {', '.join(CONSISTENCY_MODES)}, got {consistency!r}")
    if consistency == "anchor_blend" and (start is None or end is None):
        raise ValueError("anchor_blend needs both start_image and end_image")
    done = progress or (lambda n: None)
    if consistency == "img2img_chain":
        latents = []
        current = encode(start) if start is not None else None
        for i in range(count):
            if current is None:
                current = sample(empty(1), seed, 1.0, False)
            elif i > 0:
                current = sample(current, seed + i, chain_denoise, False)
            latents.append(current)
            done(1)
        return torch.cat(latents, dim=0)
    if consistency == "anchor_blend":
        ends = encode(torch.cat([start, end]))
        weights = torch.linspace(0, 1, count).view(-1, *([1] * (ends.ndim - 1)))
        out = sample(ends[:1] * (1 - weights) + ends[1:] * weights, seed, chain_denoise, True)
    elif start is not None:
        out = sample(encode(start).repeat_interleave(count, dim=0), seed, chain_denoise, False)
    else:
        out = sample(empty(count), seed, 1.0, False)
    done(count)
    return out
