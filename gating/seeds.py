"""Seed policies: which seed attempt k of a retry loop uses.

Attempt 0 always uses the base seed under every policy, so wrapping an existing graph in a loop leaves its
first result unchanged. Later attempts:
- "increment": base + k (mod 2**64), ComfyUI's own "increment" habit; note that re-queuing with the base seed
  bumped by one repeats attempts already tried;
- "hash": a 53-bit hash of (base, k): reproducible, far from neighbouring base seeds, and exact in JavaScript
  (the frontend reads the attempt log as JSON numbers, which are doubles);
- "random": fresh randomness per attempt (not reproducible; the log records the seed used).
A `limit` keeps every seed in the range of the seed input it feeds (Runway and Veo take 32-bit seeds, Vidu 31-bit):
seeds are reduced modulo limit + 1, attempt 0's included only when the base seed itself is out of that range.
"""
from __future__ import annotations

import hashlib
import secrets

SEED_POLICIES = ("hash", "increment", "random")
SEED_MAX = 2**64 - 1  # the range of ComfyUI's seed widgets (KSampler: 0xffffffffffffffff)
_JS_SAFE = 2**53 - 1


def validate_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed {seed} is outside 0..{SEED_MAX} (ComfyUI's seed range); pick a seed in that range")
    return seed


def hash_seed(base_seed: int, attempt: int, salt: str = "attempt") -> int:
    digest = hashlib.blake2b(f"rewardloop:{salt}:{base_seed}:{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _JS_SAFE


def attempt_seed(base_seed: int, attempt: int, policy: str, limit: int = SEED_MAX) -> int:
    """Seed of attempt `attempt` (0-based) under `policy`, in 0..limit."""
    validate_seed(base_seed)
    if attempt < 0:
        raise ValueError(f"attempt index must be >= 0, got {attempt}")
    if policy not in SEED_POLICIES:
        raise ValueError(f"unknown seed policy {policy!r}; choose one of {', '.join(SEED_POLICIES)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= SEED_MAX:
        raise ValueError(f"seed limit must be an integer in 1..{SEED_MAX}, got {limit!r}")
    if attempt == 0:
        return base_seed % (limit + 1)
    if policy == "increment":
        return (base_seed + attempt) % (limit + 1)
    if policy == "hash":
        return hash_seed(base_seed, attempt) % (limit + 1)
    return secrets.randbelow(min(limit, _JS_SAFE) + 1)
