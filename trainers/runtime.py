"""Process-level runtime: devices, distributed setup (accelerate; the same code at world size 1 on CPU),
autocast, seeding and cooperative cancellation.

Launching: a plain `python` process is world size 1; `torchrun --nproc_per_node N` (or `accelerate launch`)
gives N processes and accelerate wraps the model in DDP or FSDP (run.distributed). ROCm builds of torch
expose the same `torch.cuda` API and map NCCL to RCCL, so nothing here is CUDA-specific.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
from pathlib import Path

import numpy as np
import torch

from .checkpoint import install_hooks
from .config import RunSettings
from .reporting import CANCEL_FILE


class Cancelled(Exception):
    """Raised inside a step when a stop was requested (SIGTERM, SIGINT or the CANCEL file)."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"run.device={name!r} but torch sees no GPU (CUDA or ROCm); use 'cpu' or 'auto'.")
    return dev


class Runtime:
    def __init__(self, run: RunSettings, run_dir: Path):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, DistributedType

        if run.num_threads:
            torch.set_num_threads(run.num_threads)
        wanted = pick_device(run.device)
        if wanted.type == "cuda" and wanted.index is not None and "LOCAL_RANK" not in os.environ:
            torch.cuda.set_device(wanted.index)
        kwargs = {}
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and run.distributed == "fsdp":
            from accelerate.utils import FullyShardedDataParallelPlugin

            # FSDP2 shards per parameter, so a frozen bf16 base and fp32 LoRA weights can share a block.
            kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(
                fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                transformer_cls_names_to_wrap=["WanTransformerBlock"], reshard_after_forward=True,
                state_dict_type="SHARDED_STATE_DICT")
        self.accelerator = Accelerator(
            cpu=wanted.type == "cpu", mixed_precision="no",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False, broadcast_buffers=False)],
            **kwargs)
        self.device = self.accelerator.device
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        # What accelerate really runs: on CPUs it has no FSDP and runs run.distributed=fsdp as plain DDP (gloo).
        self.fsdp = self.accelerator.distributed_type == DistributedType.FSDP
        mp = run.mixed_precision
        self.autocast_dtype = torch.bfloat16 if (mp == "bf16" or (mp == "auto" and self.device.type == "cuda")) else None
        if mp == "bf16" and self.device.type == "cpu":
            self.autocast_dtype = torch.bfloat16  # allowed (slow) so CPU runs can mirror a GPU config
        self.trainer_state = install_hooks(self.accelerator)  # checkpoint format: trainers/checkpoint.py
        self.run_dir = Path(run_dir)
        self._stop = threading.Event()
        self._install_signal_handlers()

    # ------------------------------------------------------------------ autocast
    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    # ------------------------------------------------------------------ stopping
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            self._stop.set()

        # SIGBREAK: what a Windows job manager can send to a process group (CTRL_BREAK_EVENT).
        for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGBREAK", None)):
            if sig is None:
                continue
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):
                pass

    def request_stop(self) -> None:
        self._stop.set()

    def stop_requested_local(self) -> bool:
        return self._stop.is_set() or (self.run_dir / CANCEL_FILE).exists()

    def should_stop(self) -> bool:
        """Every rank must agree, or one rank would wait forever in a collective the others skipped."""
        return self.any_across(self.stop_requested_local())

    def check_cancel(self) -> None:
        if self.should_stop():
            raise Cancelled()

    # ------------------------------------------------------------------ helpers
    def mean_across(self, values: dict[str, float]) -> dict[str, float]:
        if self.world == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], device=self.device, dtype=torch.float64)
        t = self.accelerator.reduce(t, reduction="mean")
        return {k: float(v) for k, v in zip(keys, t.tolist())}

    def any_across(self, flag: bool) -> bool:
        """True on every process when `flag` is true on any (so all of them take the same branch)."""
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.accelerator.reduce(t, reduction="sum").item() > 0)

    def from_main(self, value):
        """The main process's `value` on every process."""
        if self.world == 1:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value if self.is_main else None], from_process=0)[0]

    def barrier(self) -> None:
        if self.world > 1:
            self.accelerator.wait_for_everyone()

    def close(self) -> None:
        """Tear the process group down before the interpreter exits: left to the atexit order, its background
        threads are sometimes destroyed while joinable and the process aborts after a finished run."""
        if self.world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def generator(self, seed: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(seed)
        return g


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
