"""Batched CLIP preprocessing and embeddings shared by CLIPScore, aesthetic and novelty.

Preprocessing follows CLIP's: resize the shorter side to the model's input size with bicubic
interpolation (antialiased when shrinking), centre crop, normalise with the model's mean/std (OpenAI's
for the OpenAI weights). It is done on tensors in one batch instead of per-image PIL transforms, so values
differ from PIL's bicubic by interpolation round-off only.
"""
from __future__ import annotations

import torch

from . import models
from .context import Clip, resize, spans, to_nchw

EMBED_BATCH = 64  # frames per forward: all 8 sampled frames of 8 clips in one


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


def _image_key(clip: Clip, indices: list[int], filename: str, arch: str) -> tuple:
    return ("clip_image", filename, arch, tuple(indices), str(models.reduced_dtype(clip.device, clip.precision)))


def embed_frames(clips: list[Clip], indices: list[list[int]], filename: str, arch: str | None = None
                 ) -> list[torch.Tensor]:
    """[n_i, d] L2-normalised image embeddings of frames `indices[i]` of each clip, `EMBED_BATCH` frames of any clips
    per forward (clips on one device, runtime and precision)."""
    first = clips[0]
    dtype = models.reduced_dtype(first.device, first.precision)
    net = models.open_clip_model(filename, arch, first.device, dtype, runtime=first.runtime)
    out = [[] for _ in clips]
    for part in spans([len(i) for i in indices], EMBED_BATCH):
        x = torch.cat([preprocess(clips[k].frames_at(indices[k][s:e]), net) for k, s, e in part])
        with torch.no_grad():
            emb = torch.nn.functional.normalize(net.model.encode_image(x.to(dtype or torch.float32)).float(), dim=-1)
        emb, at = emb.cpu(), 0
        for k, s, e in part:
            out[k].append(emb[at:at + e - s])
            at += e - s
            clips[k].report(f"CLIP {net.arch}", e, len(indices[k]))
    return [torch.cat(parts) if parts else torch.zeros(0, 0) for parts in out]


def image_embeddings(clip: Clip, indices: list[int], filename: str, arch: str | None = None) -> torch.Tensor:
    """[n, d] L2-normalised image embeddings of the frames at `indices` (memoised on the clip)."""
    arch = arch or models.clip_arch_from_filename(filename)
    return clip.memo(_image_key(clip, indices, filename, arch), lambda: embed_frames([clip], [indices], filename, arch)[0])


def prefetch_image_embeddings(clips: list[Clip], indices: list[list[int]], filename: str,
                              arch: str | None = None) -> None:
    """The batched feature path of the CLIP-based scorers: the sampled frames of every clip embedded together, each
    clip's embeddings put in its memo under the key `image_embeddings` reads."""
    arch = arch or models.clip_arch_from_filename(filename)
    todo = [(c, i) for c, i in zip(clips, indices) if not c.has(_image_key(c, i, filename, arch))]
    if not todo:
        return
    embedded = embed_frames([c for c, _ in todo], [i for _, i in todo], filename, arch)
    for (clip, idx), emb in zip(todo, embedded):
        clip.memo(_image_key(clip, idx, filename, arch), lambda emb=emb: emb)


def text_embedding(texts: list[str], filename: str, arch: str | None = None, device="cpu",
                   dtype: torch.dtype | None = None, *, runtime=None) -> torch.Tensor:
    """[n, d] L2-normalised text embeddings (`dtype`: the loaded model's, shared with the image side)."""
    net = models.open_clip_model(filename, arch, device, dtype, runtime=runtime)
    tokens = net.tokenizer(texts).to(device)
    with torch.no_grad():
        emb = net.model.encode_text(tokens)
    return torch.nn.functional.normalize(emb.float(), dim=-1).cpu()
