"""Composite reward: a weighted combination of the scorers that could actually run, on one calibrated 0..1 scale.

Definition: for the scorers with a weight w_i > 0 that are applicable and whose model files exist,
    value = sum_i w_i * c_i(v_i) / sum_i w_i     (weighted mean over the *included* components)
where v_i is scorer i's raw value and c_i its fixed calibration (rewards/calibration.py): a logistic map, measured
once on real AI clips, that sends the raw value 9 clean clips in 10 reach to 0.85 and the typical raw value of the
breakage the scorer exists to catch to 0.15. Every component then lies in 0..1 and means the same thing, so the
composite does too, for any weights: 0.85 reads "as clean as nine real clips in ten", whatever the mix. Before
calibration the components kept their own scales (aesthetic ~1..10, fvd_lite <= 0, loop break ~0.2) and a
threshold meant nothing fixed; `calibrated=False` still gives that raw weighted mean.
Excluded components are listed with the reason (no weight given, weight 0, model file missing, not
applicable to this clip) and are never counted as 0 or 1: a missing CLIP checkpoint changes which
components are averaged, not the scale of the result. details["components"][name] keeps the raw value ("raw"),
the calibrated one ("value"), its weight and contribution; `details["weighted_sum"]` is sum_i w_i * c_i(v_i).
Range: 0..1 (calibrated).
per_item: a per-frame curve: each included component's per-item values interpolated onto frames
0..T-1 (linear between item positions, held at the ends), calibrated like the value, combined with the same
weights (frames a component does not cover, e.g. before its first sampled frame, use the nearest value). A
component whose items are a signal rather than scores (loop break) contributes a flat line at its value.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..modelfiles import WeightNotFound
from . import calibration
from .context import Clip
from .registry import SCORERS, run
from .result import RewardResult

NAME = "composite"

# Chosen on real AI clips so the calibrated composite prefers every original to each corruption type
# (benchmarks/RESULTS.md, "Reward validity"). Structure constancy is off by default: a held frame is perfectly
# constant, so it prefers stuttering clips; flow smoothness, which catches stutter and warps, weighs 1. Framing is
# off by default too: on temporal breakage it is a coin toss (about half the broken copies score higher), so its
# weight only decides near ties at random; composition is a choice an artist makes by giving it a weight.
DEFAULT_WEIGHTS: dict[str, float] = {
    "keyframe_ssim": 1.0,
    "temporal_lpips": 1.0,
    "flow_smoothness": 1.0,
    "structure_constancy": 0.0,
    "seam_consistency": 0.5,
    "loop_break": 0.5,
    "identity_lock": 0.5,
    "clip_score": 0.5,
    "caption_consistency": 0.5,
    "framing": 0.0,
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


def _check_weights(weights: dict[str, float], options: dict[str, dict]) -> None:
    unknown = sorted(set(weights) - set(SCORERS)) + sorted(set(options) - set(SCORERS))
    if unknown:
        raise ValueError(f"unknown scorer name(s) {unknown}; available: {', '.join(SCORERS)}")
    bad = {k: w for k, w in weights.items() if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"weights must be finite numbers >= 0, got {bad}")


def composite(clip: Clip, weights: dict[str, float] | None = None, options: dict[str, dict] | None = None,
              on_component=None, calibrated: bool = True) -> tuple[RewardResult, list[RewardResult]]:
    """(aggregate result, component results). `options[name]` are keyword options for that scorer;
    `on_component(name, index, total)` is called before each scorer runs (progress/cancel hook).
    `calibrated=False` averages raw values (each scorer's own scale) instead of calibrated ones."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    options = options or {}
    _check_weights(weights, options)
    results: list[RewardResult] = []
    failed: dict[str, str] = {}
    todo = [n for n in SCORERS if weights.get(n, 0) > 0]
    if any("flow" in SCORERS[n].uses for n in todo) and clip.prefetch_flow():
        # The flow is being computed on a CPU thread: run the scorers that do not need it first.
        todo.sort(key=lambda n: "flow" in SCORERS[n].uses)
    for i, name in enumerate(todo):
        if on_component is not None:
            on_component(name, i, len(todo))
        try:
            results.append(run(name, clip, **options.get(name, {})))
        except (WeightNotFound, ImportError) as err:
            failed[name] = f"model files missing: {err}"
    order = list(SCORERS)
    results.sort(key=lambda r: order.index(r.name))
    return combine(results, weights, clip.num_frames, failed, calibrated), results


def combine(results: list[RewardResult], weights: dict[str, float], num_frames: int,
            failed: dict[str, str] | None = None, calibrated: bool = True) -> RewardResult:
    """The composite of component results that were already computed (what `composite` returns for them):
    scorers with a weight but no result are excluded as "not computed" unless `failed` gives the reason."""
    _check_weights(weights, {})
    failed = failed or {}
    by_name = {r.name: r for r in results}
    components: dict[str, dict] = {}
    for name in SCORERS:
        w = weights.get(name)
        res = by_name.get(name)
        if w is None:
            components[name] = {"included": False, "reason": "no weight given", "weight": None}
        elif w == 0:
            components[name] = {"included": False, "reason": "weight 0", "weight": 0.0}
        elif res is None:
            components[name] = {"included": False, "weight": float(w), "reason": failed.get(name, "not computed")}
        elif not res.applicable:
            components[name] = {"included": False, "weight": float(w), "reason": f"not applicable: {res.note}"}
        elif not math.isfinite(res.value):
            components[name] = {"included": False, "weight": float(w), "reason": "no finite value"}
        else:
            cal = calibration.get(name) if calibrated else None
            value = cal(res.value) if cal else res.value
            components[name] = {"included": True, "weight": float(w), "raw": res.value, "value": value,
                                "contribution": float(w) * value}
            if cal:
                components[name]["calibration"] = cal.to_dict()
    included = [n for n in SCORERS if components[n]["included"]]
    total_w = sum(components[n]["weight"] for n in included)
    details = {"components": components,
               "included": included,
               "excluded": {n: c["reason"] for n, c in components.items() if not c["included"]},
               "total_weight_included": total_w,
               "weighted_sum": sum(components[n]["contribution"] for n in included),
               "calibrated": calibrated}
    if not included:
        return RewardResult.not_applicable(NAME, "no component could be computed (see details.excluded)",
                                           (0.0, 1.0) if calibrated else (-math.inf, math.inf), "frame", details)
    value = details["weighted_sum"] / total_w
    curves = torch.stack([_curve(by_name[n], num_frames, calibrated) for n in included])
    w = torch.tensor([components[n]["weight"] for n in included])[:, None].expand_as(curves)
    finite = torch.isfinite(curves)
    per_frame = (torch.where(finite, curves, 0) * w).sum(0) / (w * finite).sum(0).clamp(min=1e-12)
    if calibrated:
        value_range = (0.0, 1.0)
    else:
        value_range = (min(by_name[n].value_range[0] for n in included),
                       max(by_name[n].value_range[1] for n in included))
    weighted = [n for n in SCORERS if (weights.get(n) or 0) > 0]
    note = "" if len(included) == len(weighted) else f"{len(weighted) - len(included)} weighted component(s) excluded"
    return RewardResult(NAME, value, per_frame, torch.arange(num_frames, dtype=torch.float32), "frame", value_range,
                        details, True, note)


def _curve(result: RewardResult, num_frames: int, calibrated: bool) -> torch.Tensor:
    """A component's per-frame curve. Items that are not scores (loop_break's motion signal) give a flat curve
    at the component's value."""
    if result.item_kind == "signal":
        flat = RewardResult(result.name, result.value, torch.tensor([result.value]), torch.tensor([0.0]), "frame",
                            result.value_range)
        result = flat
    curve = to_frame_axis(result, num_frames)
    return calibration.get(result.name)(curve) if calibrated else curve

