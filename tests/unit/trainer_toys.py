"""Tiny random Wan transformers and toy data for the trainer tests (CPU, seconds)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

PACK_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = PACK_ROOT / "trainers" / "launch.py"

# A 2-layer, 2-head x 16 WanTransformer3DModel: same classes and code paths as Wan 2.1, ~60k parameters.
TINY_WAN = {"patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 16,
            "out_channels": 16, "text_dim": 32, "freq_dim": 32, "ffn_dim": 64, "num_layers": 2,
            "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6}
TEXT_DIM = 32


def write_embeddings(path: Path, prompts: list[str], seed: int = 0) -> Path:
    from rewardloop.trainers.text_embeddings import save_text_embeddings

    g = torch.Generator().manual_seed(seed)
    return save_text_embeddings(path, prompts, [torch.randn(5, TEXT_DIM, generator=g) for _ in prompts], "random")


def write_dpo_toy(root: Path, n_pairs: int = 12, n_prompts: int = 3, latent_t: int = 3, hw: int = 4) -> Path:
    """Winners are smooth, bright latents, losers the same pattern darker plus noise: a preference a tiny
    LoRA can learn. Latents are precomputed .safetensors files (no VAE)."""
    from rewardloop.trainers.dpo_data import save_latent

    root.mkdir(parents=True, exist_ok=True)
    prompts = [f"toy prompt {i}" for i in range(n_prompts)]
    write_embeddings(root / "emb.safetensors", prompts)
    g = torch.Generator().manual_seed(1)
    rows = []
    for i in range(n_pairs):
        base = torch.randn(16, latent_t, hw, hw, generator=g) * 0.3
        save_latent(root / f"w{i}.safetensors", base + 0.5)
        save_latent(root / f"l{i}.safetensors", base - 0.5 + 0.3 * torch.randn(base.shape, generator=g))
        rows.append({"prompt": prompts[i % n_prompts], "chosen": f"w{i}.safetensors", "rejected": f"l{i}.safetensors"})
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "pairs.jsonl"


def _toy_config(out: Path, max_steps: int, checkpoint_every: int, lr: float, run: dict) -> dict:
    """The sections every toy run shares: the tiny random Wan, a rank-4 LoRA, CPU, one thread."""
    return {
        "run": {"output_dir": str(out), "max_steps": max_steps, "checkpoint_every": checkpoint_every,
                "num_threads": 1, "tensorboard": False, "device": "cpu", **run},
        "model": {"config": TINY_WAN, "random_init": True, "text_len": 8},
        "lora": {"rank": 4},
        "optim": {"lr": lr},
    }


def dpo_config(root: Path, out: Path, **run) -> dict:
    return {
        **_toy_config(out, 8, 4, 3e-3, run),
        "dpo": {"data": str(root / "pairs.jsonl"), "text_embeddings": str(root / "emb.safetensors"), "frames": 9,
                "beta": 200.0, "eval_pairs": 3, "eval_every": 4},
    }


def grpo_config(root: Path, out: Path, **run) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    prompts = [f"grpo prompt {i}" for i in range(3)]
    write_embeddings(root / "emb.safetensors", prompts + [""], seed=2)
    (root / "prompts.txt").write_text("\n".join(prompts))
    return {
        **_toy_config(out, 6, 2, 3e-2, run),
        "grpo": {"prompts": str(root / "prompts.txt"), "text_embeddings": str(root / "emb.safetensors"),
                 "frames": 5, "height": 32, "width": 32, "group_size": 4, "prompts_per_step": 2,
                 "sampling_steps": 6, "window_size": 3, "clip_range": 1e-3, "decoder": "preview",
                 "reward": {"name": "brightness"}, "gold_reward": {"name": "temporal_smoothness"}},
    }


def build(config: dict, method: str):
    from rewardloop.trainers.config import config_from_dict

    return config_from_dict(config, method=method)


def run_inprocess(config: dict, method: str) -> dict:
    from rewardloop.trainers.cli import run_method
    from rewardloop.trainers.runtime import Runtime

    cfg = build(config, method)
    rt = Runtime(cfg.run, Path(cfg.run.output_dir))
    return run_method(cfg, rt)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


def python_exe() -> str:
    return sys.executable


def launch_cmd(method: str, config_path: Path) -> list[str]:
    return [python_exe(), str(LAUNCHER), method, "--config", str(config_path)]


def env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_subprocess(method: str, config_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(launch_cmd(method, config_path), capture_output=True, text=True, timeout=timeout, env=env())
