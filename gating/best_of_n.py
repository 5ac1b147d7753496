"""Best-of-N sampling: sample candidates in batches, decode them, score each batch in one call, keep the best, stop
at the first pass (the retry loop's decision rules, `run_retry_loop`).

Everything model-specific comes in as callables, so this runs and is tested without ComfyUI:
    sample(seeds) -> samples       one candidate per seed, concatenated on the batch axis (per_candidate rows each)
    decode(samples) -> frames      one candidate's samples -> IMAGE frames
    score(frames_list) -> results  one RewardResult per candidate's frames (`rewards.reward_function(...).batch`
                                   builds it from a reward name: shared analyses computed once for the batch)
Only the best candidate so far is kept, so memory is one batch (its samples and decoded frames) plus one candidate
whatever N is.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .retry import AttemptRecord, LoopSettings, RetryState, run_retry_loop

log = logging.getLogger("rewardloop.best_of_n")


def sample_halving(sample: Callable[[list[int]], torch.Tensor], seeds: Sequence[int], *,
                   is_oom: Callable[[BaseException], bool],
                   on_oom: Callable[[int], None] | None = None) -> torch.Tensor:
    """`sample(seeds)`, and when that runs out of memory (`is_oom(error)`), the same seeds again in two halves
    (recursively, down to one seed: a single candidate that does not fit re-raises). `on_oom(n)` runs after a
    failure at n seeds (e.g. to empty the allocator's cache). Results equal one call per seed when every
    candidate's noise comes from its own seed."""
    seeds = list(seeds)
    try:
        return sample(seeds)
    except BaseException as err:  # noqa: B036  (is_oom decides; everything else is re-raised)
        if len(seeds) == 1 or not is_oom(err):
            raise
    # Outside the except block: the failed attempt's tensors are released with its traceback before retrying.
    if on_oom is not None:
        on_oom(len(seeds))
    half = len(seeds) // 2
    log.warning("best-of-N: out of memory sampling %d candidates at once; retrying %d + %d", len(seeds), half,
                len(seeds) - half)
    return torch.cat([sample_halving(sample, seeds[:half], is_oom=is_oom, on_oom=on_oom),
                      sample_halving(sample, seeds[half:], is_oom=is_oom, on_oom=on_oom)])


def breakdown(result) -> dict:
    """What the attempt log keeps of a candidate's RewardResult."""
    out = {result.name: result.value, "per_item": result.per_item.tolist()}
    if result.note:
        out["note"] = result.note
    return out


def best_of_n(settings: LoopSettings, sample: Callable[[list[int]], torch.Tensor],
              decode: Callable[[torch.Tensor], Any], score: Callable[[list], Sequence[Any]], *, per_candidate: int,
              batch_size: int = 1, is_oom: Callable[[BaseException], bool] = lambda err: False,
              on_oom: Callable[[int], None] | None = None, should_stop: Callable[[], None] | None = None,
              on_record: Callable[[RetryState, AttemptRecord], None] | None = None
              ) -> tuple[tuple[Any, torch.Tensor], RetryState]:
    """Up to `settings.attempts` candidates, `batch_size` sampled at a time (halved on out-of-memory), decoded one by
    one and scored together in one `score` call. Returns ((frames, samples) of the chosen candidate, the loop state
    with one logged attempt per scored candidate)."""

    def generate(todo: list[tuple[int, int]]):
        samples = sample_halving(sample, [seed for _, seed in todo], is_oom=is_oom, on_oom=on_oom)
        chunks = [samples[i * per_candidate:(i + 1) * per_candidate] for i in range(len(todo))]
        frames = [decode(chunk) for chunk in chunks]
        results = list(score(frames))
        if len(results) != len(frames):
            raise ValueError(f"score returned {len(results)} results for {len(frames)} candidates")
        return [((f, chunk), r.value, breakdown(r)) for f, chunk, r in zip(frames, chunks, results)]

    return run_retry_loop(settings, generate, batch_size=batch_size, should_stop=should_stop, on_record=on_record)
