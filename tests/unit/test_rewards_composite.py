"""Composite weighting, exclusion reporting, the Clip's sharing of work, and the JSON scores payload."""
from __future__ import annotations

import json
import math

import pytest
import torch

from rewardloop.rewards import Clip, calibration, composite, score, scores_payload, to_frame_axis
from rewardloop.rewards.result import RewardResult

pytestmark = pytest.mark.usefixtures("reward_models")


def test_weighted_mean_over_included_components(scene_frames):
    clip = Clip(scene_frames[:20], keyframes=scene_frames[[0, 19]], prompt="a city")
    weights = {"keyframe_ssim": 2.0, "temporal_lpips": 1.0, "fvd_lite": 3.0, "framing": 0.0}
    agg, parts = composite(clip, weights)
    raw = {r.name: r.value for r in parts}
    v = {n: calibration.get(n)(x) for n, x in raw.items()}  # averaged on the calibrated 0..1 scale
    assert agg.value == pytest.approx((2 * v["keyframe_ssim"] + v["temporal_lpips"]) / 3)
    assert agg.value_range == (0.0, 1.0) and 0 <= agg.value <= 1
    d = agg.details
    assert d["included"] == ["keyframe_ssim", "temporal_lpips"]
    assert d["excluded"]["fvd_lite"].startswith("not applicable: no reference")  # weighted but not applicable
    assert d["excluded"]["framing"] == "weight 0"
    assert d["excluded"]["clip_score"] == "no weight given"
    assert d["weighted_sum"] == pytest.approx(2 * v["keyframe_ssim"] + v["temporal_lpips"])
    assert {n: d["components"][n]["raw"] for n in d["included"]} == pytest.approx(
        {n: raw[n] for n in d["included"]})  # the raw values stay available
    assert agg.per_item.shape == (20,) and torch.isfinite(agg.per_item).all()
    assert ((agg.per_item >= 0) & (agg.per_item <= 1)).all()
    plain, _ = composite(clip, weights, calibrated=False)  # the raw weighted mean, on request
    assert plain.value == pytest.approx((2 * raw["keyframe_ssim"] + raw["temporal_lpips"]) / 3)


def test_missing_model_files_are_excluded_not_zero(scene_frames, monkeypatch, tmp_path):
    from rewardloop.rewards import RewardRuntime

    clip = Clip(scene_frames[:12], prompt="a city", runtime=RewardRuntime([tmp_path]))  # empty folder: no CLIP file
    agg, _ = composite(clip, {"framing": 1.0, "clip_score": 5.0})
    framing = calibration.get("framing")(score("framing", clip).value)
    assert agg.value == pytest.approx(framing)  # not (framing + 5*0) / 6, not (framing + 5*1) / 6
    reason = agg.details["excluded"]["clip_score"]
    assert reason.startswith("model files missing") and "ViT-B-32-quickgelu.safetensors" in reason
    assert str(tmp_path / "clip") in reason


def test_nothing_computable_is_not_applicable(scene_frames):
    agg, _ = composite(Clip(scene_frames[:1]), {"temporal_lpips": 1.0})
    assert not agg.applicable and math.isnan(agg.value)


def test_flow_and_masks_are_computed_once_per_clip(scene_frames, monkeypatch):
    import rewardloop.motion.optical_flow as flow

    calls = []
    real = flow.bidirectional_flow
    monkeypatch.setattr(flow, "bidirectional_flow", lambda *a, **k: calls.append(1) or real(*a, **k))
    clip = Clip(scene_frames[:10], chunk_size=64)
    for name in ("temporal_lpips", "flow_smoothness", "structure_constancy", "seam_consistency", "loop_break"):
        score(name, clip)
    assert len(calls) == 1
    derived = clip.with_inputs(prompt="other", windows=(4, 1))  # other inputs, same frames: same cache
    score("seam_consistency", derived)
    assert len(calls) == 1


def test_chunking_does_not_change_results(scene_frames):
    frames = scene_frames[:14]
    big = Clip(frames, chunk_size=64)
    small = Clip(frames, chunk_size=3)
    for name in ("temporal_lpips", "flow_smoothness", "structure_constancy", "seam_consistency"):
        a, b = score(name, big), score(name, small)
        assert torch.allclose(a.per_item, b.per_item, atol=1e-5, equal_nan=True), name


def test_progress_callback_can_cancel(scene_frames):
    class Cancelled(Exception):
        pass

    def progress(stage, done, total):
        raise Cancelled(stage)

    with pytest.raises(Cancelled):
        score("flow_smoothness", Clip(scene_frames[:6], progress=progress))


def test_scores_payload_is_json_with_nulls_for_missing_values(scene_frames):
    clip = Clip(scene_frames[:20], keyframes=scene_frames[[0]])
    agg, parts = composite(clip, {"keyframe_ssim": 1.0, "structure_constancy": 1.0, "novelty_after_k": 1.0})
    payload = scores_payload(parts, clip.num_frames, agg)
    text = json.dumps(payload, allow_nan=False)  # no NaN/inf leaks into JSON
    back = json.loads(text)
    assert back["frames"] == 20 and back["aggregate"]["name"] == "composite"
    assert back["scores"]["novelty_after_k"]["applicable"] is False and back["scores"]["novelty_after_k"]["value"] is None
    s = back["scores"]["structure_constancy"]
    assert len(s["per_item"]) == len(s["positions"]) == 19 and s["positions"][0] == 0.5


def test_to_frame_axis_interpolates_and_holds_ends():
    r = RewardResult("x", 0.5, torch.tensor([0.0, 1.0, float("nan")]), torch.tensor([2.0, 4.0, 5.0]), "sample", (0, 1))
    assert to_frame_axis(r, 6).tolist() == pytest.approx([0, 0, 0, 0.5, 1, 1])


def test_result_validates_shapes():
    with pytest.raises(ValueError, match="differ"):
        RewardResult("x", 1.0, torch.zeros(3), torch.zeros(2), "frame", (0, 1))
    with pytest.raises(ValueError, match="item_kind"):
        RewardResult("x", 1.0, torch.zeros(1), torch.zeros(1), "frames", (0, 1))


def test_background_flow_gives_the_same_composite_and_runs_flow_free_scorers_first(scene_frames, monkeypatch):
    frames, weights = scene_frames[:12], {"temporal_lpips": 1.0, "framing": 1.0, "flow_smoothness": 0.5,
                                          "keyframe_ssim": 1.0}
    plain = Clip(frames, keyframes=frames[[0, -1]])
    plain.flow()  # already computed: composite has nothing to prefetch
    ref, ref_parts = composite(plain, weights)
    clip = Clip(frames, keyframes=frames[[0, -1]])
    order = []
    agg, parts = composite(clip, weights, on_component=lambda name, i, n: order.append(name))
    assert order == ["keyframe_ssim", "framing", "temporal_lpips", "flow_smoothness"]
    assert [p.name for p in parts] == [p.name for p in ref_parts]  # reported in the registry's order
    assert agg.value == pytest.approx(ref.value, abs=1e-6)
    assert clip.prefetch_flow() is False  # computed once, never again
    from rewardloop.rewards import context

    pixel_pairs = (frames.shape[0] - 1) * frames.shape[1] * frames.shape[2]
    monkeypatch.setattr(context, "PREFETCH_MAX_PIXELS", pixel_pairs)
    fits = Clip(frames)
    assert fits.prefetch_flow() is True and torch.equal(fits.flow().forward, plain.flow().forward)
    monkeypatch.setattr(context, "PREFETCH_MAX_PIXELS", pixel_pairs - 1)
    assert Clip(frames).prefetch_flow() is False  # too long for an uncancellable thread: foreground instead


def test_background_flow_errors_surface_in_the_scorer(scene_frames, monkeypatch):
    import rewardloop.motion.optical_flow as flow

    def broken(*a, **k):
        raise RuntimeError("flow failed on purpose")

    monkeypatch.setattr(flow, "bidirectional_flow", broken)
    clip = Clip(scene_frames[:6])
    assert clip.prefetch_flow() is True
    with pytest.raises(RuntimeError, match="on purpose"):
        score("flow_smoothness", clip)
