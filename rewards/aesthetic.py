"""Aesthetic: LAION aesthetic predictor on CLIP ViT-L/14 embeddings of frames sampled across the clip.

Definition: `num_samples` (8) evenly spaced frames -> OpenAI CLIP ViT-L/14 (open_clip `ViT-L-14-quickgelu`,
file `clip/ViT-L-14-quickgelu.safetensors`) image embeddings, L2-normalised -> a LAION head from
`aesthetic/`: the "improved" MLP `sac+logos+ava1-l14-linearMSE.pth` (default; affine, output ~1..10) or
the V1 linear head `sa_0_4_vit_l_14_linear.pth` (output ~-3..12). Scores are on the heads' native
1-10-like scale, not rescaled (VBench divides the linear head's score by 10).
Value: `reduce`="mean" (default) the mean over sampled frames; "min" the worst frame (catches a single
ugly frame); "mean_min" their average. Range: about [1, 10] (MLP), higher = better. details: mean and min.
"""
from __future__ import annotations

import torch

from . import models
from .clip_embed import image_embeddings, prefetch_image_embeddings
from .context import Clip
from .result import RewardResult
from .scorer import scorer

NAME = "aesthetic"
RANGE = (1.0, 10.0)
NUM_SAMPLES = 8
REDUCES = ("mean", "min", "mean_min")


def head_scores(embeddings: torch.Tensor, head_file: str = models.AESTHETIC_HEADS["mlp"], device="cpu", *,
                runtime=None) -> torch.Tensor:
    """Scores of already L2-normalised CLIP embeddings [n, d]."""
    head = models.aesthetic_head(head_file, device, runtime=runtime)
    if embeddings.shape[-1] != head.in_features:
        raise ValueError(f"aesthetic head {head_file} expects {head.in_features}-d CLIP embeddings, got "
                         f"{embeddings.shape[-1]}-d: use CLIP ViT-L/14 for the L/14 heads.")
    with torch.no_grad():
        return head(embeddings.to(device).float()).cpu()


def prefetch(clips: list[Clip], num_samples: int = NUM_SAMPLES, head: str = models.AESTHETIC_HEADS["mlp"],
             clip_weights: str = models.AESTHETIC_CLIP_FILE, arch: str | None = None, reduce: str = "mean") -> None:
    """The batched feature path: the sampled frames of every clip through CLIP together (the head is one matrix
    product per clip)."""
    prefetch_image_embeddings(clips, [c.sample_indices(num_samples) for c in clips], clip_weights, arch)


@scorer(NAME, RANGE, model_folders=("clip", "aesthetic"),
        summary="LAION aesthetic head on CLIP ViT-L/14 embeddings of sampled frames")
def score(clip: Clip, num_samples: int = NUM_SAMPLES, head: str = models.AESTHETIC_HEADS["mlp"],
          clip_weights: str = models.AESTHETIC_CLIP_FILE, arch: str | None = None, reduce: str = "mean") -> RewardResult:
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
    idx = clip.sample_indices(num_samples)
    values = head_scores(image_embeddings(clip, idx, clip_weights, arch), head, clip.device, runtime=clip.runtime)
    mean, low = float(values.mean()), float(values.min())
    value = {"mean": mean, "min": low, "mean_min": (mean + low) / 2}[reduce]
    rng = RANGE if models.aesthetic_head(head, clip.device, runtime=clip.runtime).kind == "mlp" else (-3.0, 12.0)
    return RewardResult(NAME, value, values, torch.tensor(idx, dtype=torch.float32), "sample", rng,
                        {"mean": mean, "min": low, "reduce": reduce, "head": head, "sampled_frames": idx})
