"""The table of scorers: name -> function, range, what it reads from the Clip, which model folders it needs (each
module declares its own), and the check of the options a caller passes to one."""
from __future__ import annotations

import inspect

from . import (aesthetic, caption, clipscore, flow_smoothness, framing, fvd_lite, identity, keyframe_ssim, loop_break,
               novelty, seam, structure, temporal_lpips)
from .context import Clip
from .result import RewardResult
from .scorer import Scorer


# The scorers, in the order reports and composites list them. Adding one: a module whose
# `score(clip, **options) -> RewardResult` is declared with @scorer(...) (rewards/scorer.py), its entry here, a test.
MODULES = (keyframe_ssim, temporal_lpips, flow_smoothness, fvd_lite, identity, structure, clipscore, caption, seam,
           loop_break, aesthetic, framing, novelty)
SCORERS: dict[str, Scorer] = {m.score.scorer.name: m.score.scorer for m in MODULES}


def get(name: str) -> Scorer:
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; available: {', '.join(SCORERS)}") from None


def option_names(name: str) -> list[str]:
    """The keyword options a scorer takes (its parameters after the clip)."""
    return list(inspect.signature(get(name).fn).parameters)[1:]


def check_options(name: str, options: dict) -> dict:
    """`options` for scorer `name`, or ValueError naming the unknown keys and the scorer's options."""
    if not isinstance(options, dict):
        raise ValueError(f"options for {name} must be an object such as {{\"num_samples\": 4}}, got {options!r}")
    allowed = option_names(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))}; its options are: "
                         f"{', '.join(allowed) or 'none'}")
    return options


def run(name: str, clip: Clip, **options) -> RewardResult:
    return get(name).fn(clip, **check_options(name, options))
