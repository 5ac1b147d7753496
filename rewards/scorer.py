"""What a scorer is: its function plus a declaration of its name, value range, what it reads from the Clip, which
model folders it loads from and a one-line summary. Each scorer module declares itself with `@scorer(...)` on its
`score` function; the registry lists the modules."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .result import RewardResult


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable[..., RewardResult]
    value_range: tuple[float, float]
    uses: tuple[str, ...]          # Clip inputs/products: flow, keyframes, prompt, reference, windows
    model_folders: tuple[str, ...]  # sub-folders of models/rewardloop it loads from
    summary: str


def scorer(name: str, value_range: tuple[float, float], *, summary: str, uses: tuple[str, ...] = (),
           model_folders: tuple[str, ...] = ()):
    """Declares `score(clip, **options) -> RewardResult` as the scorer `name` (kept as `score.scorer`)."""
    def declare(fn: Callable[..., RewardResult]) -> Callable[..., RewardResult]:
        fn.scorer = Scorer(name, fn, value_range, tuple(uses), tuple(model_folders), summary)
        return fn

    return declare
