"""Novelty after k, with a coherence tax: does a long clip keep showing new things after its first k frames,
without getting there by jumping around?

Features: per frame, the LPIPS AlexNet backbone (real weights, from the weight installer) on the frame
resized to 224x224; its 3rd and 5th ReLU stages are average-pooled to a 4x4 grid (layout matters: a pan
that brings new things into view must change the descriptor) and L2-normalised, the concatenation
normalised again (cosine similarities lie in [0, 1]).
Definition, with early frames E = [0, k) and late frames L = [k, T):
    novelty_t = 1 - max_{s in E} cos(f_t, f_s)                      (how unlike anything seen early)
    jump_t    = 1 - cos(f_t, f_t-1)                                  (step size into frame t)
    j_ref     = max(2 * median(jump over E), 0.01)                   (the clip's own normal step)
    tax_t     = max(0, jump_t - j_ref)                               (only abnormal jumps are taxed)
    reward_t  = novelty_t - coherence_weight * tax_t   (coherence_weight = 1)
Value: mean over late frames, range [-1, 1], higher = better: a clip that loops back to its start scores
~0 novelty, a clip that reaches new content by cuts/shuffles pays the tax. per_item: reward_t per late
frame. Not applicable when T <= k (default k = 32) or k < 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import models
from .context import Clip, to_nchw
from .result import RewardResult
from .scorer import scorer

NAME = "novelty_after_k"
RANGE = (-1.0, 1.0)
K = 32
FEATURE_SIZE = 224
GRID = 4


def content_features(clip: Clip) -> torch.Tensor:
    """[T, d] L2-normalised AlexNet descriptors (memoised)."""
    def compute():
        lp = models.lpips_model("alex", clip.device, runtime=clip.runtime)
        out = []
        for s, e in clip.chunks(clip.num_frames, "content features"):
            x = to_nchw(clip.frames_at(slice(s, e), (FEATURE_SIZE, FEATURE_SIZE))) * 2 - 1
            with torch.no_grad():
                layers = lp.net(lp.scaling_layer(x))
            pooled = [F.normalize(F.adaptive_avg_pool2d(layers[i], GRID).flatten(1), dim=1) for i in (2, 4)]
            out.append(F.normalize(torch.cat(pooled, dim=1), dim=1).float().cpu())
        return torch.cat(out)

    return clip.memo(("content_features",), compute)


@scorer(NAME, RANGE, model_folders=("lpips",), summary="new content after frame k minus a tax on abnormal jumps")
def score(clip: Clip, k: int = K, coherence_weight: float = 1.0) -> RewardResult:
    T = clip.num_frames
    if k < 2 or T <= k:
        return RewardResult.not_applicable(NAME, f"needs more than k = {k} frames (and k >= 2); clip has {T}",
                                           RANGE, "frame")
    f = content_features(clip)
    early, late = f[:k], f[k:]
    novelty = 1 - (late @ early.T).max(dim=1).values
    jumps = 1 - (f[1:] * f[:-1]).sum(1)  # jumps[t-1] = step into frame t
    j_ref = max(2 * float(jumps[:k - 1].median()), 0.01)
    tax = (jumps[k - 1:] - j_ref).clamp(min=0)
    values = novelty - coherence_weight * tax
    details = {"k": k, "novelty_mean": float(novelty.mean()), "tax_mean": float(tax.mean()), "jump_ref": j_ref,
               "coherence_weight": coherence_weight}
    return RewardResult(NAME, float(values.mean()), values, torch.arange(k, T, dtype=torch.float32), "frame", RANGE,
                        details)
