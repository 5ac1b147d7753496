"""Reward adapters the trainers call on decoded clips: built-ins, the pack's composite and single scorers
(same values as calling rewardloop.rewards directly), python callables, and clear errors."""
from __future__ import annotations

import pytest
import torch

from rewardloop import rewards
from rewardloop.trainers.reward_fns import build_reward, score_batch


def _frames():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 48, 48, 3, generator=g)
    return torch.cat([torch.roll(base, shifts=i, dims=2) for i in range(6)]).clamp(0, 1)


def test_composite_and_scorer_adapters_match_the_reward_suite():
    frames = _frames()
    weights = {"flow_smoothness": 1.0, "structure_constancy": 0.5}
    fn = build_reward({"name": "composite", "weights": weights, "params": {"device": "cpu"}})
    expected, _ = rewards.composite(rewards.Clip(frames, prompt="p", device="cpu"), weights)
    assert fn(frames, prompt="p") == pytest.approx(float(expected.value))
    single = build_reward({"name": "flow_smoothness", "params": {"device": "cpu"}})
    assert single(frames) == pytest.approx(float(rewards.score("flow_smoothness", rewards.Clip(frames)).value))


def test_builtins_python_callable_and_errors():
    frames = torch.full((3, 8, 8, 3), 0.25)
    assert build_reward("brightness")(frames) == pytest.approx(0.25)
    assert build_reward({"name": "target", "params": {"value": 0.75}})(frames) == pytest.approx(-0.25)
    fn = build_reward({"name": "python", "params": {"callable": "torch:mean"}})
    assert fn(frames) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="Unknown reward 'nope'.*temporal_lpips"):
        build_reward("nope")
    with pytest.raises(ValueError, match="cannot be imported"):
        build_reward({"name": "python", "params": {"callable": "no_such_mod:fn"}})
    with pytest.raises(FloatingPointError, match="non-finite"):  # e.g. a scorer that does not apply
        score_batch(lambda f, prompt=None: float("nan"), frames[None], ["x"])
