"""Keyframe anchors: which frames are fixed, where they land in a model's latent, and putting them back.

Pure torch; used by the keyframe generator and the flow-guided refiner (nodes/generate.py), which sample with
the user's model through ComfyUI. Anchors are the artist's "non-negotiable" frames: they are held fixed in
latent space while sampling and then pasted back pixel-exact after decoding, because a VAE round trip alone
would shift them.
"""
from __future__ import annotations

import json

import torch


def parse_positions(positions, num_frames: int) -> list[int]:
    """Keyframe indices from a JSON string or a sequence; validated against the clip length."""
    if isinstance(positions, str):
        text = positions.strip()
        if not text:
            return []
        try:
            positions = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"keyframe positions must be a JSON list of frame indices such as [0, 8, 16]; "
                             f"got {text[:80]!r} ({err.msg})") from None
    try:
        indices = sorted({int(p) for p in positions})
    except (TypeError, ValueError):
        raise ValueError(f"keyframe positions must be integers; got {positions!r}") from None
    bad = [p for p in indices if p < 0 or p >= num_frames]
    if bad:
        raise ValueError(f"keyframe positions {bad} are outside the clip (frames 0..{num_frames - 1})")
    return indices


def evenly_spaced_positions(length: int, every: int) -> list[int]:
    """Frame indices of keyframes every `every` frames; first and last always included."""
    if length < 1:
        raise ValueError("length must be at least 1 frame")
    if every <= 0:
        return sorted({0, length - 1})
    return sorted(set(range(0, length, every)) | {length - 1})


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


def check_frames(frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
    """IMAGE batch sanity: 4-D, non-empty, finite, RGB (alpha dropped, grey expanded)."""
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"{name}: expected an IMAGE batch [frames, height, width, channels], got shape "
                         f"{tuple(frames.shape)}")
    if not torch.isfinite(frames).all():
        raise ValueError(f"{name} contain NaN or infinite values: check the node that produced them")
    channels = frames.shape[-1]
    if channels == 4:
        frames = frames[..., :3]
    elif channels == 1:
        frames = frames.expand(*frames.shape[:-1], 3)
    elif channels != 3:
        raise ValueError(f"{name}: expected 1, 3 or 4 channels, got {channels}")
    return frames.float().clamp(0.0, 1.0)
