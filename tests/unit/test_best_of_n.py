"""Best-of-N sampling and the one reward factory, without ComfyUI: the sampler and the VAE are plain callables.

The stand-in sampler returns, for each seed, a latent whose value is a known reward: decode() turns it into frames
whose keyframe SSIM against the anchors follows from the seed, so the expected choice is computable."""
from __future__ import annotations

import math
import weakref

import pytest
import torch

from rewardloop import gating
from rewardloop.gating.best_of_n import best_of_n, sample_halving
from rewardloop.rewards import Clip, RewardRuntime, reward_function, score
from rewardloop.rewards import calibration

H = W = 24
ANCHOR = torch.linspace(0, 1, H * W * 3).view(1, H, W, 3)


class OOM(RuntimeError):
    pass


def noise_for(seed: int) -> float:
    """How far candidate `seed` is from the anchors (0 = identical)."""
    return (seed * 7919 % 100) / 100


def fake_sampler(calls: list, fail_above: int | None = None):
    def sample(seeds):
        calls.append(list(seeds))
        if fail_above is not None and len(seeds) > fail_above:
            raise OOM("simulated out of memory")
        return torch.tensor([[noise_for(s)] for s in seeds], dtype=torch.float64)  # one latent row per candidate

    return sample


def decode(samples):
    amount = float(samples[0, 0])
    gen = torch.Generator().manual_seed(int(amount * 1000))
    frames = ANCHOR.expand(3, H, W, 3).clone()
    frames[1:] = (frames[1:] + amount * torch.rand(2, H, W, 3, generator=gen)).clamp(0, 1)
    return frames


def keyframe_reward(runtime=None, calls: list | None = None):
    """Scores a batch of candidates in one call (as the node does), logging each call's batch size in `calls`."""
    fn = reward_function("keyframe_ssim", runtime=runtime)

    def score(candidates):
        if calls is not None:
            calls.append(len(candidates))
        return fn.batch(candidates, {"keyframes": ANCHOR.expand(2, H, W, 3), "keyframe_positions": [0, 2]})

    return score


def test_keeps_the_best_candidate_and_logs_every_one():
    settings = gating.make_settings(1.0, 4, "best_of", "hash", 5)  # the closest candidate is the 4th
    calls = []
    (frames, samples), state = best_of_n(settings, fake_sampler(calls), decode, keyframe_reward(), per_candidate=1)
    batched = gating.make_settings(1.0, 4, "best_of", "hash", 5)
    scored = []
    (_, again), batched_state = best_of_n(batched, fake_sampler([]), decode, keyframe_reward(calls=scored),
                                         per_candidate=1, batch_size=2)
    assert scored == [2, 2, 1]  # batches of two scored in one call each: the same choice and rewards
    assert batched_state.chosen == state.chosen and torch.equal(again, samples)
    assert [r.reward for r in batched_state.records] == [r.reward for r in state.records]
    seeds = [settings.seed(k) for k in range(5)]
    assert calls == [[s] for s in seeds]
    best = min(range(5), key=lambda k: noise_for(seeds[k]))
    assert best == 3 and state.chosen == best and float(samples[0, 0]) == noise_for(seeds[best])
    assert torch.equal(frames, decode(samples))
    log = state.as_dict()["attempts"]
    assert [a["seed"] for a in log] == seeds and all("keyframe_ssim" in a["breakdown"] for a in log)
    assert len(log[0]["breakdown"]["per_item"]) == 2


def test_first_pass_stops_and_batches_keep_each_seed():
    settings = gating.make_settings(-1.0, 5, "first_pass", "hash", 3, "unbounded")
    calls = []
    scored = []
    _, state = best_of_n(settings, fake_sampler(calls), decode, keyframe_reward(calls=scored), per_candidate=1,
                         batch_size=3)
    assert calls == [[settings.seed(k) for k in range(3)]]  # one batch, then the first candidate passed
    assert scored == [3]  # its three candidates scored in one call
    assert state.attempts_run == 1 and state.generated_after_stop == 2 and state.passed


def test_out_of_memory_halves_the_batch_with_the_same_seeds():
    calls, freed = [], []
    out = sample_halving(fake_sampler(calls, fail_above=1), [1, 2, 3, 4], is_oom=lambda e: isinstance(e, OOM),
                         on_oom=freed.append)
    assert calls == [[1, 2, 3, 4], [1, 2], [1], [2], [3, 4], [3], [4]]
    assert freed == [4, 2, 2] and out[:, 0].tolist() == [noise_for(s) for s in (1, 2, 3, 4)]
    with pytest.raises(OOM):  # a single candidate that does not fit is the user's problem, said as is
        sample_halving(fake_sampler([], fail_above=0), [1, 2], is_oom=lambda e: isinstance(e, OOM))
    with pytest.raises(ZeroDivisionError):  # other errors are never retried
        sample_halving(lambda seeds: 1 / 0, [1, 2], is_oom=lambda e: isinstance(e, OOM))


def test_only_the_best_candidate_stays_alive():
    settings = gating.make_settings(1.0, 5, "best_of", "hash", 5)
    seen = []

    def tracked_decode(samples):
        frames = decode(samples)
        seen.append(weakref.ref(frames))
        return frames

    (frames, _), state = best_of_n(settings, fake_sampler([]), tracked_decode, keyframe_reward(), per_candidate=1)
    alive = [r() for r in seen if r() is not None]
    assert len(alive) == 1 and alive[0] is frames


def test_a_reward_that_does_not_apply_is_a_failed_attempt_not_a_crash():
    settings = gating.make_settings(0.5, 1, "best_of")
    fn = reward_function("keyframe_ssim")
    _, state = best_of_n(settings, fake_sampler([]), decode, fn.batch, per_candidate=1)  # no keyframes
    assert not state.passed and all(r.reward is None for r in state.records)
    assert "no keyframes" in state.records[0].breakdown["note"]


# ---- the reward factory ------------------------------------------------------------------------------------
def test_factory_matches_score_and_composite():
    frames = decode(torch.tensor([[0.3]]))
    kf = dict(keyframes=ANCHOR.expand(2, H, W, 3), keyframe_positions=[0, 2])
    rt = RewardRuntime()
    single = reward_function("keyframe_ssim", runtime=rt)(frames, **kf)
    assert single.value == score("keyframe_ssim", Clip(frames, **kf)).value
    comp = reward_function("composite", weights={"keyframe_ssim": 2.0, "framing": 1.0},
                           options={"framing": {"num_samples": 2}}, runtime=rt)(frames, **kf)
    framing = score("framing", Clip(frames), num_samples=2).value
    cal = calibration.get  # the composite averages calibrated values
    expected = (2 * cal("keyframe_ssim")(single.value) + cal("framing")(framing)) / 3
    assert comp.name == "composite" and comp.value == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="lpips"), "unknown reward 'lpips'; choose one of keyframe_ssim, .*composite"),
    (dict(name="temporal_lpips", options={"nett": "vgg"}), "temporal_lpips has no option 'nett'; its options are: "
                                                            "net, min_valid"),
    (dict(name="composite", options={"framing": {"samples": 3}}), "framing has no option 'samples'"),
    (dict(name="composite", weights={"ssim": 1.0}), r"unknown scorer name\(s\) \['ssim'\]"),
    (dict(name="framing", weights={"framing": 1.0}), "weights apply to the composite reward only"),
    (dict(name="framing", prompt="x"), "belong to each call"),
])
def test_factory_refuses_bad_settings_before_any_clip(kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        reward_function(name, **kwargs)


def test_unknown_options_are_a_clear_error_for_every_caller():
    with pytest.raises(ValueError, match="framing has no option 'k'; its options are: num_samples"):
        score("framing", Clip(decode(torch.tensor([[0.1]]))), k=3)
    result = reward_function("framing", device="cpu", analysis_size=64)(decode(torch.tensor([[0.1]])))
    assert math.isfinite(result.value)
