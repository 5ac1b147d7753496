"""Reward and metric functions the trainers call on decoded clips.

Interface: `RewardFn(frames, prompt=None) -> float`, frames a [T,H,W,C] float32 tensor in 0..1 (ComfyUI
IMAGE layout), higher = better; `score_batch(fn, frames, prompts)` scores a batch [B,T,H,W,C], in one call for the
pack's suite rewards (`SuiteReward.batch`: flow, LPIPS, CLIP, BLIP, I3D and face detection batched across the
clips). The same registry serves GRPO rewards, the held-out gold reward, the curriculum's validation gates and the
preference-pair builder; the suite rewards are built by the pack's one reward factory (rewards.reward_function) and
run on the trainer's device unless their params name another. Built-ins:
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


def reward_device(params: dict, device: torch.device | str | None = None) -> str:
    """Where a suite reward runs: `params["device"]`, or with "auto" (the default) the trainer's `device` (the
    training GPU), else the first GPU if there is one."""
    dev = params.get("device", "auto")
    if dev != "auto":
        return str(dev)
    if device is not None:
        return str(device)
    return "cuda" if torch.cuda.is_available() else "cpu"


# Settings of rewards.Clip a single scorer's params may carry beside the scorer's own options.
_SCORER_CLIP_SETTINGS = ("analysis_size", "flow_method", "precision")


class SuiteReward:
    """A reward of the pack's suite (the composite or one scorer) built by the one reward factory
    (rewards.reward_function): `fn(frames, prompt)` scores one clip, `fn.batch(frames, prompts)` a batch [B,T,H,W,C]
    in one call, each shared analysis computed once for the batch (equal to scoring the clips one by one)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, frames: torch.Tensor, prompt: str | None = None) -> float:
        return float(self.fn(frames.float().clamp(0, 1), prompt=prompt or "").value)

    def batch(self, frames, prompts: list[str]) -> list[float]:
        clips = [f.float().clamp(0, 1) for f in frames]
        return [float(r.value) for r in self.fn.batch(clips, [{"prompt": p or ""} for p in prompts])]


def _suite(spec: RewardSpec, device) -> SuiteReward:
    """The composite (params: `device`, `options` ({scorer: {...}}), other keys are rewards.Clip settings such as
    analysis_size) or one scorer (params: `device`, analysis_size / flow_method / precision, the rest its options)."""
    rewards = _rewards_package()
    params = dict(spec.params)
    dev = reward_device(params, device)
    params.pop("device", None)
    if spec.name == "composite":
        options = params.pop("options", None)
        fn = rewards.reward_function("composite", weights=dict(spec.weights) or None, options=options, device=dev,
                                     **params)
    else:
        settings = {k: params.pop(k) for k in _SCORER_CLIP_SETTINGS if k in params}
        fn = rewards.reward_function(spec.name, options=params, device=dev, **settings)
    return SuiteReward(fn)


_BUILTIN: dict[str, Callable[[dict], RewardFn]] = {
    "brightness": _brightness,
    "target": _target,
    "temporal_smoothness": _temporal_smoothness,
    "python": _python,
}


def reward_names() -> list[str]:
    """composite, every scorer of the reward registry, then the trainers' own rewards."""
    return ["composite", *_rewards_package().SCORERS, *_BUILTIN]


def build_reward(spec: RewardSpec | dict | str | None, device: torch.device | str | None = None) -> RewardFn | None:
    """The reward function a spec names. `device`: where the pack's suite rewards run when their params say
    device "auto" (the default): the trainer's device, so rewards run on the training GPU."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = RewardSpec(name=spec)
    elif isinstance(spec, dict):
        spec = RewardSpec.model_validate(spec)
    if spec.name in _BUILTIN:
        return _BUILTIN[spec.name](dict(spec.params))
    if spec.name == "composite" or spec.name in _rewards_package().SCORERS:
        return _suite(spec, device)
    raise ValueError(f"Unknown reward {spec.name!r}; choose one of {sorted(reward_names())}.")


def score_batch(fn: RewardFn, frames, prompts: list[str]) -> torch.Tensor:
    """frames [B,T,H,W,C] (or a list of [T,H,W,C] clips) -> rewards [B]: the whole batch in one call for the pack's
    suite rewards (`fn.batch`), clip by clip for the others."""
    if hasattr(fn, "batch"):
        values = list(fn.batch(frames, list(prompts)))
    else:
        values = [fn(frames[i], prompt=prompts[i]) for i in range(len(frames))]
    out = torch.tensor(values, dtype=torch.float32)
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"The reward returned a non-finite value: {values}")
    return out
