"""Checkpoints through accelerate's `save_state` / `load_state`, the same path in every mode (one process, DDP,
FSDP2). A checkpoint is `<run>/checkpoints/step_<n>/accelerate/`:
  model.safetensors        the LoRA weights only (a save hook hands accelerate peft's LoRA state instead of the
                           whole model; under FSDP accelerate writes the sharded model, pytorch_model_fsdp_0/)
  optimizer.bin            the optimizer state (FSDP: optimizer_0/)
  random_states_<r>.pkl    per process: Python, NumPy, torch and CUDA RNG states (accelerate's own)
  custom_checkpoint_0.pkl  the trainer's own state (`TrainerState`, registered for checkpointing): step, world
                           size, method, stage, the LR schedule, and per process the trainer's generators and
                           data position, so a resumed run continues with exactly the numbers it would have had
It is written into `step_<n>.tmp/` and renamed when every process has finished, so a kill mid-save leaves the
previous checkpoint as the newest.

Loading validates a checkpoint before anything is restored: every file present and readable without running
code (pickles are opened with torch's weights-only loader), the LoRA tensors this model needs with their
shapes, the optimizer's parameter count, and the step recorded inside equal to the folder's. A corrupt newest
checkpoint is reported by path and the run falls back to the newest intact one (said in the log and the
progress file); if none is intact the run stops with an error naming each file and what is wrong with it.
"""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CKPT_DIR = "checkpoints"
STATE_DIR = "accelerate"
FORMAT = "rewardloop-checkpoint-v2"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.bin"
TRAINER_FILE = "custom_checkpoint_0.pkl"   # accelerate's name for the first registered object
_STEP_RE = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """No checkpoint of a run could be restored; the message names every file and its problem."""


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every finished checkpoint (renamed from .tmp), oldest first."""
    root = Path(run_dir) / CKPT_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = _STEP_RE.match(p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p))
    return sorted(found)


class TrainerState:
    """The state accelerate does not keep itself, as one object registered for checkpointing (once per Runtime;
    the trainer running at the time attaches itself). Per-process parts are gathered to the main process, which
    writes the file."""

    def __init__(self):
        self.trainer = None
        self.step = 0
        self.loaded: dict | None = None

    def state_dict(self) -> dict:
        t = self.trainer
        mine = t.local_state()
        ranks = [mine]
        if t.rt.world > 1:
            from accelerate.utils import gather_object

            ranks = gather_object([mine])
        return {"format": FORMAT, "step": self.step, "world_size": t.rt.world, "method": t.method,
                "stage": t.stage, "scheduler": t.scheduler.state_dict(), "ranks": ranks}

    def load_state_dict(self, state: dict) -> None:
        self.loaded = state  # applied by `restore` (it decides between restoring and reseeding)


def install_hooks(accelerator) -> TrainerState:
    """Register the trainer state and the LoRA-only model hooks with a fresh Accelerator."""
    state = TrainerState()
    accelerator.register_for_checkpointing(state)

    def save_lora_only(models, weights, output_dir):
        if not weights:  # FSDP: accelerate saved the sharded model itself
            return
        from peft import get_peft_model_state_dict

        for i, model in enumerate(models):
            sd = get_peft_model_state_dict(accelerator.unwrap_model(model))
            weights[i] = {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}

    def load_lora_only(models, input_dir):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        while models:  # loaded here, so accelerate does not expect the full model in the file
            model = models.pop()
            set_peft_model_state_dict(accelerator.unwrap_model(model),
                                      load_file(str(Path(input_dir) / MODEL_FILE), device="cpu"))

    accelerator.register_save_state_pre_hook(save_lora_only)
    accelerator.register_load_state_pre_hook(load_lora_only)
    return state


def save_checkpoint(trainer, step: int) -> Path:
    """Save the trainer's state as checkpoint `step` (every process calls this)."""
    rt = trainer.rt
    root = trainer.run_dir / CKPT_DIR
    final, tmp, old = (root / f"step_{step:07d}{s}" for s in ("", ".tmp", ".old"))
    if rt.is_main:
        for stale in root.glob("step_*.tmp") if root.is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
    rt.barrier()
    rt.trainer_state.trainer, rt.trainer_state.step = trainer, step
    rt.accelerator.save_state(str(tmp / STATE_DIR))
    rt.barrier()
    if rt.is_main:
        if final.exists():  # the same step saved again (a resumed run cancelled at once): swap, then drop
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        keep = trainer.cfg.run.keep_checkpoints
        for _, stale in checkpoint_dirs(trainer.run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    rt.barrier()
    return final


def _load_pickle(path: Path):
    from accelerate.utils import load

    return load(path, map_location="cpu", weights_only=True)  # refuses anything but tensors and plain data


def problem(trainer, step: int, folder: Path) -> str | None:
    """What makes checkpoint `folder` unusable for this trainer (this process's files), or None."""
    state_dir = folder / STATE_DIR
    if not state_dir.is_dir():
        return f"{folder} has no {STATE_DIR}/ folder (an unfinished save, or a checkpoint written by an older " \
               "version of RewardLoop)"
    checks = [(TRAINER_FILE, _check_trainer_state), (f"random_states_{trainer.rt.rank}.pkl", _check_rng)]
    if not trainer.rt.fsdp:
        checks += [(MODEL_FILE, _check_lora), (OPTIMIZER_FILE, _check_optimizer)]
    else:
        checks += [(name, _check_folder) for name in ("pytorch_model_fsdp_0", "optimizer_0")]
    for name, check in checks:
        path = state_dir / name
        if name.startswith("random_states") and not _same_world(trainer, state_dir):
            continue  # another world size: the generators are reseeded, this process may have no file
        if not path.exists():
            return f"{path} is missing"
        try:
            why = check(trainer, step, path)
        except Exception as exc:  # any failure to read the file is the answer: this checkpoint cannot be used
            why = f"cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        if why:
            return f"{path} {why}"
    return None


def _same_world(trainer, state_dir: Path) -> bool:
    try:
        return _load_pickle(state_dir / TRAINER_FILE).get("world_size") == trainer.rt.world
    except Exception:
        return True


def _check_trainer_state(trainer, step: int, path: Path) -> str | None:
    state = _load_pickle(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return f"is not a {FORMAT} trainer state"
    missing = [k for k in ("step", "world_size", "method", "scheduler", "ranks") if k not in state]
    if missing:
        return f"lacks {missing}"
    if state["step"] != step:
        return f"records step {state['step']}, but its folder is step {step}"
    if state["method"] != trainer.method:
        return f"belongs to a {state['method']} run, not {trainer.method}"
    if len(state["ranks"]) != state["world_size"]:
        return f"holds {len(state['ranks'])} process states for world size {state['world_size']}"
    return None


def _check_rng(trainer, step: int, path: Path) -> str | None:
    state = _load_pickle(path)
    if not isinstance(state, dict) or "torch_manual_seed" not in state:
        return "holds no RNG states"
    return None


def _check_lora(trainer, step: int, path: Path) -> str | None:
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    stored = load_file(str(path))
    expected = get_peft_model_state_dict(trainer.peft)
    missing = sorted(set(expected) - set(stored))
    if missing:
        return f"lacks {len(missing)} of the model's {len(expected)} LoRA tensors (e.g. {missing[0]})"
    wrong = [k for k, v in expected.items() if tuple(stored[k].shape) != tuple(v.shape)]
    if wrong:
        return f"has {wrong[0]} of shape {tuple(stored[wrong[0]].shape)}, the model needs {tuple(expected[wrong[0]].shape)}"
    if not all(torch.isfinite(stored[k]).all() for k in expected):
        return "holds NaN/inf LoRA weights"
    return None


def _check_optimizer(trainer, step: int, path: Path) -> str | None:
    state = _load_pickle(path)
    if not isinstance(state, dict) or "param_groups" not in state or "state" not in state:
        return "is not an optimizer state"
    stored = sum(len(g["params"]) for g in state["param_groups"])
    needed = sum(len(g["params"]) for g in trainer.optimizer.param_groups)
    if stored != needed:
        return f"holds {stored} parameters, the model trains {needed}"
    return None


def _check_folder(trainer, step: int, path: Path) -> str | None:
    if not path.is_dir() or not any(p.stat().st_size > 0 for p in path.iterdir() if p.is_file()):
        return "is empty"
    return None


def restore(trainer) -> int | None:
    """Load the newest intact checkpoint of the trainer's run. Returns its step, or None when the run has no
    checkpoint (a fresh start). Corrupt checkpoints are reported and skipped; if every one is corrupt, raises
    CheckpointError naming them."""
    rt = trainer.rt
    unusable: list[str] = []
    for step, folder in reversed(checkpoint_dirs(trainer.run_dir)):
        why = problem(trainer, step, folder)
        if rt.any_across(why is not None):  # every process must make the same choice
            unusable.append(why or f"{folder} is unreadable on another process")
            log.warning("Checkpoint %s cannot be used: %s. Trying the one before it.", folder, unusable[-1])
            continue
        try:
            rt.accelerator.load_state(str(folder / STATE_DIR))
            failed = None
        except Exception as exc:  # e.g. an FSDP shard that does not load; an older checkpoint replaces it all
            failed = f"{folder / STATE_DIR} failed to load ({type(exc).__name__}: {str(exc)[:200]})"
        if rt.any_across(failed is not None):
            unusable.append(failed or f"{folder} failed to load on another process")
            log.warning("Checkpoint %s cannot be used: %s. Trying the one before it.", folder, unusable[-1])
            continue
        _apply(trainer, rt.trainer_state.loaded, folder)
        note = ""
        if unusable:
            note = (f"resumed from {folder.name} (step {step}) because newer checkpoints are unusable: "
                    + "; ".join(unusable))
            log.warning("Resume: %s", note)
        trainer.resume_note = note
        log.info("Resumed from %s (step %d).", folder, step)
        return step
    if unusable:
        raise CheckpointError(f"No checkpoint in {trainer.run_dir / CKPT_DIR} can be restored: " + "; ".join(unusable)
                              + ". Delete the broken checkpoint folders to start over, or set run.resume: false.")
    return None


def _apply(trainer, state: dict, folder: Path) -> None:
    trainer.scheduler.load_state_dict(state["scheduler"])
    if state["world_size"] == trainer.rt.world:
        trainer.load_local_state(state["ranks"][trainer.rt.rank])
    else:
        log.warning("Checkpoint %s came from world size %d, this run has %d: data order and noise are reseeded.",
                    folder, state["world_size"], trainer.rt.world)
        trainer.reseed(state["step"])
