"""Novelty after k, with a coherence tax: does a long clip keep showing new things after its first k frames,
without getting there by jumping around?

Features: per frame, the LPIPS AlexNet backbone (real weights, from the weight installer) on the frame
resized to 224x224; its 3rd and 5th ReLU stages are average-pooled to a 4x4 grid (layout matters: a pan
that brings new things into view must change the descriptor) and L2-normalised, the concatenation
normalised again (cosine similarities lie in [0, 1]).
Definition, with early frames E = [0, k) and late frames L = [k, T):
    novelty_t = 1 - max_{s in E} cos(f_t, f_s)                      (how unlike anything seen early)
    detour_t  = |f_t - f_t-1| + |f_t+1 - f_t| - |f_t+1 - f_t-1|,  t = 1 .. T-2
                                                   (how much longer the path through frame t is than the
                                                    direct step from frame t-1 to frame t+1)
    tax       = mean_t detour_t                                      (over the whole clip)
    value     = mean_{t in L} novelty_t - coherence_weight * tax     (coherence_weight = 1)
Change that goes somewhere keeps the detour small (0 for a straight path, ~0.6 of a step for the random
walk of a textured pan); flicker, shake and shuffled or cut frames jump away and back, a detour of up to two
steps. The tax is fixed geometry, not relative to the clip's own typical step: an earlier version taxed only
steps larger than twice the clip's median step, so a clip that flickered or shook throughout set its own bar
and its breakage read as novelty (on real AI clips, jittered and flickering copies then scored higher than
their originals almost always).
Value: range [-2.83 * coherence_weight, 1] (real clips: benchmarks/RESULTS.md, "Reward validity"), higher = better:
a clip that loops back to its start scores ~0 novelty, a clip that reaches new content by cuts, shuffles, flicker
or shake pays the tax.
per_item: novelty_t - coherence_weight * tax per late frame (their mean is the value). details: novelty and
tax means, the detour per frame. Not applicable when T <= k (default k = 32) or k < 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import models
from .context import Clip, to_nchw
from .result import RewardResult
from .scorer import scorer

NAME = "novelty_after_k"
RANGE = (-3.0, 1.0)  # the detour of unit vectors with non-negative entries is at most 2 * sqrt(2)
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


def detours(f: torch.Tensor) -> torch.Tensor:
    """[T-2] excess length of the feature path through each interior frame over the direct step."""
    step = (f[1:] - f[:-1]).norm(dim=1)
    return step[:-1] + step[1:] - (f[2:] - f[:-2]).norm(dim=1)


@scorer(NAME, RANGE, model_folders=("lpips",),
        summary="new content after frame k minus a tax on detours of the feature path (flicker, shake, cuts)")
def score(clip: Clip, k: int = K, coherence_weight: float = 1.0) -> RewardResult:
    T = clip.num_frames
    if k < 2 or T <= k:
        return RewardResult.not_applicable(NAME, f"needs more than k = {k} frames (and k >= 2); clip has {T}",
                                           RANGE, "frame")
    f = content_features(clip).double()
    novelty = 1 - (f[k:] @ f[:k].T).max(dim=1).values
    detour = detours(f)
    tax = float(detour.mean())
    values = novelty - coherence_weight * tax
    details = {"k": k, "novelty_mean": float(novelty.mean()), "tax": tax, "coherence_weight": coherence_weight,
               "detour": detour.float().tolist()}
    return RewardResult(NAME, float(values.mean()), values.float(), torch.arange(k, T, dtype=torch.float32), "frame",
                        RANGE, details)
