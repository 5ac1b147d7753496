"""Reward and metric functions the trainers call on decoded clips.

Interface: `RewardFn(frames, prompt=None) -> float`, frames a [T,H,W,C] float32 tensor in 0..1 (ComfyUI
IMAGE layout), higher = better. The same registry serves GRPO rewards, the held-out gold reward, the
curriculum's validation gates and the preference-pair builder. Built-ins:
  brightness   mean intensity (a toy reward for tests and smoke runs)
  target       -mean((frames - value)^2), value a float or [r,g,b] (toy: match a colour)
  temporal_smoothness  -mean |frame[t+1] - frame[t]| (a cheap stand-in for t-LPIPS in smoke runs)
  composite    the pack's reward suite (rewardloop.rewards.composite), weights from RewardSpec.weights
  <scorer>     any single scorer of the suite by name (temporal_lpips, flow_smoothness, seam_consistency,
               identity_lock, clip_score, loop_break, ...), params passed to it
  python       any importable callable: params {"callable": "package.module:function"}; from a config file
               on disk only (a workflow cannot name code unless the machine's owner allows it: trust/policy.py)
Scorers that do not apply to a clip return NaN; the trainers stop with an error rather than train on it.
`reward_names()` lists every name, in the order the launch nodes offer them.
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


def _rewards_package():
    try:
        from .. import rewards
    except ImportError as exc:
        raise ValueError(f"the pack's rewards package failed to import: {exc}") from exc
    return rewards


def _reward_device(params: dict) -> str:
    dev = params.get("device", "auto")
    return ("cuda" if torch.cuda.is_available() else "cpu") if dev == "auto" else dev


def _composite(spec: RewardSpec) -> RewardFn:
    """The pack's composite reward (rewardloop.rewards.composite): weighted mean of the scorers that apply.
    params: `device` (auto), `options` ({scorer: {...}}), other keys go to rewards.Clip (e.g. analysis_size)."""
    rewards = _rewards_package()
    weights = dict(spec.weights) or None
    params = dict(spec.params)
    device = _reward_device(params)
    params.pop("device", None)
    options = params.pop("options", None)

    def fn(frames: torch.Tensor, prompt: str | None = None) -> float:
        clip = rewards.Clip(frames.float().clamp(0, 1), prompt=prompt or "", device=device, **params)
        agg, _ = rewards.composite(clip, weights, options)
        return float(agg.value)
    return fn


def _scorer(name: str, params: dict) -> RewardFn:
    """One scorer of the pack's reward suite by name (temporal_lpips, flow_smoothness, clip_score, ...)."""
    rewards = _rewards_package()
    params = dict(params)
    device = _reward_device(params)
    params.pop("device", None)
    clip_kw = {k: params.pop(k) for k in ("analysis_size", "flow_method") if k in params}

    def fn(frames: torch.Tensor, prompt: str | None = None) -> float:
        clip = rewards.Clip(frames.float().clamp(0, 1), prompt=prompt or "", device=device, **clip_kw)
        return float(rewards.score(name, clip, **params).value)
    return fn


_BUILTIN: dict[str, Callable[[dict], RewardFn]] = {
    "brightness": _brightness,
    "target": _target,
    "temporal_smoothness": _temporal_smoothness,
    "python": _python,
}


def reward_names() -> list[str]:
    """composite, every scorer of the reward registry, then the trainers' own rewards."""
    return ["composite", *_rewards_package().SCORERS, *_BUILTIN]


def build_reward(spec: RewardSpec | dict | str | None) -> RewardFn | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = RewardSpec(name=spec)
    elif isinstance(spec, dict):
        spec = RewardSpec.model_validate(spec)
    if spec.name == "composite":
        return _composite(spec)
    if spec.name in _BUILTIN:
        return _BUILTIN[spec.name](dict(spec.params))
    if spec.name in _rewards_package().SCORERS:
        return _scorer(spec.name, spec.params)
    raise ValueError(f"Unknown reward {spec.name!r}; choose one of {sorted(reward_names())}.")


def score_batch(fn: RewardFn, frames: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """frames [B,T,H,W,C] -> rewards [B] (scorers take one clip; the batch is the clip list)."""
    values = [fn(frames[i], prompt=prompts[i]) for i in range(frames.shape[0])]
    out = torch.tensor(values, dtype=torch.float32)
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"The reward returned a non-finite value: {values}")
    return out
