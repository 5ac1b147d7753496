"""One reward factory: a scoring function built from a reward name, weights and options.

The best-of-N sampler, the trainers (GRPO rewards, gold rewards, validation gates, preference pairs) and scripts
all score decoded clips the same way:

    fn = reward_function("composite", weights={"keyframe_ssim": 1, "temporal_lpips": 1}, device="cuda")
    result = fn(frames, keyframes=kf, prompt="a red fox")      # a RewardResult; result.value is the reward
    results = fn.batch(group, [{"prompt": p} for p in prompts]) # a batch [B,T,H,W,C] (or a list of clips) at once

`name` is a scorer of the registry or "composite". Options are checked when the function is built, so a typo
fails before any clip is generated. `batch` computes each shared analysis once for the whole batch (rewards.batch)
and gives the results scoring each clip alone gives.
"""
from __future__ import annotations

import inspect

import torch

from .batch import CLIP_INPUTS, make_clips, score_clips
from .composite import DEFAULT_WEIGHTS, composite
from .context import Clip
from .registry import SCORERS, check_options, run
from .result import RewardResult
from .runtime import RewardRuntime

COMPOSITE = "composite"


def reward_names() -> list[str]:
    return [*SCORERS, COMPOSITE]


class RewardFunction:
    """`fn(frames, **inputs)` -> RewardResult of one clip; `fn.batch(frames, inputs)` -> one per clip of a batch.
    Made by `reward_function`, which checks the name, weights and options."""

    def __init__(self, name: str, weights: dict[str, float] | None, options: dict, runtime: RewardRuntime | None,
                 clip_settings: dict):
        self.name, self.weights, self.options = name, weights, options
        self.runtime, self.clip_settings = runtime, clip_settings

    def __call__(self, frames: torch.Tensor, **inputs) -> RewardResult:
        unknown = sorted(set(inputs) - set(CLIP_INPUTS))
        if unknown:
            raise TypeError(f"unknown clip input(s) {unknown}; give any of {', '.join(CLIP_INPUTS)}")
        clip = Clip(frames, runtime=self.runtime, **self.clip_settings, **inputs)
        if self.name == COMPOSITE:
            return composite(clip, self.weights, self.options)[0]
        return run(self.name, clip, **self.options)

    def batch(self, frames, inputs=None) -> list[RewardResult]:
        """The reward of every clip of `frames` ([B,T,H,W,C], or a list of [T,H,W,C] clips, sizes may differ), each
        shared analysis computed once for the batch. `inputs`: None, one dict of clip inputs (keyframes,
        keyframe_positions, prompt, reference, windows) for every clip, or a list of such dicts, one per clip."""
        clips = make_clips(frames, inputs, runtime=self.runtime, **self.clip_settings)
        return score_clips(clips, self.name, self.weights, self.options)


def _clip_settings() -> list[str]:
    """Clip's keyword settings a reward function may fix for every call (device, analysis_size, flow_method ...)."""
    params = inspect.signature(Clip.__init__).parameters
    return [p for p in params if p not in ("self", "frames", "runtime", *CLIP_INPUTS) and not p.startswith("_")]


def reward_function(name: str, *, weights: dict[str, float] | None = None, options: dict | None = None,
                    runtime: RewardRuntime | None = None, **clip_settings) -> RewardFunction:
    """`fn(frames, *, keyframes=None, keyframe_positions=None, prompt="", reference=None, windows=None)` -> the
    RewardResult of reward `name` on `frames` ([T,H,W,C] in 0..1); `fn.batch(frames, inputs)` for a batch of clips.

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
    settings = _clip_settings()
    unknown = sorted(set(clip_settings) - set(settings))
    if unknown:
        raise ValueError(f"unknown clip setting(s) {unknown}; the reward function takes: {', '.join(settings)}")
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
    return RewardFunction(name, weights, options, runtime, dict(clip_settings))


def score_batch(name: str, frames, inputs=None, *, weights: dict[str, float] | None = None,
                options: dict | None = None, runtime: RewardRuntime | None = None, **clip_settings) -> list[RewardResult]:
    """`reward_function(name, ...).batch(frames, inputs)`: reward `name` of every clip of a batch in one call."""
    return reward_function(name, weights=weights, options=options, runtime=runtime, **clip_settings).batch(frames, inputs)
