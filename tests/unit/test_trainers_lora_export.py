"""LoRA export in ComfyUI's Wan key format, checked against ComfyUI itself (its WanModel, loader, LoRA key
map and ModelPatcher, in a subprocess), plus the name mapping and re-import into peft."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rewardloop.trainers.lora_export import comfy_to_diffusers, comfy_to_peft_state, diffusers_to_comfy, peft_to_comfy_state
from trainer_toys import PACK_ROOT, TINY_WAN

COMFY_DIR = Path(os.environ.get("REWARDLOOP_COMFYUI") or Path(os.environ.get(
    "REWARDLOOP_ENV_DIR", Path.home() / ".cache/comfyui-rewardloop/env")) / "ComfyUI")


def test_module_name_mapping_both_ways():
    table = {
        "blocks.0.attn1.to_q": "blocks.0.self_attn.q", "blocks.3.attn1.to_out.0": "blocks.3.self_attn.o",
        "blocks.12.attn2.to_k": "blocks.12.cross_attn.k", "blocks.1.attn2.to_v": "blocks.1.cross_attn.v",
        "blocks.29.ffn.net.0.proj": "blocks.29.ffn.0", "blocks.29.ffn.net.2": "blocks.29.ffn.2",
    }
    for diffusers_name, comfy_name in table.items():
        assert diffusers_to_comfy(diffusers_name) == comfy_name
        assert comfy_to_diffusers(comfy_name) == diffusers_name
    with pytest.raises(ValueError, match="No ComfyUI Wan name"):
        diffusers_to_comfy("proj_out")


def test_export_matches_comfyui_loader_and_outputs(tmp_path):
    assert (COMFY_DIR / "comfy" / "lora.py").is_file(), f"ComfyUI source tree expected at {COMFY_DIR} (setup_env.sh)"
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("comfy_lora_roundtrip.py")), str(COMFY_DIR),
                           str(PACK_ROOT), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # our loader (diffusers, converted from the ComfyUI file) == ComfyUI's WanModel on the same weights
    assert r["base_max_diff"] < 1e-4 * max(1.0, r["base_scale"])
    # every exported module found by ComfyUI's key map, none left unloaded
    assert r["patched_modules"] == r["expected_modules"] == 20 and r["lora_tensors"] == 60
    assert r["unmatched_warnings"] == []
    assert r["sample_keys"][0].startswith("diffusion_model.blocks.0.")
    # the LoRA changes the output, and ComfyUI's patched model equals our peft model with the LoRA on
    assert r["lora_effect"] > 1e-3
    assert r["lora_max_diff"] < 1e-4


def test_reimport_preserves_the_delta_across_alpha(tmp_path):
    from peft import get_peft_model_state_dict

    from rewardloop.trainers.config import LoraSettings, ModelSettings, TrainerConfig
    from rewardloop.trainers.lora_export import load_lora_into, save_comfy_lora
    from rewardloop.trainers.model import apply_lora, load_transformer

    def model(alpha):
        cfg = TrainerConfig(method="dpo", model=ModelSettings(config=TINY_WAN, random_init=True))
        torch.manual_seed(0)
        return apply_lora(load_transformer(cfg), LoraSettings(rank=4, alpha=alpha))

    src = model(8.0)
    with torch.no_grad():
        for name, p in src.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    path = save_comfy_lora(get_peft_model_state_dict(src), tmp_path / "l.safetensors", rank=4, alpha=8.0,
                           dtype=torch.float32)
    dst = model(4.0)  # a different alpha: B is rescaled so B*alpha/r is unchanged
    load_lora_into(dst, path)
    x, t, c = torch.randn(1, 16, 2, 4, 4), torch.tensor([300.0]), torch.randn(1, 6, 32)
    with torch.no_grad():
        a = src(hidden_states=x, timestep=t, encoder_hidden_states=c, return_dict=False)[0]
        b = dst(hidden_states=x, timestep=t, encoder_hidden_states=c, return_dict=False)[0]
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="rank 4 differs from lora.rank=8"):
        comfy_to_peft_state(peft_to_comfy_state(get_peft_model_state_dict(src), 8.0, torch.float32), rank=8, alpha=8.0)
