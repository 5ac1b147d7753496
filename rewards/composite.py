"""Composite reward: a weighted combination of the scorers that could actually run.

Definition: for the scorers with a weight w_i > 0 that are applicable and whose model files exist,
    value = sum_i w_i * v_i / sum_i w_i          (weighted mean over the *included* components)
Excluded components are listed with the reason (no weight given, weight 0, model file missing, not
applicable to this clip) and are never counted as 0 or 1: a missing CLIP checkpoint changes which
components are averaged, not the scale of the result. `details["weighted_sum"]` also gives the raw
sum_i w_i * v_i. The components keep their own scales (aesthetic is ~1..10, most others ~0..1, fvd_lite
<= 0): choose weights accordingly. Range: that of the included components (the weighted mean lies
between their values).
per_item: a per-frame curve: each included component's per-item values interpolated onto frames
0..T-1 (linear between item positions, held at the ends), combined with the same weights (frames a
component does not cover, e.g. before its first sampled frame, use the nearest value).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..modelfiles import WeightNotFound
from .context import Clip
from .registry import SCORERS, run
from .result import RewardResult

NAME = "composite"

DEFAULT_WEIGHTS: dict[str, float] = {
    "keyframe_ssim": 1.0,
    "temporal_lpips": 1.0,
    "flow_smoothness": 0.5,
    "structure_constancy": 0.5,
    "seam_consistency": 0.5,
    "loop_break": 0.5,
    "identity_lock": 0.5,
    "clip_score": 0.5,
    "caption_consistency": 0.5,
    "framing": 0.25,
    "aesthetic": 0.0,
    "fvd_lite": 0.0,
    "novelty_after_k": 0.0,
}


def to_frame_axis(result: RewardResult, num_frames: int) -> torch.Tensor:
    """A result's per-item values as a [T] curve over frames (NaN when it has no finite item)."""
    v, p = result.per_item.numpy(), result.positions.numpy()
    ok = np.isfinite(v)
    if not ok.any():
        return torch.full((num_frames,), math.nan)
    return torch.from_numpy(np.interp(np.arange(num_frames), p[ok], v[ok]).astype(np.float32))


def composite(clip: Clip, weights: dict[str, float] | None = None, options: dict[str, dict] | None = None,
              on_component=None) -> tuple[RewardResult, list[RewardResult]]:
    """(aggregate result, component results). `options[name]` are keyword options for that scorer;
    `on_component(name, index, total)` is called before each scorer runs (progress/cancel hook)."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    options = options or {}
    unknown = sorted(set(weights) - set(SCORERS)) + sorted(set(options) - set(SCORERS))
    if unknown:
        raise ValueError(f"unknown scorer name(s) {unknown}; available: {', '.join(SCORERS)}")
    bad = {k: w for k, w in weights.items() if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"weights must be finite numbers >= 0, got {bad}")

    components: dict[str, dict] = {}
    results: list[RewardResult] = []
    todo = [n for n in SCORERS if weights.get(n, 0) > 0]
    if any("flow" in SCORERS[n].uses for n in todo) and clip.prefetch_flow():
        # The flow is being computed on a CPU thread: run the scorers that do not need it first.
        todo.sort(key=lambda n: "flow" in SCORERS[n].uses)
    for name in SCORERS:
        if name not in weights:
            components[name] = {"included": False, "reason": "no weight given", "weight": None}
        elif weights[name] == 0:
            components[name] = {"included": False, "reason": "weight 0", "weight": 0.0}
    for i, name in enumerate(todo):
        if on_component is not None:
            on_component(name, i, len(todo))
        w = float(weights[name])
        try:
            res = run(name, clip, **options.get(name, {}))
        except (WeightNotFound, ImportError) as err:
            components[name] = {"included": False, "weight": w, "reason": f"model files missing: {err}"}
            continue
        results.append(res)
        if not res.applicable:
            components[name] = {"included": False, "weight": w, "reason": f"not applicable: {res.note}"}
        elif not math.isfinite(res.value):
            components[name] = {"included": False, "weight": w, "reason": "no finite value"}
        else:
            components[name] = {"included": True, "weight": w, "value": res.value, "contribution": w * res.value}

    order = list(SCORERS)
    results.sort(key=lambda r: order.index(r.name))
    included = [r for r in results if components[r.name]["included"]]
    total_w = sum(components[r.name]["weight"] for r in included)
    details = {"components": {n: components[n] for n in SCORERS if n in components},
               "included": [r.name for r in included],
               "excluded": {n: c["reason"] for n, c in components.items() if not c["included"]},
               "total_weight_included": total_w,
               "weighted_sum": sum(components[r.name]["contribution"] for r in included)}
    T = clip.num_frames
    if not included:
        agg = RewardResult.not_applicable(NAME, "no component could be computed (see details.excluded)",
                                          (-math.inf, math.inf), "frame", details)
        return agg, results
    value = details["weighted_sum"] / total_w
    curves = torch.stack([to_frame_axis(r, T) for r in included])
    w = torch.tensor([components[r.name]["weight"] for r in included])[:, None].expand_as(curves)
    finite = torch.isfinite(curves)
    per_frame = (torch.where(finite, curves, 0) * w).sum(0) / (w * finite).sum(0).clamp(min=1e-12)
    lo, hi = min(r.value_range[0] for r in included), max(r.value_range[1] for r in included)
    note = "" if len(included) == len(todo) else f"{len(todo) - len(included)} weighted component(s) excluded"
    agg = RewardResult(NAME, value, per_frame, torch.arange(T, dtype=torch.float32), "frame", (lo, hi), details,
                       True, note)
    return agg, results
