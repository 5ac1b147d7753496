"""The training loop every method shares: optimizer, resume, checkpoints, logging, cancellation and the
final LoRA export. A method subclass provides `setup()` (model + data), `train_step(step)` (one optimizer
step, returns metrics) and its data position.

Cancellation is cooperative: SIGTERM / the CANCEL file set a flag that steps poll between model calls.
A step interrupted before its optimizer update is abandoned: its generators and data position are rolled
back to the start of the step before the checkpoint is written (the trainers draw every random number from
those generators), so a resumed run redoes it exactly. Checkpoints: trainers/checkpoint.py.
"""
from __future__ import annotations

import gc
import logging
import math
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import TrainerConfig, resolve_path, save_config
from .model import DTYPES, build_policy, transformer_of
from .reporting import MetricsLogger, write_progress
from .runtime import Cancelled, Runtime, seed_everything
from .speed import attention_backends, sdpa_context
from .validation import periodic_validation

log = logging.getLogger(__name__)


def lora_note(planned: Path, written: Path) -> str:
    return f"{planned} already holds another file, which was kept: the LoRA was written as {written.name}."


class Trainer:
    method = ""

    def __init__(self, cfg: TrainerConfig, rt: Runtime, run_dir: Path | None = None, stage: str = ""):
        self.cfg = cfg
        self.rt = rt
        self.run_dir = Path(run_dir) if run_dir else resolve_path(cfg, cfg.run.output_dir)
        self.stage = stage
        self.progress_dir = self.run_dir  # the curriculum points every stage at its top-level folder
        self.device = rt.device
        self.model = None
        self.generators: dict[str, torch.Generator] = {}
        self.logger: MetricsLogger | None = None
        self.global_step = 0
        self.resume_note = ""   # set when resuming had to skip corrupt checkpoints
        self.lora_note = ""     # set when the LoRA's name was taken by another file

    # ------------------------------------------------------------------ subclass API
    def setup(self) -> None:
        raise NotImplementedError

    def train_step(self, step: int) -> dict:
        raise NotImplementedError

    def data_state(self) -> dict:
        return {}

    def load_data_state(self, state: dict) -> None:
        pass

    def evaluate(self, step: int) -> dict:
        """Metrics logged at step 0 and every eval interval (never touches the training RNG)."""
        return {}

    def eval_due(self, step: int) -> bool:
        return False

    # ------------------------------------------------------------------ model helpers
    def build_model(self):
        if self.cfg.run.compile and self.rt.fsdp:
            raise ValueError("run.compile is only supported on one GPU or under DDP (run.distributed: ddp); with "
                             "FSDP set run.compile: false.")
        seed_everything(self.cfg.run.seed)
        return build_policy(self.cfg, self.device, self.rt.autocast_dtype)

    @property
    def peft(self):
        return self.rt.accelerator.unwrap_model(self.model)

    @property
    def transformer(self):
        return transformer_of(self.model)

    def reference(self):
        """Context in which the model is the frozen reference (adapter off)."""
        return self.peft.disable_adapter()

    @property
    def attention_backends(self):
        if not hasattr(self, "_sdpa"):
            self._sdpa = attention_backends(self.device, self.cfg.run.attention)
        return self._sdpa

    def step(self, step: int) -> dict:
        """One training step. The SDPA backend choice covers the backward too: checkpointing recomputes
        forwards there, and a recompute on another attention kernel would not match the saved tensors."""
        with sdpa_context(self.attention_backends):
            metrics = self.train_step(step)
        if not getattr(self, "_gc_frozen", False):
            # The first step creates the long-lived objects (compiled graphs, optimizer state, caches). Frozen,
            # the cyclic GC's full collections stop walking them every few steps: such a pass stalls the
            # kernel launches of a launch-bound step.
            gc.collect()
            gc.freeze()
            self._gc_frozen = True
        return metrics

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Velocity prediction; bf16 autocast on GPU, output returned in fp32 for the loss/SDE math."""
        from .flow import TIMESTEP_SCALE

        with self.rt.autocast(), sdpa_context(self.attention_backends):
            out = self.model(hidden_states=x, timestep=sigma * TIMESTEP_SCALE, encoder_hidden_states=context,
                             return_dict=False)[0]
        return out.float()

    # ------------------------------------------------------------------ state
    def local_state(self) -> dict:
        """This process's generators and data position (checkpointed per process by checkpoint.TrainerState)."""
        return {"generators": {k: g.get_state() for k, g in self.generators.items()}, "data": self.data_state()}

    def load_local_state(self, state: dict) -> None:
        for k, s in state.get("generators", {}).items():
            if k in self.generators:
                self.generators[k].set_state(s)
        self.load_data_state(state.get("data", {}))

    def reseed(self, step: int) -> None:
        """Fresh, rank-distinct generators (new runs, or a resume onto another world size)."""
        for i, name in enumerate(sorted(self.generators)):
            self.generators[name].manual_seed(self.cfg.run.seed * 1_000_003 + self.rt.rank * 7919 + i * 104_729 + step)

    # ------------------------------------------------------------------ run
    def _optimizer(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("No trainable parameters: lora.targets matched no module of this model.")
        o = self.cfg.optim
        # One fused kernel for the LoRA update on a GPU (same AdamW math); FSDP's sharded parameters keep foreach.
        fused = {"fused": True} if params[0].is_cuda and not self.rt.fsdp else {}
        opt = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, **fused)
        warm = max(0, o.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        return opt, sched

    def optimizer_step(self) -> float:
        clip = self.cfg.optim.grad_clip
        if clip > 0:
            norm = self.rt.accelerator.clip_grad_norm_(self.model.parameters(), clip)
        else:
            norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in self.model.parameters() if p.grad is not None))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def save(self, step: int) -> Path:
        return ckpt.save_checkpoint(self, step)

    def lora_path(self) -> Path:
        name = self.cfg.run.lora_name or f"rewardloop_{self.method}.safetensors"
        if not name.endswith(".safetensors"):
            name += ".safetensors"
        folder = resolve_path(self.cfg, self.cfg.run.lora_dir) if self.cfg.run.lora_dir else self.run_dir
        return folder / name

    def export_lora(self) -> Path:
        from peft import get_peft_model_state_dict

        from .lora_export import save_comfy_lora

        if self.rt.fsdp:
            full = self.rt.accelerator.get_state_dict(self.model)
            sd = {k: v for k, v in full.items() if "lora_" in k} if self.rt.is_main else {}
            sd = {k.replace(".default.", "."): v for k, v in sd.items()}
        else:
            sd = get_peft_model_state_dict(self.peft) if self.rt.is_main else {}
        planned = path = self.lora_path()
        if self.rt.is_main:
            lc = self.cfg.lora
            path = save_comfy_lora(sd, path, rank=lc.rank, alpha=lc.alpha or lc.rank, dtype=DTYPES[lc.save_dtype],
                                   metadata={"rewardloop.method": self.method, "rewardloop.steps": str(self.global_step),
                                             "rewardloop.stage": self.stage}, overwrite=self.cfg.run.overwrite)
        path = Path(self.rt.from_main(str(path)))
        if path != planned:
            self.lora_note = lora_note(planned, path)
        return path

    def prepare(self) -> None:
        """Model, data, optimizer, and the DDP/FSDP wrapping (also used by benchmarks and tests)."""
        self.setup()
        self.optimizer, self.scheduler = self._optimizer()
        self.model, self.optimizer = self.rt.accelerator.prepare(self.model, self.optimizer)

    def run(self) -> dict:
        """Train to run.max_steps (resuming if possible) and export the LoRA. Returns the result record."""
        rt, cfg = self.rt, self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if rt.is_main:  # the exact settings beside the outputs they produced
            save_config(cfg, self.run_dir / "config.json")
        self.prepare()
        self.logger = MetricsLogger(self.run_dir, rt.is_main, cfg.run.tensorboard)
        start = ckpt.restore(self) if cfg.run.resume else None
        if start is None:
            start = 0
            self.reseed(0)
        self.global_step = start
        if rt.is_main:
            self.logger.truncate_after(start)
        max_steps = cfg.run.max_steps
        try:
            if start == 0 and self.eval_due(0):
                self._log(0, self.evaluate(0), max_steps)
            if self.resume_note:
                self._log(start, {}, max_steps)
            for step in range(start, max_steps):
                snapshot = self.local_state()
                t0 = time.perf_counter()
                try:
                    metrics = self.step(step)
                except Cancelled:
                    self.load_local_state(snapshot)
                    self.save(step)
                    return self._finish("cancelled", step)
                self.global_step = step + 1
                metrics = rt.mean_across(metrics)
                metrics["lr"] = self.scheduler.get_last_lr()[0]
                metrics["step_time_s"] = time.perf_counter() - t0
                loss = metrics.get("loss")
                if isinstance(loss, float) and not math.isfinite(loss):  # same value on every rank after the mean
                    raise FloatingPointError(f"Loss became {loss} at step {self.global_step}: lower optim.lr or "
                                             "optim.grad_clip; the last checkpoint is intact (resume from it).")
                try:
                    if self.eval_due(self.global_step):
                        metrics.update(self.evaluate(self.global_step))
                    val = cfg.validation
                    if val is not None and val.every and self.global_step % val.every == 0:
                        metrics.update(periodic_validation(self))
                except Cancelled:  # the update is done: keep it, its metrics and a checkpoint
                    self._log(self.global_step, metrics, max_steps)
                    self.save(self.global_step)
                    return self._finish("cancelled", self.global_step)
                if self.global_step % cfg.run.log_every == 0 or self.global_step == max_steps:
                    self._log(self.global_step, metrics, max_steps)
                saved = False
                if cfg.run.checkpoint_every and self.global_step % cfg.run.checkpoint_every == 0:
                    self.save(self.global_step)
                    saved = True
                if self.global_step < max_steps and rt.should_stop():
                    if not saved:
                        self.save(self.global_step)
                    return self._finish("cancelled", self.global_step)
            if cfg.run.checkpoint_every and self.global_step % cfg.run.checkpoint_every and max_steps:
                self.save(self.global_step)
            path = self.export_lora()
            return self._finish("finished", self.global_step, lora_path=str(path))
        finally:
            self.logger.close()

    def _log(self, step: int, metrics: dict, max_steps: int) -> None:
        if not self.rt.is_main:
            return
        if metrics:
            self.logger.log(step, metrics)
        write_progress(self.progress_dir, method=self.method, step=step, max_steps=max_steps, metrics=metrics,
                       stage=self.stage, note=self.resume_note)

    def _finish(self, status: str, step: int, **fields) -> dict:
        result = {"status": status, "step": step, "method": self.method, "run_dir": str(self.run_dir), **fields}
        for key in ("resume_note", "lora_note"):
            if getattr(self, key):
                result[key] = getattr(self, key)
        if status == "finished":
            path = Path(fields["lora_path"])
            if not path.is_file() or path.stat().st_size == 0:
                raise RuntimeError(f"Training ended but the LoRA file {path} was not written.")
        return result

