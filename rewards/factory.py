"""One reward factory: a scoring function built from a reward name, weights and options.

The best-of-N sampler, the trainers (GRPO rewards, gold rewards, validation gates, preference pairs) and scripts
all score decoded clips the same way:

    fn = reward_function("composite", weights={"keyframe_ssim": 1, "temporal_lpips": 1}, device="cuda")
    result = fn(frames, keyframes=kf, prompt="a red fox")      # a RewardResult; result.value is the reward

`name` is a scorer of the registry or "composite". Options are checked when the function is built, so a typo
fails before any clip is generated.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .composite import DEFAULT_WEIGHTS, composite
from .context import Clip
from .registry import SCORERS, check_options, run
from .result import RewardResult
from .runtime import RewardRuntime

COMPOSITE = "composite"
# Inputs of a clip rather than settings of the function: given per call.
CLIP_INPUTS = ("keyframes", "keyframe_positions", "prompt", "reference", "windows")

RewardFunction = Callable[..., RewardResult]


def reward_names() -> list[str]:
    return [*SCORERS, COMPOSITE]


def reward_function(name: str, *, weights: dict[str, float] | None = None, options: dict | None = None,
                    runtime: RewardRuntime | None = None, **clip_settings) -> RewardFunction:
    """`fn(frames, *, keyframes=None, keyframe_positions=None, prompt="", reference=None, windows=None)` -> the
    RewardResult of reward `name` on `frames` ([T,H,W,C] in 0..1).

    name      a scorer (keyframe_ssim, temporal_lpips, ...) or "composite"
    weights   composite only: {scorer: weight}; default the composite's defaults
    options   a scorer's keyword options ({"net": "vgg"}); for the composite, per scorer ({"temporal_lpips": {...}})
    runtime   whose models and caches are used (default: default_runtime())
    clip_settings  Clip settings shared by every call: device, flow_method, analysis_size, precision, ..."""
    if name not in reward_names():
        raise ValueError(f"unknown reward {name!r}; choose one of {', '.join(reward_names())}")
    bad = sorted(set(clip_settings) & set(CLIP_INPUTS))
    if bad:
        raise ValueError(f"{', '.join(bad)} belong to each call (fn(frames, {bad[0]}=...)), not to the reward function")
    options = dict(options or {})
    if name == COMPOSITE:
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = sorted((set(weights) | set(options)) - set(SCORERS))
        if unknown:
            raise ValueError(f"unknown scorer name(s) {unknown}; available: {', '.join(SCORERS)}")
        for scorer, opts in options.items():
            check_options(scorer, opts)
    else:
        if weights:
            raise ValueError(f"weights apply to the composite reward only, not to {name}")
        check_options(name, options)

    def fn(frames: torch.Tensor, **inputs) -> RewardResult:
        unknown = sorted(set(inputs) - set(CLIP_INPUTS))
        if unknown:
            raise TypeError(f"unknown clip input(s) {unknown}; give any of {', '.join(CLIP_INPUTS)}")
        clip = Clip(frames, runtime=runtime, **clip_settings, **inputs)
        if name == COMPOSITE:
            return composite(clip, weights, options)[0]
        return run(name, clip, **options)

    return fn
