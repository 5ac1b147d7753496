"""Trainer configs from the few settings a launch node exposes (no ComfyUI import: the node resolves file
names to paths and hands them over). Anything else is set through `extra` (YAML or JSON text), deep-merged
over the generated config, so every trainer option stays reachable from the canvas.
"""
from __future__ import annotations

import json
import re

from .config import check_frames

_NAME_RE = re.compile(r"^[\w.\- ]+$")


def lora_file_name(name: str) -> str:
    name = name.strip()
    if not name.endswith(".safetensors"):
        name += ".safetensors"
    if not _NAME_RE.match(name) or name.startswith("."):
        raise ValueError(f"LoRA name {name!r}: use letters, digits, spaces, '.', '-' or '_' (no folders).")
    return name


def parse_extra(text: str) -> dict:
    text = (text or "").strip()
    if not text:
        return {}
    import yaml

    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise ValueError(f"extra settings are not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("extra settings must be a mapping, e.g. `optim: {warmup_steps: 50}`.")
    return data


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_stages(text: str, steps: int) -> list[dict]:
    """'33,49,65,97' -> stages (4k+1 checked)."""
    parts = [p.strip() for p in re.split(r"[,\s>-]+", text or "") if p.strip()]
    if not parts:
        raise ValueError("stages is empty: give frame counts such as '33, 49, 65, 97'.")
    try:
        frames = [int(p) for p in parts]
    except ValueError as exc:
        raise ValueError(f"stages {text!r}: expected comma-separated frame counts.") from exc
    return [{"frames": check_frames(f, "stage frames"), "steps": steps} for f in frames]


def parse_gates(text: str) -> list[dict]:
    """YAML/JSON list of {metric, op, value} or lines like 'brightness >= 0.3'."""
    text = (text or "").strip()
    if not text:
        return []
    gates = []
    line_re = re.compile(r"^\s*([\w.]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if all(line_re.match(ln) for ln in lines):
        for ln in lines:
            metric, op, value = line_re.match(ln).groups()
            gates.append({"metric": metric, "op": op, "value": float(value)})
        return gates
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, list):
        raise ValueError("gates: give lines like 'temporal_smoothness >= -0.05' or a YAML list of "
                         "{metric, op, value}.")
    return data


def common(*, model_path: str, vae_path: str, lora_dir: str, lora_name: str, steps: int, lr: float, rank: int,
           seed: int, checkpoint_every: int, gradient_checkpointing: bool, output_dir: str = "") -> dict:
    cfg = {
        "run": {"max_steps": steps, "seed": seed, "checkpoint_every": checkpoint_every, "lora_dir": lora_dir,
                "lora_name": lora_file_name(lora_name)},
        "model": {"weights": model_path, "gradient_checkpointing": gradient_checkpointing},
        "lora": {"rank": rank},
        "optim": {"lr": lr},
    }
    if vae_path:
        cfg["model"]["vae"] = vae_path
    if output_dir:
        cfg["run"]["output_dir"] = output_dir
    return cfg


def reward_spec(name: str, weights_text: str = "") -> dict:
    spec = {"name": name}
    if weights_text and weights_text.strip():
        w = parse_extra(weights_text)
        spec["weights" if name == "composite" else "params"] = w
    return spec


def to_json(cfg: dict) -> str:
    return json.dumps(cfg, indent=2)
