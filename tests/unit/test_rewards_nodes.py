"""Reward nodes inside ComfyUI's own modules (in-process): schemas, outputs, shared analysis, report files."""
from __future__ import annotations

import importlib
import json
import math
import os

import pytest
import torch

from rewardloop.rewards import calibration


@pytest.fixture
def nodes_mod(comfy_inprocess, reward_models, monkeypatch, tmp_path):
    """rewardloop.nodes.rewards with ComfyUI's folder list for `rewardloop` pointing at the test models and its
    output folder in tmp_path (the nodes sync model roots from ComfyUI, as in a server)."""
    folder_paths = comfy_inprocess
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "rewardloop",
                        ([str(reward_models.real), str(reward_models.tiny)], set()))
    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    module = importlib.import_module("rewardloop.nodes.rewards")
    importlib.import_module("rewardloop.nodes.runtime").get().clear()
    return module


def _ids(schema):
    return [i.id for i in schema.inputs], [o.id for o in schema.outputs]


def test_family_registered_and_every_scorer_has_a_node(nodes_mod):
    from rewardloop import nodes, rewards

    assert "rewards" in nodes.FAMILIES
    ids = {cls.GET_SCHEMA().node_id for cls in nodes_mod.NODES}
    assert {"RewardLoopRewardComposite", "RewardLoopRewardReport", "RewardLoopInstallRewardWeights"} <= ids
    scorer_nodes = [c for c in nodes_mod.NODES if issubclass(c, nodes_mod._ScorerNode)]
    assert sorted(c.SCORER for c in scorer_nodes) == sorted(rewards.SCORERS)
    for cls in scorer_nodes:
        schema = cls.GET_SCHEMA()
        inputs, outputs = _ids(schema)
        assert outputs == ["reward", "scores", "breakdown"]
        assert inputs[0] == "frames" and ".." in schema.description  # the range, in the tooltip (details: help page)
    comp_inputs, _ = _ids(nodes_mod.Composite.GET_SCHEMA())
    assert {f"w_{n}" for n in rewards.SCORERS} <= set(comp_inputs)


def test_scorer_node_outputs_float_scores_and_json(nodes_mod, scene_frames):
    out = nodes_mod.TemporalLPIPS.execute(frames=scene_frames[:10], net="alex", flow_method="dis_fast",
                                          analysis_size=512, device="cpu")
    reward, scores, breakdown = out.args
    assert isinstance(reward, float) and 0 < reward <= 1
    assert scores["scores"]["temporal_lpips"]["value"] == pytest.approx(reward)
    assert len(scores["scores"]["temporal_lpips"]["per_item"]) == 9
    assert json.loads(breakdown) == scores
    (panel,) = out.ui["rewardloop_chart"]  # one score: one panel, its items at their pair positions
    assert panel["series"][0]["y"] == scores["scores"]["temporal_lpips"]["per_item"]
    assert panel["series"][0]["x"] == pytest.approx([i + 0.5 for i in range(9)])


def test_nodes_fed_the_same_tensor_share_the_flow(nodes_mod, scene_frames, monkeypatch):
    import rewardloop.motion.optical_flow as flow

    calls = []
    real = flow.bidirectional_flow
    monkeypatch.setattr(flow, "bidirectional_flow", lambda *a, **k: calls.append(1) or real(*a, **k))
    frames = scene_frames[:12].clone()
    for cls in (nodes_mod.FlowSmoothness, nodes_mod.StructureConstancy):
        cls.execute(frames=frames, flow_method="dis_fast", analysis_size=512, device="cpu")
    nodes_mod.SeamConsistency.execute(frames=frames, window=6, overlap=2, flow_method="dis_fast", analysis_size=512,
                                      device="cpu")
    assert len(calls) == 1
    nodes_mod.FlowSmoothness.execute(frames=frames.clone(), flow_method="dis_fast", analysis_size=512, device="cpu")
    assert len(calls) == 2  # another tensor: its own analysis


def test_composite_node_reports_exclusions(nodes_mod, scene_frames):
    weights = {f"w_{n}": 0.0 for n in nodes_mod.rewards.SCORERS}
    weights.update(w_keyframe_ssim=1.0, w_framing=1.0, w_clip_score=1.0)
    out = nodes_mod.Composite.execute(frames=scene_frames[:12], keyframes=scene_frames[[0, 11]], prompt="a town",
                                      options_json='{"framing": {"num_samples": 4}}', flow_method="dis_fast",
                                      analysis_size=512, device="cpu", **weights)
    reward, scores, _ = out.args
    agg = scores["aggregate"]
    assert agg["details"]["included"] == ["keyframe_ssim", "framing"]
    assert "ViT-B-32-quickgelu.safetensors" in agg["details"]["excluded"]["clip_score"]  # not in the test folders
    parts = scores["scores"]
    calibrated = {n: calibration.get(n)(parts[n]["value"]) for n in ("keyframe_ssim", "framing")}
    assert reward == pytest.approx(sum(calibrated.values()) / 2)  # the mean of the calibrated values
    assert agg["details"]["components"]["framing"]["raw"] == pytest.approx(parts["framing"]["value"])
    with pytest.raises(ValueError, match="options_json"):
        nodes_mod.Composite.execute(frames=scene_frames[:4], options_json="{nope", device="cpu", **weights)


@pytest.mark.parametrize("options, match", [
    ('{"temporal_lpips": {"nett": "vgg"}}', r"options_json: temporal_lpips has no option 'nett'; its options are: "
                                            r"net, min_valid"),
    ('{"lpips": {"net": "vgg"}}', r"options_json: unknown scorer 'lpips'"),
    ('{"framing": 4}', r"options_json: options for framing must be an object"),
    ('{"temporal_lpips": {"net": "bogus"}}', r"net must be one of alex, vgg \(the LPIPS backbone\), got 'bogus'"),
])
def test_composite_options_errors_name_the_option(nodes_mod, scene_frames, options, match):
    weights = {f"w_{n}": 0.0 for n in nodes_mod.rewards.SCORERS}
    weights.update(w_temporal_lpips=1.0)
    with pytest.raises(ValueError, match=match):
        nodes_mod.Composite.execute(frames=scene_frames[:4], options_json=options, flow_method="dis_fast",
                                    device="cpu", **weights)


def test_keyframe_positions_input_is_validated(nodes_mod, scene_frames):
    out = nodes_mod.KeyframeSSIM.execute(frames=scene_frames[:10], keyframes=scene_frames[[0, 5]],
                                         keyframe_positions="[0, 5]", device="cpu")
    assert out.args[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="JSON list"):
        nodes_mod.KeyframeSSIM.execute(frames=scene_frames[:10], keyframes=scene_frames[[0]],
                                       keyframe_positions="zero", device="cpu")


def test_report_node_writes_json_and_chart(nodes_mod, scene_frames, tmp_path):
    _, scores, _ = nodes_mod.Composite.execute(
        frames=scene_frames[:12], keyframes=scene_frames[[0]], device="cpu", flow_method="dis_fast", analysis_size=512,
        **{f"w_{n}": (1.0 if n in ("keyframe_ssim", "temporal_lpips", "novelty_after_k") else 0.0)
           for n in nodes_mod.rewards.SCORERS}).args
    out = nodes_mod.RewardReport.execute(scores=scores, filename_prefix="rl/report")
    chart, path = out.args
    assert chart.shape[0] == 1 and chart.shape[-1] == 3 and chart.dtype == torch.float32
    assert float(chart.std()) > 0.01  # something was drawn
    saved = json.loads(open(path).read())
    assert saved["scores"]["novelty_after_k"]["value"] is None  # not applicable stays null, not 0
    image = out.ui["rewardloop_files"][0]
    assert image["type"] == "output" and os.path.isfile(tmp_path / image["subfolder"] / image["filename"])
    assert [s["name"] for c in out.ui["rewardloop_chart"] for s in c["series"]][:3] == \
        ["composite", "keyframe_ssim", "temporal_lpips"]
    with pytest.raises(ValueError, match="scores"):
        nodes_mod.RewardReport.execute(scores={"x": 1}, filename_prefix="rl/report")


def test_retry_loop_reads_the_scores_bundle(nodes_mod, scene_frames):
    from rewardloop.gating import parse_breakdown

    reward, scores, _ = nodes_mod.Framing.execute(frames=scene_frames[:6], num_samples=3, device="cpu").args
    parsed, warning = parse_breakdown(scores)
    assert warning is None and parsed["framing"] == pytest.approx(reward)


def test_clear_cache_node(nodes_mod, scene_frames):
    nodes_mod.FlowSmoothness.execute(frames=scene_frames[:4], flow_method="dis_fast", analysis_size=512, device="cpu")
    nodes_mod.TemporalLPIPS.execute(frames=scene_frames[:4], net="alex", flow_method="dis_fast", analysis_size=512,
                                    device="cpu")
    freed = nodes_mod.ClearRewardCache.execute().args[0]
    held = importlib.import_module("rewardloop.nodes.runtime").get().rewards.held()
    assert freed >= 1 and held["analysis_caches"] == 0
    assert not math.isnan(freed)
