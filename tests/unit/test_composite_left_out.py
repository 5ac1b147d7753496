"""Reward: Composite shows on the node which weighted scorers it left out and why (a missing model file, not
applicable to this clip), instead of only in its JSON breakdown."""
from __future__ import annotations

import importlib

import torch


def test_left_out_scorers_are_listed_with_short_reasons(comfy_inprocess):
    nodes = importlib.import_module("rewardloop.nodes.rewards")
    rewards = importlib.import_module("rewardloop.rewards")
    clip = rewards.Clip(torch.rand(9, 48, 48, 3), prompt="a red fox in snow")
    weights = {"flow_smoothness": 1.0, "clip_score": 1.0, "keyframe_ssim": 1.0, "framing": 0.0}
    agg, _ = rewards.composite(clip, weights)
    text = nodes._left_out(agg.details)
    lines = text.splitlines()
    assert lines[0] == "Left out, not counted:"
    assert "keyframe_ssim: not applicable: no keyframes given" in lines
    # a missing model file is named, without the folders searched (those are in the breakdown)
    assert "clip_score: model file ViT-B-32-quickgelu.safetensors missing" in lines, lines
    assert not any(line.startswith(("framing", "flow_smoothness")) for line in lines), "weight 0 / counted listed"
    assert len(lines) == 3


def test_nothing_left_out_says_so(comfy_inprocess):
    nodes = importlib.import_module("rewardloop.nodes.rewards")
    rewards = importlib.import_module("rewardloop.rewards")
    agg, _ = rewards.composite(rewards.Clip(torch.rand(9, 48, 48, 3)), {"flow_smoothness": 1.0})
    assert nodes._left_out(agg.details) == "Every weighted scorer was counted."


def test_counted_scorers_show_their_calibrated_and_raw_values(comfy_inprocess):
    nodes = importlib.import_module("rewardloop.nodes.rewards")
    rewards = importlib.import_module("rewardloop.rewards")
    calibration = importlib.import_module("rewardloop.rewards.calibration")
    agg, parts = rewards.composite(rewards.Clip(torch.rand(9, 48, 48, 3)), {"flow_smoothness": 1.0, "framing": 0.5})
    lines = nodes._counted(agg.details).splitlines()
    assert lines[0] == "Counted, calibrated 0..1 (raw value):"
    for r in parts:
        assert f"{r.name}: {calibration.get(r.name)(r.value):.3f} (raw {r.value:.4g})" in lines
    assert len(lines) == 3
