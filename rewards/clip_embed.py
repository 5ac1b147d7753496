"""Batched CLIP preprocessing and embeddings shared by CLIPScore, aesthetic and novelty.

Preprocessing follows CLIP's: resize the shorter side to the model's input size with bicubic
interpolation (antialiased when shrinking), centre crop, normalise with the model's mean/std (OpenAI's
for the OpenAI weights). It is done on tensors in one batch instead of per-image PIL transforms, so values
differ from PIL's bicubic by interpolation round-off only.
"""
from __future__ import annotations

import torch

from . import models
from .context import Clip, resize, to_nchw

EMBED_BATCH = 16


def preprocess(frames: torch.Tensor, net: models.OpenClip) -> torch.Tensor:
    """[n,H,W,3] in 0..1 -> [n,3,S,S] normalised."""
    S = net.image_size
    H, W = frames.shape[1:3]
    scale = S / min(H, W)
    h, w = max(S, round(H * scale)), max(S, round(W * scale))
    x = resize(frames, (h, w), mode="bicubic").clamp(0, 1)
    top, left = (h - S) // 2, (w - S) // 2
    x = to_nchw(x[:, top:top + S, left:left + S])
    mean, std = net.mean.to(x.device).view(1, 3, 1, 1), net.std.to(x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def image_embeddings(clip: Clip, indices: list[int], filename: str, arch: str | None = None) -> torch.Tensor:
    """[n, d] L2-normalised image embeddings of the frames at `indices` (memoised on the clip)."""
    dtype = models.reduced_dtype(clip.device, clip.precision)
    net = models.open_clip_model(filename, arch, clip.device, dtype, runtime=clip.runtime)

    def compute():
        out = []
        for s, e in clip.chunks(len(indices), f"CLIP {net.arch}", EMBED_BATCH):
            with torch.no_grad():
                emb = net.model.encode_image(preprocess(clip.frames_at(indices[s:e]), net).to(dtype or torch.float32))
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out)

    return clip.memo(("clip_image", filename, net.arch, tuple(indices), str(dtype)), compute)


def text_embedding(texts: list[str], filename: str, arch: str | None = None, device="cpu",
                   dtype: torch.dtype | None = None, *, runtime=None) -> torch.Tensor:
    """[n, d] L2-normalised text embeddings (`dtype`: the loaded model's, shared with the image side)."""
    net = models.open_clip_model(filename, arch, device, dtype, runtime=runtime)
    tokens = net.tokenizer(texts).to(device)
    with torch.no_grad():
        emb = net.model.encode_text(tokens)
    return torch.nn.functional.normalize(emb.float(), dim=-1).cpu()
