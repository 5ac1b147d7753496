"""Reward and metric functions the trainers call on decoded clips.

Interface: `RewardFn(frames, prompt=None) -> float`, frames a [T,H,W,C] float32 tensor in 0..1 (ComfyUI
IMAGE layout), higher = better. The same registry serves GRPO rewards, the held-out gold reward, the
curriculum's validation gates and the preference-pair builder. Built-ins:
  brightness   mean intensity (a toy reward for tests and smoke runs)
  target       -mean((frames - value)^2), value a float or [r,g,b] (toy: match a colour)
  temporal_smoothness  -mean |frame[t+1] - frame[t]| (a cheap stand-in for t-LPIPS in smoke runs)
  composite    the pack's reward suite (rewardloop.rewards), weights from RewardSpec.weights
  python       any importable callable: params {"callable": "package.module:function"}
"""
from __future__ import annotations

import importlib
import inspect
from typing import Callable, Protocol

import torch

from .config import RewardSpec


class RewardFn(Protocol):
    def __call__(self, frames: torch.Tensor, prompt: str | None = None) -> float: ...


def _brightness(params: dict) -> RewardFn:
    def fn(frames: torch.Tensor, prompt: str | None = None) -> float:
        return float(frames.float().mean())
    return fn


def _target(params: dict) -> RewardFn:
    value = torch.as_tensor(params.get("value", 0.5), dtype=torch.float32)

    def fn(frames: torch.Tensor, prompt: str | None = None) -> float:
        return -float((frames.float() - value.to(frames.device)).pow(2).mean())
    return fn


def _temporal_smoothness(params: dict) -> RewardFn:
    def fn(frames: torch.Tensor, prompt: str | None = None) -> float:
        if frames.shape[0] < 2:
            return 0.0
        return -float((frames[1:].float() - frames[:-1].float()).abs().mean())
    return fn


def _python(params: dict) -> RewardFn:
    target = params.get("callable", "")
    if ":" not in target:
        raise ValueError("reward 'python' needs params.callable = 'package.module:function'.")
    mod_name, fn_name = target.split(":", 1)
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"reward callable {target!r} cannot be imported: {exc}") from exc
    kwargs = {k: v for k, v in params.items() if k != "callable"}
    return _adapt(fn, kwargs)


def _adapt(fn: Callable, kwargs: dict) -> RewardFn:
    try:
        takes_prompt = "prompt" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_prompt = False

    def wrapped(frames: torch.Tensor, prompt: str | None = None) -> float:
        out = fn(frames, prompt=prompt, **kwargs) if takes_prompt else fn(frames, **kwargs)
        return float(getattr(out, "total", out))
    return wrapped


def _composite(spec: RewardSpec) -> RewardFn:
    """The pack's composite reward. Resolved lazily so the trainer core has no hard dependency on which
    scorers are installed; the message says what is missing."""
    try:
        from .. import rewards
    except ImportError as exc:
        raise ValueError(f"reward 'composite' needs the pack's rewards package, which failed to import: {exc}") from exc
    builder = getattr(rewards, "build_composite", None) or getattr(rewards, "composite_reward", None)
    if builder is None:
        raise ValueError("reward 'composite': rewardloop.rewards exposes no build_composite(weights, **params); "
                         "use a named reward or params.callable instead.")
    fn = builder(dict(spec.weights), **spec.params)
    return _adapt(fn, {})


_BUILTIN: dict[str, Callable[[dict], RewardFn]] = {
    "brightness": _brightness,
    "target": _target,
    "temporal_smoothness": _temporal_smoothness,
    "python": _python,
}


def build_reward(spec: RewardSpec | dict | str | None) -> RewardFn | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = RewardSpec(name=spec)
    elif isinstance(spec, dict):
        spec = RewardSpec(**spec)
    if spec.name == "composite":
        return _composite(spec)
    if spec.name not in _BUILTIN:
        raise ValueError(f"Unknown reward {spec.name!r}; choose one of {sorted([*_BUILTIN, 'composite'])}.")
    return _BUILTIN[spec.name](dict(spec.params))


def score_batch(fn: RewardFn, frames: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """frames [B,T,H,W,C] -> rewards [B] (scorers take one clip; the batch is the clip list)."""
    values = [fn(frames[i], prompt=prompts[i]) for i in range(frames.shape[0])]
    out = torch.tensor(values, dtype=torch.float32)
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"The reward returned a non-finite value: {values}")
    return out
