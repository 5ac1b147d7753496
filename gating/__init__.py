"""Reward gating core (no ComfyUI import): retry-loop settings, attempt log and decisions, seed policies,
per-segment helpers, and the known-pass-probability perturbation used to test and benchmark loops."""
from .retry import (LOG_VERSION, MAX_RETRIES, MODES, REWARD_RANGES, AttemptRecord, LoopSettings, RetryState,
                    check_budget, check_threshold, json_safe, make_settings, parse_breakdown, run_retry_loop)
from .seeds import SEED_MAX, SEED_POLICIES, attempt_seed, hash_seed, validate_seed
from .segments import join_segments, segment_ranges, summarize_logs

__all__ = [
    "LOG_VERSION", "MAX_RETRIES", "MODES", "REWARD_RANGES", "AttemptRecord", "LoopSettings", "RetryState",
    "check_budget", "check_threshold", "json_safe", "make_settings", "parse_breakdown", "run_retry_loop",
    "SEED_MAX", "SEED_POLICIES", "attempt_seed", "hash_seed", "validate_seed",
    "join_segments", "segment_ranges", "summarize_logs",
]
