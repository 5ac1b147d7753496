"""LoRA files in the key format ComfyUI's LoRA loader reads for Wan.

ComfyUI (comfy/lora.py `model_lora_keys_unet`) maps every `diffusion_model.<module>.weight` of the loaded
model to the LoRA key `diffusion_model.<module>`, and its LoRA adapter reads `<key>.lora_A.weight`,
`<key>.lora_B.weight` and `<key>.alpha` (scale = alpha / rank). ComfyUI's Wan modules keep the original
Wan names (blocks.N.self_attn.q, cross_attn.o, ffn.0 ...), while diffusers renamed them (attn1.to_q,
attn2.to_out.0, ffn.net.0.proj ...): the table below is the inverse of the renames in diffusers'
`convert_wan_transformer_to_diffusers` for the linears we put LoRA on. A unit test checks every exported
key against ComfyUI's own key map for the same architecture.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

COMFY_PREFIX = "diffusion_model."
PEFT_PREFIX = "base_model.model."

_ATTN = {"attn1": "self_attn", "attn2": "cross_attn"}
_PROJ = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
_FFN = {"ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2"}

_DIFFUSERS_RE = re.compile(r"^blocks\.(\d+)\.(?:(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)|(ffn\.net\.0\.proj|ffn\.net\.2))$")
_COMFY_RE = re.compile(r"^blocks\.(\d+)\.(?:(self_attn|cross_attn)\.(q|k|v|o)|(ffn\.0|ffn\.2))$")


def diffusers_to_comfy(module: str) -> str:
    m = _DIFFUSERS_RE.match(module)
    if not m:
        raise ValueError(f"No ComfyUI Wan name for LoRA module {module!r} (supported: attention q/k/v/o and FFN "
                         "linears of the transformer blocks).")
    block, attn, proj, ffn = m.groups()
    return f"blocks.{block}.{_ATTN[attn]}.{_PROJ[proj]}" if attn else f"blocks.{block}.{_FFN[ffn]}"


def comfy_to_diffusers(module: str) -> str:
    m = _COMFY_RE.match(module)
    if not m:
        raise ValueError(f"LoRA key module {module!r} is not a Wan block attention/FFN linear.")
    block, attn, proj, ffn = m.groups()
    if attn:
        inv_attn = {v: k for k, v in _ATTN.items()}
        inv_proj = {v: k for k, v in _PROJ.items()}
        return f"blocks.{block}.{inv_attn[attn]}.{inv_proj[proj]}"
    return f"blocks.{block}.{ {v: k for k, v in _FFN.items()}[ffn] }"


def _split(key: str) -> tuple[str, str]:
    """'...blocks.0.attn1.to_q.lora_A.weight' -> ('...blocks.0.attn1.to_q', 'lora_A')."""
    for part in ("lora_A", "lora_B"):
        token = f".{part}."
        if token in key:
            return key.split(token)[0], part
    raise ValueError(f"Not a LoRA A/B key: {key}")


def peft_to_comfy_state(peft_sd: dict[str, torch.Tensor], alpha: float, dtype: torch.dtype = torch.bfloat16
                        ) -> dict[str, torch.Tensor]:
    """peft's `get_peft_model_state_dict` output -> ComfyUI Wan LoRA state dict."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in peft_sd.items():
        module, part = _split(key)
        if module.startswith(PEFT_PREFIX):
            module = module[len(PEFT_PREFIX):]
        comfy = COMFY_PREFIX + diffusers_to_comfy(module)
        out[f"{comfy}.{part}.weight"] = tensor.detach().to("cpu", dtype).contiguous()
        out[f"{comfy}.alpha"] = torch.tensor(float(alpha))
    if not out:
        raise ValueError("The LoRA has no weights to export.")
    return out


def save_comfy_lora(peft_sd: dict[str, torch.Tensor], path: str | Path, *, rank: int, alpha: float,
                    dtype: torch.dtype = torch.bfloat16, metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Write to a temporary file, check it (re-open, count keys: a trainer never reports success without a
    readable file), then publish it under `path`, or under a numbered name when another file already has that
    name (unless `overwrite`). Returns the path written."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ..trust import publish

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = peft_to_comfy_state(peft_sd, alpha, dtype)
    meta = {"format": "pt", "rewardloop.lora_format": "comfyui-wan", "ss_network_dim": str(rank),
            "ss_network_alpha": str(alpha)}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata=meta)
    with safe_open(str(tmp), framework="pt") as f:
        n = len(list(f.keys()))
    if n != len(state):
        tmp.unlink()
        raise RuntimeError(f"LoRA file {path} would hold {n} tensors, expected {len(state)}.")
    return publish(tmp, path, overwrite=overwrite)


def comfy_to_peft_state(sd: dict[str, torch.Tensor], rank: int, alpha: float) -> dict[str, torch.Tensor]:
    """A ComfyUI-format Wan LoRA (ours, or lora_up/lora_down style) -> peft state for a model whose LoRA has
    `rank` and `alpha`. A different alpha in the file is folded into B so the effective delta is preserved."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in sd.items():
        k = key[len(COMFY_PREFIX):] if key.startswith(COMFY_PREFIX) else key
        for suffix, part in ((".lora_A.weight", "A"), (".lora_B.weight", "B"), (".lora_down.weight", "A"),
                             (".lora_up.weight", "B"), (".alpha", "alpha")):
            if k.endswith(suffix):
                modules.setdefault(k[: -len(suffix)], {})[part] = tensor
                break
        else:
            raise ValueError(f"Unrecognised LoRA key {key!r}: expected ComfyUI Wan keys like "
                             "'diffusion_model.blocks.0.self_attn.q.lora_A.weight'.")
    out = {}
    for module, parts in modules.items():
        if "A" not in parts or "B" not in parts:
            raise ValueError(f"LoRA module {module} lacks its A or B matrix.")
        a, b = parts["A"].float(), parts["B"].float()
        if a.shape[0] != rank:
            raise ValueError(f"LoRA file rank {a.shape[0]} differs from lora.rank={rank}: set lora.rank to match.")
        file_alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
        b = b * (file_alpha / rank) / (alpha / rank)
        name = PEFT_PREFIX + comfy_to_diffusers(module)
        out[f"{name}.lora_A.weight"] = a
        out[f"{name}.lora_B.weight"] = b
    return out


def load_lora_into(peft_model, path: str | Path) -> None:
    """Initialise the peft model's LoRA from a file we (or another trainer) exported for ComfyUI."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"lora.init_from {path} does not exist.")
    cfg = peft_model.peft_config["default"]
    state = comfy_to_peft_state(load_file(str(path)), cfg.r, cfg.lora_alpha)
    expected = {k for k in peft_model.state_dict() if "lora_" in k}
    result = set_peft_model_state_dict(peft_model, state)
    unexpected = getattr(result, "unexpected_keys", []) or []
    if unexpected:
        raise ValueError(f"{path} has LoRA weights for modules this model/targets lack: {unexpected[:6]}.")
    loaded = {k.replace(".weight", ".default.weight") for k in state}
    missing = [k for k in expected if k not in loaded]
    if missing:
        raise ValueError(f"{path} lacks LoRA weights for {len(missing)} targeted modules (e.g. {missing[0]}): "
                         "lora.targets must match the file's.")
