"""Trainer configs from the few settings a launch node exposes (no ComfyUI import: the node resolves file
names to paths and hands them over). Anything else is set through `extra` (YAML or JSON text), deep-merged
over the generated config, so every trainer option stays reachable from the canvas; the merged config is then
loaded with the workflow policy (trainers/config.py), whatever key a value arrived through.
Every settings text goes through the pack's one bounded parser (trust/settings.py).
"""
from __future__ import annotations

import json
import re

from ..trust import check_text_size, parse_settings, plain_name
from .config import check_frames

MAX_STAGES = 32


def lora_file_name(name: str, where: str = "lora_name") -> str:
    return plain_name(name, where, ".safetensors")


def parse_extra(text: str, where: str = "extra_settings") -> dict:
    """A settings widget's YAML/JSON mapping ({} when empty)."""
    if not (text or "").strip():
        return {}
    data = parse_settings(text, where)
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping, e.g. `optim: {{warmup_steps: 50}}`.")
    return data


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_stages(text: str, steps: int) -> list[dict]:
    """'33,49,65,97' -> stages (4k+1 checked)."""
    check_text_size(text or "", "stages")
    parts = [p.strip() for p in re.split(r"[,\s>-]+", text or "") if p.strip()]
    if not parts:
        raise ValueError("stages is empty: give frame counts such as '33, 49, 65, 97'.")
    if len(parts) > MAX_STAGES:
        raise ValueError(f"stages: {len(parts)} stages; at most {MAX_STAGES} are accepted.")
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
    check_text_size(text, "gates")
    gates = []
    line_re = re.compile(r"^\s*([\w.]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if all(line_re.match(ln) for ln in lines):
        for ln in lines:
            metric, op, value = line_re.match(ln).groups()
            gates.append({"metric": metric, "op": op, "value": float(value)})
        return gates
    data = parse_settings(text, "gates")
    if not isinstance(data, list):
        raise ValueError("gates: give lines like 'temporal_smoothness >= -0.05' or a YAML list of "
                         "{metric, op, value}.")
    return data


def common(*, model_path: str, vae_path: str, lora_dir: str, lora_name: str, steps: int, lr: float, rank: int,
           seed: int, checkpoint_every: int, gradient_checkpointing: bool, output_dir: str = "",
           overwrite: bool = False) -> dict:
    cfg = {
        "run": {"max_steps": steps, "seed": seed, "checkpoint_every": checkpoint_every, "lora_dir": lora_dir,
                "lora_name": lora_file_name(lora_name), "overwrite": overwrite},
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
        w = parse_extra(weights_text, "reward_settings")
        spec["weights" if name == "composite" else "params"] = w
    return spec


def to_json(cfg: dict) -> str:
    return json.dumps(cfg, indent=2)
