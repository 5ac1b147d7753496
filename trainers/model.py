"""Wan 2.1 transformer, LoRA and VAE from local files (nothing is fetched).

The transformer is diffusers' `WanTransformer3DModel`. Weights come from either
  * a ComfyUI `models/diffusion_models/*.safetensors` file (original Wan key names, optionally prefixed
    `model.diffusion_model.`), converted with diffusers' own single-file converter; the architecture is
    read from the tensor shapes (`model.config: auto`) the way ComfyUI detects it, or
  * a diffusers folder (`config.json` + `diffusion_pytorch_model*.safetensors`).
Shipped configs (trainers/configs/*.json) describe the released sizes for random-init benchmarks.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from .config import LoraSettings, ModelSettings, TrainerConfig, resolve_path

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
HEAD_DIM = 128  # every released Wan size uses 128-wide heads; ComfyUI infers heads = dim // 128 too

# peft module-name patterns per LoRA target group (diffusers names; lora_export maps them to ComfyUI's).
_TARGET_PATTERNS = {
    "self_attn": r"blocks\.\d+\.attn1\.(to_q|to_k|to_v|to_out\.0)",
    "cross_attn": r"blocks\.\d+\.attn2\.(to_q|to_k|to_v|to_out\.0)",
    "ffn": r"blocks\.\d+\.ffn\.net\.(0\.proj|2)",
}

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def shipped_config(name: str) -> dict:
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise ValueError(f"model.config {name!r} is not a shipped config; choose one of {names}, a path to a "
                         "diffusers config.json, an inline mapping, or 'auto' to read it from the weights.")
    return json.loads(path.read_text())


def _config_value(cfg: TrainerConfig, value) -> dict | None:
    if isinstance(value, dict):
        return dict(value)
    if value == "auto":
        return None
    p = resolve_path(cfg, value)
    if p.suffix == ".json" and p.is_file():
        return json.loads(p.read_text())
    if p.is_dir() and (p / "config.json").is_file():
        return json.loads((p / "config.json").read_text())
    return shipped_config(value)


def infer_wan_config(sd: dict[str, torch.Tensor]) -> dict:
    """Architecture of an original-format (ComfyUI) Wan 2.1 t2v state dict, from tensor shapes."""
    keys = set(sd)
    if "patch_embedding.weight" not in keys or "head.modulation" not in keys:
        raise ValueError("The weights file is not a Wan 2.1 diffusion model (no patch_embedding.weight / "
                         "head.modulation): pick a Wan file from models/diffusion_models.")
    if any(k.startswith(("img_emb.", "vace_", "control_adapter.")) for k in keys) or any(".k_img." in k for k in keys):
        raise ValueError("Only Wan 2.1 text-to-video transformers are supported for training (this file is an "
                         "image-to-video / VACE / camera variant).")
    if any(k.endswith(("scale_weight", "scaled_fp8")) for k in keys) or any(
            v.dtype in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)) for v in sd.values()):
        raise ValueError("fp8 checkpoints cannot be trained: use the bf16/fp16 release of the model.")
    pe = sd["patch_embedding.weight"]
    dim, in_ch = int(pe.shape[0]), int(pe.shape[1])
    patch = [int(s) for s in pe.shape[2:]]
    layers = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k)))
    out_ch = int(sd["head.head.weight"].shape[0]) // (patch[0] * patch[1] * patch[2])
    heads = max(1, dim // HEAD_DIM)
    return {
        "patch_size": patch,
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": in_ch,
        "out_channels": out_ch,
        "text_dim": int(sd["text_embedding.0.weight"].shape[1]),
        "freq_dim": int(sd["time_embedding.0.weight"].shape[1]),
        "ffn_dim": int(sd["blocks.0.ffn.0.weight"].shape[0]),
        "num_layers": layers,
        "cross_attn_norm": "blocks.0.norm3.weight" in keys,
        "qk_norm": "rms_norm_across_heads" if "blocks.0.self_attn.norm_q.weight" in keys else None,
        "eps": 1e-6,
    }


def _strip_prefix(sd: dict) -> dict:
    for prefix in ("model.diffusion_model.", "diffusion_model."):
        if any(k.startswith(prefix) for k in sd):
            return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}
    return sd


def _clean_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def load_transformer(cfg: TrainerConfig):
    """The base transformer in fp32 on CPU, loaded strictly (a partial load is an error, never a warning)."""
    from diffusers import WanTransformer3DModel
    from safetensors.torch import load_file

    ms: ModelSettings = cfg.model
    config = _config_value(cfg, ms.config)
    if ms.random_init and not ms.weights:
        if config is None:
            raise ValueError("model.random_init needs an explicit model.config (e.g. wan2.1_t2v_1.3b).")
        return WanTransformer3DModel(**_clean_config(config)).float()

    path = resolve_path(cfg, ms.weights)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is a folder but has no config.json: give a diffusers WanTransformer3DModel "
                             "folder or a ComfyUI .safetensors file.")
        return WanTransformer3DModel.from_pretrained(str(path), local_files_only=True, torch_dtype=torch.float32)
    if not path.is_file():
        raise ValueError(f"model.weights {path} does not exist. Put the Wan 2.1 file in ComfyUI's "
                         "models/diffusion_models folder (e.g. wan2.1_t2v_1.3B_bf16.safetensors) and give its path.")
    if path.suffix not in (".safetensors", ".sft"):
        raise ValueError(f"model.weights {path}: only .safetensors files are loaded (pickles can run code).")
    sd = _strip_prefix(load_file(str(path)))
    inferred = infer_wan_config(sd)
    config = inferred if config is None else {**_clean_config(config)}
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    converted = convert_wan_transformer_to_diffusers(dict(sd))
    model = WanTransformer3DModel(**_clean_config(config))
    result = model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path} does not match the model config: missing {result.missing_keys[:8]} "
                         f"unexpected {result.unexpected_keys[:8]} (use model.config: auto, or the matching size).")
    return model.float()


def cast_base(model, dtype: torch.dtype) -> None:
    """Frozen base weights in `dtype`, except the modules diffusers keeps in fp32 (norms, time embedding,
    modulation tables): bf16 there visibly degrades Wan's outputs."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, param in model.named_parameters():
        want = torch.float32 if keep.intersection(name.split(".")) else dtype
        if param.dtype != want:
            param.data = param.data.to(want)


def lora_target_regex(targets: list[str]) -> str:
    return "|".join(f"(?:{_TARGET_PATTERNS[t]})" for t in targets)


def apply_lora(model, settings: LoraSettings):
    """Wrap in a peft LoRA (B initialised to zero, so step 0 equals the reference model). The reference
    model is the same object with `with peft_model.disable_adapter():`, never a copy."""
    from peft import LoraConfig, get_peft_model

    model.requires_grad_(False)
    lcfg = LoraConfig(r=settings.rank, lora_alpha=settings.alpha or settings.rank, lora_dropout=settings.dropout,
                      target_modules=lora_target_regex(settings.targets), init_lora_weights=True)
    peft_model = get_peft_model(model, lcfg, autocast_adapter_dtype=True)
    for p in peft_model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()  # optimizer state and updates in fp32 even over a bf16 base
    return peft_model


def build_policy(cfg: TrainerConfig, device: torch.device, autocast_dtype: torch.dtype | None = None):
    """Load the base model, cast it, optionally enable checkpointing, add the LoRA, move to device and apply
    the speed settings of trainers/speed.py (none changes the computed function)."""
    from . import speed

    model = load_transformer(cfg)
    dtype = base_dtype(cfg.model.dtype, device, autocast_dtype)
    cast_base(model, dtype)
    gc = cfg.model.gradient_checkpointing
    if gc:
        speed.set_checkpointing(model, 1.0 if gc is True else float(gc), cfg.model.checkpoint_keep_attention)
    model = apply_lora(model, cfg.lora)
    if autocast_dtype is not None:
        speed.set_lora_input_casts(model, False)
    if cfg.lora.init_from:
        from .lora_export import load_lora_into

        load_lora_into(model, resolve_path(cfg, cfg.lora.init_from))
    model = model.to(device)
    if cfg.run.compile:
        speed.compile_blocks(transformer_of(model), "default" if cfg.run.compile is True else cfg.run.compile)
    return model


def base_dtype(name: str, device: torch.device, autocast_dtype: torch.dtype | None = None) -> torch.dtype:
    """auto: bf16 frozen weights when the forward runs under bf16 autocast (GPU default), else fp32. A bf16
    base without autocast would meet fp32 activations and fail, so that combination is refused."""
    if name == "auto":
        return torch.bfloat16 if autocast_dtype == torch.bfloat16 else torch.float32
    if DTYPES[name] != torch.float32 and autocast_dtype is None:
        raise ValueError(f"model.dtype={name} needs run.mixed_precision bf16 (or auto on a GPU); with "
                         "mixed precision off use model.dtype fp32.")
    return DTYPES[name]


def transformer_of(model):
    """The WanTransformer3DModel inside a (DDP/FSDP-wrapped) peft model."""
    m = model
    while hasattr(m, "module"):
        m = m.module
    return m.get_base_model() if hasattr(m, "get_base_model") else m


# ---------------------------------------------------------------------------------------------- VAE
class WanVaeCodec:
    """Frames <-> normalised Wan latents with diffusers' AutoencoderKLWan (Wan 2.1 VAE)."""

    def __init__(self, vae, device: torch.device, dtype: torch.dtype = torch.float32):
        self.vae = vae.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.device, self.dtype = device, dtype
        c = vae.config
        self.mean = torch.tensor(c.latents_mean, dtype=torch.float32, device=device).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(c.latents_std, dtype=torch.float32, device=device).view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """[T,H,W,C] float 0..1 -> [C',T',H/8,W/8] float32 (the distribution mode, not a sample:
        DPO's pairs must not get extra noise from the encoder)."""
        x = frames.to(self.device, self.dtype).permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1
        z = self.vae.encode(x).latent_dist.mode().float()
        return ((z - self.mean) / self.std)[0].cpu()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B,C',T',h,w] normalised latents -> [B,T,H,W,C] float32 frames in 0..1."""
        z = latents.to(self.device, torch.float32) * self.std + self.mean
        x = self.vae.decode(z.to(self.dtype)).sample.float()
        return ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).contiguous()


class PreviewDecoder:
    """Toy decoder for tests and reward debugging without a VAE: the first three latent channels through
    a sigmoid, one 'frame' per latent frame. Never use it for real rewards."""

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(latents[:, :3].float()).permute(0, 2, 3, 4, 1).contiguous()


def make_decoder(cfg: TrainerConfig, device: torch.device, choice: str):
    """What turns sampled latents into frames for rewards: the Wan VAE, or the preview decoder for toys."""
    if choice == "preview" or (choice == "auto" and not cfg.model.vae and cfg.model.random_init):
        return PreviewDecoder()
    if not cfg.model.vae:
        raise ValueError("GRPO scores decoded frames: set model.vae to the Wan 2.1 VAE file "
                         "(grpo.decoder: preview is only for toy rewards and tests).")
    return load_vae(cfg, device)


def load_vae(cfg: TrainerConfig, device: torch.device) -> WanVaeCodec:
    from diffusers import AutoencoderKLWan
    from safetensors.torch import load_file

    path = resolve_path(cfg, cfg.model.vae)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if path.is_dir():
        vae = AutoencoderKLWan.from_pretrained(str(path), local_files_only=True, torch_dtype=torch.float32)
        return WanVaeCodec(vae, device, dtype)
    if not path.is_file():
        raise ValueError(f"model.vae {path} does not exist. Put the Wan 2.1 VAE (wan_2.1_vae.safetensors) in "
                         "ComfyUI's models/vae folder and give its path, or a diffusers AutoencoderKLWan folder.")
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    sd = load_file(str(path))
    config = _config_value(cfg, cfg.model.vae_config)
    if config is None:
        config = shipped_config("wan2.1_vae")
        if "encoder.conv1.weight" in sd and "conv2.weight" in sd:  # original Wan layout: widths from shapes
            config.update(base_dim=int(sd["encoder.conv1.weight"].shape[0]), z_dim=int(sd["conv2.weight"].shape[0]))
    vae = AutoencoderKLWan(**_clean_config(config))
    if not any(k.startswith("encoder.conv_in") for k in sd):
        sd = convert_wan_vae_to_diffusers(sd)
    result = vae.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path} is not a Wan 2.1 VAE matching model.vae_config: missing "
                         f"{result.missing_keys[:6]} unexpected {result.unexpected_keys[:6]}.")
    return WanVaeCodec(vae, device, dtype)
