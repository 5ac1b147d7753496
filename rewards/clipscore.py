"""CLIP text-video score: Hessel et al. 2021 CLIPScore on frames sampled evenly across the clip.

Definition: `num_samples` frames (default 8) evenly spaced over the whole clip (first and last included,
so a prompt met only at the start does not score as if met throughout); per frame
    CLIPScore = 2.5 * max(cos(E_image, E_text), 0)
with OpenAI CLIP ViT-B/32 through open_clip (`ViT-B-32-quickgelu`: the OpenAI weights need QuickGELU or
their outputs are silently wrong), CLIP preprocessing (bicubic, centre crop, OpenAI mean/std).
Not torchmetrics' CLIPScore (100 * cos, clamped after averaging).
Value: mean over sampled frames, range [0, 2.5], higher = better (good text-image matches are ~0.75-0.9
with ViT-B/32). per_item: per sampled frame. Weights: `clip/ViT-B-32-quickgelu.safetensors`.
"""
from __future__ import annotations

import torch

from . import models
from .clip_embed import image_embeddings, prefetch_image_embeddings, text_embedding
from .context import Clip
from .result import RewardResult
from .scorer import scorer

NAME = "clip_score"
RANGE = (0.0, 2.5)
WEIGHT = 2.5
NUM_SAMPLES = 8


def clipscore_from_cosine(cos: torch.Tensor) -> torch.Tensor:
    return WEIGHT * cos.clamp(min=0)


def _text_key(clip: Clip, weights: str, arch: str | None) -> tuple:
    dtype = models.reduced_dtype(clip.device, clip.precision)
    return ("clip_text", weights, arch or models.clip_arch_from_filename(weights), clip.prompt.strip(), str(dtype))


def prompt_embedding(clip: Clip, weights: str = models.CLIPSCORE_FILE, arch: str | None = None) -> torch.Tensor:
    """[d] L2-normalised CLIP text embedding of the clip's prompt (memoised on the clip, keyed by the prompt)."""
    dtype = models.reduced_dtype(clip.device, clip.precision)
    return clip.memo(_text_key(clip, weights, arch), lambda: text_embedding(
        [clip.prompt.strip()], weights, arch, clip.device, dtype, runtime=clip.runtime)[0])


def prefetch(clips: list[Clip], num_samples: int = NUM_SAMPLES, weights: str = models.CLIPSCORE_FILE,
             arch: str | None = None) -> None:
    """The batched feature path: sampled frames of every clip with a prompt embedded together, and each distinct
    prompt once; each clip's embeddings put in its memo under the keys `score` reads."""
    clips = [c for c in clips if c.prompt.strip()]
    if not clips:
        return
    prefetch_image_embeddings(clips, [c.sample_indices(num_samples) for c in clips], weights, arch)
    todo = [c for c in clips if not c.has(_text_key(c, weights, arch))]
    if not todo:
        return
    prompts = sorted({c.prompt.strip() for c in todo})
    first = todo[0]
    emb = text_embedding(prompts, weights, arch, first.device, models.reduced_dtype(first.device, first.precision),
                         runtime=first.runtime)
    for clip in todo:
        row = emb[prompts.index(clip.prompt.strip())]
        clip.memo(_text_key(clip, weights, arch), lambda row=row: row)


@scorer(NAME, RANGE, uses=("prompt",), model_folders=("clip",),
        summary="Hessel CLIPScore 2.5*max(cos,0) of evenly sampled frames vs the prompt")
def score(clip: Clip, num_samples: int = NUM_SAMPLES, weights: str = models.CLIPSCORE_FILE,
          arch: str | None = None) -> RewardResult:
    prompt = clip.prompt.strip()
    if not prompt:
        return RewardResult.not_applicable(NAME, "no prompt given", RANGE, "sample")
    idx = clip.sample_indices(num_samples)
    img = image_embeddings(clip, idx, weights, arch)
    cos = img @ prompt_embedding(clip, weights, arch)
    values = clipscore_from_cosine(cos)
    dtype = models.reduced_dtype(clip.device, clip.precision)
    net = models.open_clip_model(weights, arch, clip.device, dtype, runtime=clip.runtime)
    details = {"sampled_frames": idx, "cosine": cos.tolist(), "model": net.arch}
    return RewardResult(NAME, float(values.mean()), values, torch.tensor(idx, dtype=torch.float32), "sample", RANGE,
                        details)
