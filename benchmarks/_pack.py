"""What the benchmark scripts share. `import_pack`: the pack's own pack_import helper (imports it by path as the
package `rewardloop`, never via sys.path: the pack's nodes/ folder would shadow ComfyUI's `nodes` module). Scripts run
as `python benchmarks/X.py`, so this folder is on sys.path and `from _pack import import_pack` works.
`describe_device`: the machine column of a RESULTS.md row."""
from __future__ import annotations

import platform
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
import_pack = runpy.run_path(str(ROOT / "pack_import.py"))["import_pack"]


def describe_device(dev) -> str:
    import torch

    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads, torch {torch.__version__}"
