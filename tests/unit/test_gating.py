"""Retry-loop core: settings validation, attempt log, stop/keep decisions, seed policies, segment helpers."""
from __future__ import annotations

import json

import pytest
import torch

from rewardloop import gating
from rewardloop.gating import MAX_RETRIES, RetryState, make_settings, run_retry_loop


def settings(**kw):
    base = dict(threshold=0.85, max_retries=5, mode="first_pass", seed_policy="hash", base_seed=1234)
    base.update(kw)
    return make_settings(**base)


# ---- validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [1.2, -0.1, float("nan"), float("inf")])
def test_threshold_outside_bounded_range_is_a_clear_error(threshold):
    with pytest.raises(ValueError, match="threshold"):
        settings(threshold=threshold)


def test_unbounded_rewards_accept_any_finite_threshold():
    assert settings(threshold=7.5, reward_range="unbounded").threshold == 7.5
    with pytest.raises(ValueError, match="finite"):
        settings(threshold=float("nan"), reward_range="unbounded")


def test_max_retries_zero_runs_once_and_huge_is_capped_and_reported():
    assert settings(max_retries=0).attempts == 1
    s = settings(max_retries=10_000)
    assert s.max_retries == MAX_RETRIES and s.attempts == MAX_RETRIES + 1
    assert s.capped and s.as_dict()["max_retries_requested"] == 10_000
    assert "capped" in RetryState(s).progress_text()
    assert not settings(max_retries=MAX_RETRIES).capped


@pytest.mark.parametrize("kw, match", [(dict(max_retries=-1), "max_retries"), (dict(max_retries=2.5), "max_retries"),
                                       (dict(mode="greedy"), "mode"), (dict(seed_policy="fib"), "seed_policy"),
                                       (dict(base_seed=-3), "seed"), (dict(base_seed=2**64), "seed"),
                                       (dict(reward_range="0..100"), "reward_range")])
def test_bad_settings_name_the_input(kw, match):
    with pytest.raises(ValueError, match=match):
        settings(**kw)


# ---- decisions ------------------------------------------------------------------------------------------
def test_first_pass_stops_at_the_first_attempt_reaching_the_threshold():
    state = RetryState(settings())
    for r in (0.5, 0.84):
        rec = state.record(r)
        assert not rec.passed and not state.done
    rec = state.record(0.85)  # >= threshold passes
    assert rec.passed and state.done and state.stop_reason == "passed"
    assert state.chosen == 2 and state.passed
    with pytest.raises(ValueError, match="already finished"):
        state.record(0.99)


def test_never_more_than_max_retries_plus_one_attempts_and_best_is_returned():
    state = RetryState(settings(max_retries=3))
    rewards = [0.2, 0.7, 0.6, 0.65]
    for r in rewards:
        state.record(r)
    assert state.done and state.stop_reason == "exhausted" and state.attempts_run == 4
    assert state.chosen == 1 and state.best_reward == 0.7 and not state.passed


def test_best_of_runs_every_attempt_and_keeps_the_highest():
    state = RetryState(settings(mode="best_of", max_retries=2))
    state.record(0.9)
    assert not state.done  # passing does not stop best_of
    state.record(0.95)
    state.record(0.91)
    assert state.done and state.chosen == 1 and state.passed


def test_ties_keep_the_earlier_attempt():
    state = RetryState(settings(mode="best_of", max_retries=1))
    state.record(0.5)
    state.record(0.5)
    assert state.chosen == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "n/a", None])
def test_non_finite_reward_is_a_failed_attempt_with_a_reason(bad):
    state = RetryState(settings(max_retries=2))
    rec = state.record(bad)
    assert not rec.passed and rec.reward is None and rec.failed_reason
    state.record(0.3)
    assert state.chosen == 1  # a finite reward beats a failed attempt
    state.record(bad)
    assert state.chosen == 1 and state.done


def test_all_attempts_failed_returns_attempt_zero_not_an_exception():
    state = RetryState(settings(max_retries=1))
    state.record(float("nan"))
    state.record(float("nan"))
    assert state.done and state.chosen == 0 and not state.passed and state.best_reward is None
    log = json.loads(state.to_json())  # strict JSON: no NaN token
    assert log["attempts"][0]["reward"] is None and log["passed"] is False


def test_attempt_log_has_seed_reward_breakdown_seconds_and_passed():
    s = settings(max_retries=2, seed_policy="increment", base_seed=10)
    state = RetryState(s)
    state.record(0.5, breakdown={"ssim_first": 0.6, "ssim_last": 0.4, "bad": float("nan")}, seconds=1.25)
    state.record(0.9, breakdown='{"ssim_first": 0.95, "ssim_last": 0.85}', seconds=0.5)
    log = json.loads(state.to_json())
    assert log["version"] == gating.LOG_VERSION
    assert log["settings"]["threshold"] == 0.85 and log["settings"]["mode"] == "first_pass"
    first, second = log["attempts"]
    assert first == {"attempt": 0, "seed": 10, "reward": 0.5, "passed": False, "seconds": 1.25,
                     "provider_seconds": 0.0, "api_calls": 0,
                     "breakdown": {"ssim_first": 0.6, "ssim_last": 0.4, "bad": None}}
    assert second["seed"] == 11 and second["passed"] and second["breakdown"]["ssim_last"] == 0.85
    assert log["chosen_attempt"] == 1 and log["stop_reason"] == "passed" and log["total_seconds"] == 1.75


def test_bad_breakdown_and_out_of_range_reward_warn_but_do_not_stop_the_loop():
    state = RetryState(settings(max_retries=1))
    rec = state.record(1.5, breakdown="{not json")
    assert rec.breakdown == {"unparsed": "{not json"}
    assert any("not valid JSON" in w for w in rec.warnings)
    assert any("outside the declared 0..1" in w for w in rec.warnings)
    assert rec.passed  # the number itself is still used


def test_breakdown_accepts_score_bundles():
    class Scores:
        def as_dict(self):
            return {"keyframe_ssim": torch.tensor(0.9)}

    parsed, note = gating.parse_breakdown(Scores())
    assert parsed == {"keyframe_ssim": pytest.approx(0.9)} and note is None
    bundle = {"version": 1, "frames": 9, "aggregate": {"value": 0.8, "per_item": [0.7, 0.9]},
              "scores": {"keyframe_ssim": {"value": 0.8, "per_item": [0.7, 0.9]}, "face": {"value": None}}}
    assert gating.parse_breakdown(bundle) == ({"keyframe_ssim": 0.8, "face": None, "aggregate": 0.8}, None)


def test_progress_text_counts_attempts_and_best():
    state = RetryState(settings(max_retries=4))
    state.record(0.4)
    state.record(0.6)
    text = state.progress_text()
    assert text.startswith("attempt 2/5") and "0.6000 (attempt 2)" in text


# ---- seed policies --------------------------------------------------------------------------------------
def test_seed_policies():
    for policy in gating.SEED_POLICIES:
        assert gating.attempt_seed(77, 0, policy) == 77  # attempt 0 = the unlooped graph's seed
    assert [gating.attempt_seed(2**64 - 2, k, "increment") for k in range(3)] == [2**64 - 2, 2**64 - 1, 0]
    hashed = [gating.attempt_seed(77, k, "hash") for k in range(1, 40)]
    assert len(set(hashed)) == 39 and all(0 <= h < 2**53 for h in hashed)
    assert hashed == [gating.attempt_seed(77, k, "hash") for k in range(1, 40)]  # reproducible
    assert hashed[:5] != [gating.attempt_seed(78, k, "hash") for k in range(1, 6)]
    randoms = {gating.attempt_seed(77, 1, "random") for _ in range(5)}
    assert len(randoms) > 1
    with pytest.raises(ValueError, match="seed policy"):
        gating.attempt_seed(1, 1, "nope")


# ---- in-process driver ----------------------------------------------------------------------------------
def test_run_retry_loop_keeps_only_the_best_candidate_and_batches():
    rewards = {0: 0.1, 1: 0.7, 2: 0.3, 3: 0.9, 4: 0.95}
    calls = []

    def generate(todo):
        calls.append([a for a, _ in todo])
        return [(f"cand{a}", rewards[a], None) for a, _ in todo]

    kept, state = run_retry_loop(settings(max_retries=4), generate, batch_size=2)
    assert kept == "cand3" and state.chosen == 3 and state.passed and state.attempts_run == 4
    assert calls == [[0, 1], [2, 3]]
    kept, state = run_retry_loop(settings(max_retries=4, mode="best_of"), generate, batch_size=3)
    assert kept == "cand4" and calls[-2:] == [[0, 1, 2], [3, 4]]
    kept, state = run_retry_loop(settings(max_retries=4), generate, batch_size=4)
    assert state.attempts_run == 4 and state.generated_after_stop == 0
    seen = []
    kept, state = run_retry_loop(settings(max_retries=4, threshold=0.6), generate, batch_size=4,
                                 on_record=lambda st, rec: seen.append((rec.attempt, st.best)))
    assert kept == "cand1" and state.attempts_run == 2 and state.generated_after_stop == 2
    assert seen == [(0, 0), (1, 1)]


def test_run_retry_loop_none_pass_returns_best_and_interrupt_propagates():
    kept, state = run_retry_loop(settings(max_retries=2), lambda todo: [(a, 0.1 * a, None) for a, _ in todo])
    assert kept == 2 and not state.passed and state.attempts_run == 3

    class Stop(Exception):
        pass

    seen = []

    def stop_after_two():
        if len(seen) >= 2:
            raise Stop

    def generate(todo):
        seen.extend(todo)
        return [(a, 0.0, None) for a, _ in todo]

    with pytest.raises(Stop):
        run_retry_loop(settings(max_retries=5), generate, should_stop=stop_after_two)
    assert len(seen) == 2


# ---- segments -------------------------------------------------------------------------------------------
def test_segment_ranges_share_keyframes():
    assert gating.segment_ranges(33, every=8) == [(0, 9), (8, 17), (16, 25), (24, 33)]
    assert gating.segment_ranges(30, every=8)[-1] == (24, 30)
    assert gating.segment_ranges(9, segments=2) == [(0, 5), (4, 9)]
    assert gating.segment_ranges(10, keyframes=[0, 3, 9]) == [(0, 4), (3, 10)]
    for bad in (dict(keyframes=[0, 5, 4, 9]), dict(keyframes=[1, 9]), dict(segments=10), dict(every=0)):
        with pytest.raises(ValueError):
            gating.segment_ranges(10, **bad)
    with pytest.raises(ValueError, match="exactly one"):
        gating.segment_ranges(10, every=2, segments=2)


def test_join_segments_drops_shared_frames_and_checks_shapes():
    frames = torch.arange(33, dtype=torch.float32).view(33, 1, 1, 1).expand(33, 2, 3, 3).contiguous()
    parts = [frames[a:b] for a, b in gating.segment_ranges(33, every=8)]
    joined = gating.join_segments(parts, overlap=1)
    assert torch.equal(joined, frames)
    with pytest.raises(ValueError, match="frame shape"):
        gating.join_segments([frames[:5], torch.zeros(5, 2, 4, 3)])
    with pytest.raises(ValueError, match="overlap"):
        gating.join_segments([frames[:5], frames[4:5]], overlap=1)


def test_summarize_segment_logs():
    logs = [{"passed": True, "chosen_attempt": 0, "attempts_run": 1, "best_reward": 0.9, "total_seconds": 1.0},
            {"passed": False, "chosen_attempt": 2, "attempts_run": 4, "best_reward": 0.6, "total_seconds": 3.5},
            None]
    summary = gating.summarize_logs(logs)
    assert not summary["all_passed"] and summary["failed_segments"] == [1]
    assert summary["total_attempts"] == 5 and summary["total_seconds"] == 4.5
    assert summary["segments"][2] == {"segment": 2, "gated": False, "passed": True}


# ---- spend: API calls, provider time, budgets, generator errors -------------------------------------------
def test_generator_error_is_a_failed_attempt_that_is_never_chosen():
    state = RetryState(settings(max_retries=2))
    rec = state.record(0.99, error="API Error: quota", api_calls=1, provider_seconds=2.0, seconds=2.5)
    assert not rec.passed and rec.reward is None and rec.failed_reason == "generator error: API Error: quota"
    assert state.chosen is None and not state.passed and not state.done
    state.record(float("nan"), api_calls=1)  # a candidate with a NaN reward beats no candidate at all
    assert state.chosen == 1
    state.record(0.4, api_calls=1)
    assert state.chosen == 2 and state.stop_reason == "exhausted"
    log = json.loads(state.to_json())
    assert log["attempts"][0]["error"] == "API Error: quota" and log["failed_attempts"] == 1
    assert log["total_api_calls"] == 3 and log["total_provider_seconds"] == 2.0


def test_every_attempt_erroring_leaves_nothing_to_choose():
    state = RetryState(settings(max_retries=1))
    state.record(None, error="boom")
    state.record(None, error="boom again")
    assert state.done and state.chosen is None and not state.passed
    assert "every attempt failed" in state.progress_text()
    assert json.loads(state.to_json())["chosen_attempt"] is None


def test_api_call_budget_stops_before_an_attempt_that_could_exceed_it():
    state = RetryState(settings(max_retries=10, max_api_calls=5))
    state.record(0.1, api_calls=2)
    assert not state.done  # 2 spent + 2 more <= 5
    state.record(0.2, api_calls=2)
    assert state.done and state.stop_reason == "budget_api_calls" and state.total_api_calls == 4
    assert "API-call budget reached" in state.progress_text() and "spent 4 API calls of 5" in state.progress_text()


def test_time_budget_uses_the_longest_attempt_so_far():
    state = RetryState(settings(max_retries=10, max_seconds=10.0))
    state.record(0.1, seconds=2.0)
    state.record(0.1, seconds=4.0)  # 6 spent; the next could take 4: 10 <= 10, allowed
    assert not state.done
    state.record(0.1, seconds=1.0)  # 7 spent + 4 > 10
    assert state.stop_reason == "budget_seconds"
    first_alone = RetryState(settings(max_retries=10, max_seconds=1.0))
    first_alone.record(0.1, seconds=3.0)  # the first attempt always runs, even over the budget
    assert first_alone.stop_reason == "budget_seconds" and first_alone.attempts_run == 1


def test_passing_wins_over_the_budget_and_budgets_validate():
    state = RetryState(settings(max_api_calls=1))
    state.record(0.9, api_calls=1)
    assert state.stop_reason == "passed"
    for kw, match in ((dict(max_seconds=-1), "max_total_seconds"), (dict(max_seconds=float("nan")), "max_total"),
                      (dict(max_api_calls=-1), "max_api_calls"), (dict(max_api_calls=1.5), "max_api_calls"),
                      (dict(seed_limit=0), "seed_limit")):
        with pytest.raises(ValueError, match=match):
            settings(**kw)
    assert settings().as_dict()["max_api_calls"] == 0 and RetryState(settings()).spend_text() == ""


def test_seed_limit_keeps_every_policy_in_range_and_leaves_the_default_unchanged():
    for policy in gating.SEED_POLICIES:
        s = settings(seed_policy=policy, base_seed=2**40 + 5, seed_limit=2**32 - 1, max_retries=20)
        seeds = [s.seed(k) for k in range(21)]
        assert all(0 <= x <= 2**32 - 1 for x in seeds)
        assert seeds[0] == (2**40 + 5) % 2**32  # an out-of-range base seed is folded, attempt 0 included
        if policy != "random":
            assert len(set(seeds)) == 21
    inside = settings(base_seed=77, seed_limit=2**31 - 1)
    assert inside.seed(0) == 77  # a base seed in range is used unchanged
    default = settings(base_seed=77)
    assert [default.seed(k) for k in range(5)] == [gating.attempt_seed(77, k, "hash") for k in range(5)]
    assert default.seed(3) == gating.hash_seed(77, 3)  # the default range keeps the seeds of earlier versions
