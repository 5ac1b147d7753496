"""Reward adapters the trainers call on decoded clips: built-ins, the pack's composite and single scorers
(same values as calling rewardloop.rewards directly), python callables, and clear errors."""
from __future__ import annotations

import pytest
import torch

from rewardloop import rewards
from rewardloop.trainers.reward_fns import build_reward, reward_device, score_batch


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


def test_suite_rewards_score_a_batch_in_one_call_as_clip_by_clip(reward_models, monkeypatch):
    """GRPO's group, the pair builder's clips and validation go through score_batch: for the pack's rewards one
    batched call (shared analyses computed once), with the values scoring clip by clip gives."""
    frames = torch.stack([_frames(), _frames().flip(0), _frames().roll(7, dims=1)])
    prompts = ["a", "b", "c"]
    fn = build_reward({"name": "composite", "weights": {"flow_smoothness": 1.0, "temporal_lpips": 1.0},
                       "params": {"analysis_size": 32}}, device="cpu")
    one_by_one = [fn(frames[i], prompt=prompts[i]) for i in range(3)]
    batches = []
    real = rewards.RewardFunction.batch
    monkeypatch.setattr(rewards.RewardFunction, "batch", lambda self, f, i=None: batches.append(len(f)) or real(self, f, i))
    together = score_batch(fn, frames, prompts)
    assert batches == [3]
    assert together.tolist() == pytest.approx(one_by_one, abs=1e-6)
    assert len(set(one_by_one)) == 3  # three different clips
    single = build_reward({"name": "temporal_lpips", "params": {"net": "alex", "analysis_size": 32}}, device="cpu")
    assert score_batch(single, frames, prompts).tolist() == pytest.approx([single(f) for f in frames], abs=1e-6)


def test_suite_rewards_run_on_the_trainers_device_and_check_params_when_built():
    assert reward_device({}, "cuda:1") == "cuda:1"  # "auto": the training GPU of this process
    assert reward_device({"device": "cpu"}, "cuda:1") == "cpu"
    assert build_reward({"name": "composite", "params": {"device": "auto"}}, device="cpu").fn.clip_settings == {
        "device": "cpu"}
    with pytest.raises(ValueError, match=r"unknown clip setting\(s\) \['analysis'\]"):
        build_reward({"name": "composite", "params": {"analysis": 128}})
    with pytest.raises(ValueError, match="flow_smoothness has no option 'bogus'"):
        build_reward({"name": "flow_smoothness", "params": {"bogus": 1}})
