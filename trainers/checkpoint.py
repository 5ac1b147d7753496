"""Checkpoints: `<run>/checkpoints/step_<n>/` holding
  lora.safetensors   the LoRA in peft's layout, fp32 (small: ~40 MB at rank 32 for Wan 1.3B)
  optimizer.pt       optimizer + LR schedule state
  rank_<r>.pt        per process: RNG states (python, numpy, torch, cuda, the trainer's generators) and the
                     data position, so a resumed run continues with exactly the numbers it would have had
  state.json         global step and config digest; written last, so a folder without it is incomplete
Under FSDP the model/optimizer are saved with accelerate's sharded `save_state` instead (model.*, optimizer.*).
A checkpoint is assembled in `step_<n>.tmp` and renamed, so a kill -9 mid-write leaves the previous one valid.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from .reporting import read_json, write_json_atomic

CKPT_DIR = "checkpoints"
_STEP_RE = re.compile(r"^step_(\d+)$")


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / CKPT_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = _STEP_RE.match(p.name)
            if m and (p / "state.json").is_file():
                found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1][1] if found else None


def _unwrapped(rt, model):
    return rt.accelerator.unwrap_model(model)


def save_checkpoint(rt, run_dir: Path, step: int, model, optimizer, scheduler, rank_state: dict,
                    shared: dict, keep: int) -> Path:
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    root = Path(run_dir) / CKPT_DIR
    final = root / f"step_{step:07d}"
    tmp = root / f"step_{step:07d}.tmp"
    if rt.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    rt.barrier()
    if rt.fsdp:
        rt.accelerator.save_state(str(tmp / "accelerate"))
    elif rt.is_main:
        sd = get_peft_model_state_dict(_unwrapped(rt, model))
        save_file({k: v.detach().float().cpu().contiguous() for k, v in sd.items()}, str(tmp / "lora.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    torch.save(rank_state, tmp / f"rank_{rt.rank}.pt")
    rt.barrier()
    if rt.is_main:
        write_json_atomic(tmp / "state.json", {"step": step, "world_size": rt.world, **shared})
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for _, old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    rt.barrier()
    return final


def load_checkpoint(rt, path: Path, model, optimizer, scheduler) -> tuple[dict, dict | None]:
    """Restores model/optimizer/scheduler; returns (shared state, this rank's state or None when the
    checkpoint came from a different world size, in which case the caller reseeds)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    shared = read_json(path / "state.json") or {}
    if rt.fsdp:
        rt.accelerator.load_state(str(path / "accelerate"))
    else:
        set_peft_model_state_dict(_unwrapped(rt, model), load_file(str(path / "lora.safetensors"), device="cpu"))
        opt = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
    rank_file = path / f"rank_{rt.rank}.pt"
    rank_state = None
    if shared.get("world_size") == rt.world and rank_file.is_file():
        rank_state = torch.load(rank_file, map_location="cpu", weights_only=True)
    return shared, rank_state
