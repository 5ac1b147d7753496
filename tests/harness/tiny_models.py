"""Tiny, randomly initialised models in the exact file formats ComfyUI's own loaders read, so server tests
run real sampling and VAE code on CPU in about a second.

- `models/diffusion_models/rl_tiny_wan21.safetensors`: a Wan 2.1 text-to-video DiT (ComfyUI's own
  comfy.ldm.wan.model.WanModel, dim 128, 2 layers, 1 head) whose sizes UNETLoader infers from tensor shapes.
- `models/vae/rl_tiny_wan21_vae.safetensors`: a Wan 2.1 VAE (comfy.ldm.wan.vae.WanVAE, width 16).
Wan's text encoder is a full UMT5-XXL, far too big here: tests/server/testpack supplies conditioning tensors
of the right shape instead (everything after text encoding is ComfyUI's real code).

Run with the environment's Python:  python tiny_models.py MODELS_DIR
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DIT_FILE = "rl_tiny_wan21.safetensors"
VAE_FILE = "rl_tiny_wan21_vae.safetensors"
TEXT_DIM = 4096
DIT_ARGS = dict(model_type="t2v", dim=128, ffn_dim=256, num_heads=1, num_layers=2, text_dim=TEXT_DIM,
                in_dim=16, out_dim=16)
VAE_ARGS = dict(dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])


def _seeded_state_dict(module, seed: int) -> dict:
    """Every tensor drawn from N(0, 0.02) with a fixed seed (norm scales 1): identical files on every machine,
    independent of each layer class's own init (ComfyUI's ops skip init)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, tensor in module.state_dict().items():
        if name.endswith(("norm.weight", "gamma")) or ".norm" in name and name.endswith("weight"):
            value = torch.ones(tensor.shape)
        else:
            value = torch.randn(tensor.shape, generator=gen) * 0.02
        out[name] = value.to(torch.float32).contiguous()
    return out


def write_tiny_wan(models_dir: Path, seed: int = 0) -> dict[str, Path]:
    import torch
    from safetensors.torch import save_file

    import comfy.ldm.wan.model
    import comfy.ldm.wan.vae

    paths = {"dit": models_dir / "diffusion_models" / DIT_FILE, "vae": models_dir / "vae" / VAE_FILE}
    with torch.device("cpu"):
        dit = comfy.ldm.wan.model.WanModel(**DIT_ARGS, operations=torch.nn)
        vae = comfy.ldm.wan.vae.WanVAE(**VAE_ARGS)
    for key, module, offset in (("dit", dit, 0), ("vae", vae, 1)):
        paths[key].parent.mkdir(parents=True, exist_ok=True)
        save_file(_seeded_state_dict(module, seed + offset), str(paths[key]))
    return paths


def sampler_inputs(text: str, size: int, length: int) -> dict[str, dict]:
    """API-format nodes every tiny-Wan server test starts from: the two core loaders, the test pack's text
    conditioning (positive `text`, empty negative) and an empty video latent (ids unet, vae, pos, neg, latent)."""
    return {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": DIT_FILE, "weight_dtype": "default"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": VAE_FILE}},
        "pos": {"class_type": "RLTestTextConditioning", "inputs": {"text": text, "tokens": 8}},
        "neg": {"class_type": "RLTestTextConditioning", "inputs": {"text": "", "tokens": 8}},
        "latent": {"class_type": "EmptyHunyuanLatentVideo",
                   "inputs": {"width": size, "height": size, "length": length, "batch_size": 1}},
    }


def main(models_dir: str) -> None:
    comfy_dir = os.environ["REWARDLOOP_COMFYUI"]
    sys.path.append(comfy_dir)
    sys.argv = ["main.py", "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    for key, path in write_tiny_wan(Path(models_dir)).items():
        print(key, path, path.stat().st_size)


if __name__ == "__main__":
    main(sys.argv[1])
