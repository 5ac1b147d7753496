"""Reward-gated retry loop logic: settings validation, attempt bookkeeping and the stop/keep decision.

Pure Python (no torch, no ComfyUI): the graph-expansion nodes, the one-node best-of-N sampler and the benchmarks
all drive the same `RetryState`, so "stop at the first pass", "never more than max_retries + 1 attempts", "never
start an attempt the budget cannot pay for" and "return the best when nothing passes" are decided in one place.

Spend: each attempt records its wall time, the seconds spent inside paid API nodes (provider_seconds) and how
many API node runs it made (api_calls: one per first/last-frame generation request, the unit providers bill;
the uploads, status polls and downloads of that request are not counted separately). A budget of total seconds
and/or API calls stops the loop before an attempt that could overrun it: a retry starts only when what is left
covers an attempt as long and as costly as the most expensive one so far (the first attempt always runs).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..common.jsonsafe import json_safe
from .seeds import SEED_MAX, SEED_POLICIES, attempt_seed, validate_seed

# Each retry re-creates the loop body by graph expansion; ComfyUI's node ids and cache hierarchy grow with
# every level (superlinear cost), and 33 generations is already far past the point where a higher threshold
# or a better prompt is the fix. Larger requests are capped and the cap is reported in the attempt log.
MAX_RETRIES = 32
MODES = ("first_pass", "best_of")
REWARD_RANGES = ("0..1", "unbounded")
LOG_VERSION = 1


@dataclass(frozen=True)
class LoopSettings:
    threshold: float
    max_retries: int          # effective (after the cap)
    requested_retries: int    # what the user asked for
    mode: str = "first_pass"
    seed_policy: str = "hash"
    base_seed: int = 0
    reward_range: str = "0..1"
    max_seconds: float = 0.0  # budget of total attempt seconds; 0 = none
    max_api_calls: int = 0    # budget of API node runs; 0 = none
    seed_limit: int = SEED_MAX  # largest seed the generator's seed input takes

    @property
    def attempts(self) -> int:
        """Total attempts allowed: the first run plus the retries."""
        return self.max_retries + 1

    @property
    def capped(self) -> bool:
        return self.requested_retries != self.max_retries

    def seed(self, attempt: int) -> int:
        return attempt_seed(self.base_seed, attempt, self.seed_policy, self.seed_limit)

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "max_retries": self.max_retries,
                "max_retries_requested": self.requested_retries, "capped": self.capped,
                "max_retries_cap": MAX_RETRIES, "attempts_allowed": self.attempts, "mode": self.mode,
                "seed_policy": self.seed_policy, "base_seed": self.base_seed, "reward_range": self.reward_range,
                "max_total_seconds": self.max_seconds, "max_api_calls": self.max_api_calls,
                "seed_limit": self.seed_limit}


def check_threshold(threshold, reward_range: str = "0..1") -> float:
    """The threshold as a float, or ValueError saying what is wrong and how to fix it."""
    if reward_range not in REWARD_RANGES:
        raise ValueError(f"unknown reward_range {reward_range!r}; choose one of {', '.join(REWARD_RANGES)}")
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"threshold must be a finite number, got {value}")
    if reward_range == "0..1" and not 0.0 <= value <= 1.0:
        raise ValueError(
            f"threshold {value} is outside [0, 1], the range of bounded rewards (keyframe SSIM, composite "
            f"rewards): no attempt could {'ever pass' if value > 1 else 'fail'}. Use a threshold in [0, 1] "
            f"(0.85 is the usual gate), or set reward_range to 'unbounded' for a reward without that range.")
    return value


def check_budget(max_seconds=0.0, max_api_calls=0) -> tuple[float, int]:
    """The budget as (seconds, calls), 0 meaning no limit, or ValueError naming the input."""
    try:
        seconds = float(max_seconds)
    except (TypeError, ValueError):
        raise ValueError(f"max_total_seconds must be a number of seconds, got {max_seconds!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"max_total_seconds must be >= 0 seconds (0 = no time budget), got {max_seconds!r}")
    if isinstance(max_api_calls, bool) or not isinstance(max_api_calls, int) or max_api_calls < 0:
        raise ValueError(f"max_api_calls must be a whole number >= 0 (0 = no limit), got {max_api_calls!r}")
    return seconds, max_api_calls


def make_settings(threshold, max_retries, mode: str = "first_pass", seed_policy: str = "hash", base_seed: int = 0,
                  reward_range: str = "0..1", max_seconds=0.0, max_api_calls: int = 0,
                  seed_limit: int = SEED_MAX) -> LoopSettings:
    """Validated settings. max_retries 0 runs once; above MAX_RETRIES it is capped (see LoopSettings.capped)."""
    value = check_threshold(threshold, reward_range)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise ValueError(f"max_retries must be a whole number, got {max_retries!r}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0 (0 runs the body once), got {max_retries}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose 'first_pass' (stop at the first attempt that reaches the "
                         f"threshold) or 'best_of' (run every attempt, keep the best)")
    if seed_policy not in SEED_POLICIES:
        raise ValueError(f"unknown seed_policy {seed_policy!r}; choose one of {', '.join(SEED_POLICIES)}")
    validate_seed(base_seed)
    seconds, calls = check_budget(max_seconds, max_api_calls)
    if isinstance(seed_limit, bool) or not isinstance(seed_limit, int) or not 0 < seed_limit <= SEED_MAX:
        raise ValueError(f"seed_limit must be an integer in 1..{SEED_MAX}, got {seed_limit!r}")
    return LoopSettings(threshold=value, max_retries=min(max_retries, MAX_RETRIES), requested_retries=max_retries,
                        mode=mode, seed_policy=seed_policy, base_seed=base_seed, reward_range=reward_range,
                        max_seconds=seconds, max_api_calls=calls, seed_limit=seed_limit)


def parse_breakdown(value) -> tuple[dict, str | None]:
    """A per-component breakdown as a dict, plus a warning when it could not be read. Accepts None, a dict, a JSON
    object string, or an object with `as_dict()` / `breakdown` (reward-helper score bundles). Never raises: the
    breakdown is informational and must not stop a loop."""
    if value is None or value == "":
        return {}, None
    if hasattr(value, "as_dict") and callable(value.as_dict):
        value = value.as_dict()
    elif hasattr(value, "breakdown") and not isinstance(value, (str, dict)):
        value = value.breakdown
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            return {"unparsed": value[:2000]}, f"breakdown is not valid JSON ({e.msg}); kept as text"
    if isinstance(value, dict):
        if isinstance(value.get("scores"), dict):  # REWARDLOOP_SCORES bundle: one number per scorer is enough here
            compact = {name: s.get("value") if isinstance(s, dict) else s for name, s in value["scores"].items()}
            if isinstance(value.get("aggregate"), dict):
                compact["aggregate"] = value["aggregate"].get("value")
            return json_safe(compact), None
        return json_safe(value), None
    return {"value": json_safe(value)}, "breakdown is not a JSON object; stored under 'value'"


@dataclass
class AttemptRecord:
    attempt: int                       # 0-based
    seed: int
    reward: float | None               # None when the reward was NaN/inf (failed attempt)
    passed: bool
    seconds: float
    breakdown: dict = field(default_factory=dict)
    failed_reason: str | None = None
    warnings: list = field(default_factory=list)
    provider_seconds: float = 0.0      # seconds inside API nodes (upload, generation, polling, download)
    api_calls: int = 0                 # API node runs (generation requests)
    error: str | None = None           # the generator failed (provider error): no candidate at all

    def as_dict(self) -> dict:
        out = {"attempt": self.attempt, "seed": self.seed, "reward": self.reward, "passed": self.passed,
               "seconds": round(self.seconds, 6), "provider_seconds": round(self.provider_seconds, 6),
               "api_calls": self.api_calls, "breakdown": self.breakdown}
        if self.error:
            out["error"] = self.error
        if self.failed_reason:
            out["failed_reason"] = self.failed_reason
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


class RetryState:
    """Attempts so far, the best one, and whether to stop. One instance per loop run."""

    def __init__(self, settings: LoopSettings):
        self.settings = settings
        self.records: list[AttemptRecord] = []
        self.best: int | None = None   # attempt index of the best finite reward
        # Candidates a batched generator produced after the deciding attempt (their cost is real, their
        # rewards are not part of the decision); reported so time per attempt is not misread.
        self.generated_after_stop = 0

    # ---- recording ------------------------------------------------------------------------------
    def record(self, reward, seed: int | None = None, breakdown=None, seconds: float = 0.0,
               provider_seconds: float = 0.0, api_calls: int = 0, error: str | None = None) -> AttemptRecord:
        """Log the next attempt. A NaN/inf reward (or one that is not a number) is a failed attempt with a reason;
        it never becomes the best while a finite reward exists. `error` (the generator failed, e.g. the provider
        answered with an error) is a failed attempt without a candidate: it can never be chosen."""
        if self.done:
            raise ValueError(f"the loop already finished after {len(self.records)} attempt(s) "
                             f"({self.stop_reason}); no further attempt can be recorded")
        index = len(self.records)
        seed = self.settings.seed(index) if seed is None else seed
        parsed, note = parse_breakdown(breakdown)
        warnings = [note] if note else []
        failed_reason = None
        value: float | None
        if error is not None:
            value, failed_reason = None, f"generator error: {error}"
        else:
            try:
                value = float(reward)
            except (TypeError, ValueError):
                value, failed_reason = None, f"reward is not a number ({reward!r})"
        if value is not None and not math.isfinite(value):
            failed_reason = f"reward is {value} (the reward could not be computed for this attempt)"
            value = None
        if value is not None and self.settings.reward_range == "0..1" and not 0.0 <= value <= 1.0:
            warnings.append(f"reward {value} is outside the declared 0..1 range; check the reward node or set "
                            f"reward_range to 'unbounded'")
        passed = value is not None and value >= self.settings.threshold
        rec = AttemptRecord(attempt=index, seed=int(seed), reward=value, passed=passed, seconds=float(seconds),
                            breakdown=parsed, failed_reason=failed_reason, warnings=warnings,
                            provider_seconds=float(provider_seconds), api_calls=int(api_calls),
                            error=None if error is None else str(error))
        self.records.append(rec)
        if value is not None and (self.best is None or value > self.records[self.best].reward):
            self.best = index
        return rec

    # ---- decisions ------------------------------------------------------------------------------
    @property
    def attempts_run(self) -> int:
        return len(self.records)

    @property
    def stop_reason(self) -> str | None:
        if self.settings.mode == "first_pass" and self.records and self.records[-1].passed:
            return "passed"
        if len(self.records) >= self.settings.attempts:
            return "exhausted"
        return self.budget_stop()

    def budget_stop(self) -> str | None:
        """'budget_seconds' / 'budget_api_calls' when the budget left cannot pay for another attempt as long and as
        costly as the most expensive one so far; None otherwise."""
        if not self.records:
            return None
        s = self.settings
        if s.max_api_calls and self.total_api_calls + max(r.api_calls for r in self.records) > s.max_api_calls:
            return "budget_api_calls"
        if s.max_seconds and self.total_seconds + max(r.seconds for r in self.records) > s.max_seconds:
            return "budget_seconds"
        return None

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.records)

    @property
    def total_provider_seconds(self) -> float:
        return sum(r.provider_seconds for r in self.records)

    @property
    def total_api_calls(self) -> int:
        return sum(r.api_calls for r in self.records)

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    @property
    def chosen(self) -> int | None:
        """Attempt returned to the graph: the best finite reward (earliest on ties), else the first attempt that
        produced a candidate; None when every attempt's generator failed (nothing to return)."""
        if not self.records:
            raise ValueError("no attempt recorded yet")
        if self.best is not None:
            return self.best
        return next((r.attempt for r in self.records if r.error is None), None)

    @property
    def best_reward(self) -> float | None:
        return self.records[self.best].reward if self.best is not None else None

    @property
    def passed(self) -> bool:
        return bool(self.records) and self.chosen is not None and self.records[self.chosen].passed

    def next_seed(self) -> int:
        return self.settings.seed(len(self.records))

    # ---- reporting ------------------------------------------------------------------------------
    def progress_text(self) -> str:
        n = self.settings.attempts
        best = "none yet" if self.best_reward is None else f"{self.best_reward:.4f} (attempt {self.best + 1})"
        if self.done:
            if self.passed:
                verdict = "passed"
            elif self.chosen is None:
                verdict = "every attempt failed"
            else:
                verdict = {"budget_seconds": "time budget reached", "budget_api_calls": "API-call budget reached"}.get(
                    self.stop_reason, "no attempt reached the threshold") + "; returning the best"
            text = f"done after {self.attempts_run}/{n} attempts, best {best}: {verdict}"
        else:
            text = f"attempt {self.attempts_run}/{n}, best {best}, threshold {self.settings.threshold:g}"
        if self.settings.capped:
            text += f" (max_retries {self.settings.requested_retries} capped to {self.settings.max_retries})"
        return text + self.spend_text()

    def spend_text(self) -> str:
        """'; spent ...' when the loop made API calls or has a budget, else ''."""
        s = self.settings
        if not (self.total_api_calls or s.max_api_calls or s.max_seconds):
            return ""
        calls = f"{self.total_api_calls} API call{'s' if self.total_api_calls != 1 else ''}"
        if s.max_api_calls:
            calls += f" of {s.max_api_calls}"
        seconds = f"{self.total_seconds:.1f} s" + (f" of {s.max_seconds:g} s" if s.max_seconds else "")
        return f"; spent {calls}, {seconds} ({self.total_provider_seconds:.1f} s in API nodes)"

    def as_dict(self) -> dict:
        return {"version": LOG_VERSION, "settings": self.settings.as_dict(),
                "attempts": [r.as_dict() for r in self.records],
                "attempts_run": self.attempts_run,
                "chosen_attempt": self.chosen if self.records else None,
                "best_reward": self.best_reward, "passed": self.passed,
                "stop_reason": self.stop_reason, "generated_after_stop": self.generated_after_stop,
                "total_seconds": round(self.total_seconds, 6),
                "total_provider_seconds": round(self.total_provider_seconds, 6),
                "total_api_calls": self.total_api_calls,
                "failed_attempts": sum(1 for r in self.records if r.error is not None)}

    def to_json(self) -> str:
        return json.dumps(json_safe(self.as_dict()), allow_nan=False)


def run_retry_loop(settings: LoopSettings, generate: Callable[[Sequence[tuple[int, int]]], Sequence[tuple[Any, Any, Any]]],
                   batch_size: int = 1, clock: Callable[[], float] = time.perf_counter,
                   should_stop: Callable[[], None] | None = None,
                   on_record: Callable[[RetryState, AttemptRecord], None] | None = None) -> tuple[Any, RetryState]:
    """Drive a retry loop in-process (best-of-N sampler, benchmarks).

    `generate` receives a list of (attempt, seed) pairs (at most `batch_size`, never beyond the attempts left) and
    returns one (candidate, reward, breakdown) per pair. Only the best candidate so far is kept, so memory is one
    batch plus one candidate whatever the number of attempts. `should_stop` is called between batches (e.g.
    ComfyUI's interrupt check) and may raise; `on_record(state, record)` after each logged attempt (progress).
    Returns (chosen candidate, state)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    state = RetryState(settings)
    kept = None
    while not state.done:
        if should_stop is not None:
            should_stop()
        start = len(state.records)
        todo = [(a, settings.seed(a)) for a in range(start, min(start + batch_size, settings.attempts))]
        t0 = clock()
        results = list(generate(todo))
        if len(results) != len(todo):
            raise ValueError(f"generate returned {len(results)} results for {len(todo)} attempts")
        per_attempt = (clock() - t0) / len(todo)
        for (attempt, seed), (candidate, reward, breakdown) in zip(todo, results):
            before = state.best
            record = state.record(reward, seed=seed, breakdown=breakdown, seconds=per_attempt)
            if kept is None or state.best != before:
                kept = candidate
            if on_record is not None:
                on_record(state, record)
            if state.done:
                # first_pass: later candidates of the same batch do not take part in the decision
                state.generated_after_stop = len(todo) - (attempt - start) - 1
                break
    return kept, state
