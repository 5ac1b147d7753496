"""What the benchmark scripts share. `import_pack`: the one way they import the pack: by path, as the package
`rewardloop`, never via sys.path (the pack's nodes/ folder would shadow ComfyUI's `nodes` module). Scripts run
as `python benchmarks/X.py`, so this folder is on sys.path and `from _pack import import_pack` works.
`describe_device`: the machine column of a RESULTS.md row."""
from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_pack():
    if "rewardloop" in sys.modules:
        return sys.modules["rewardloop"]
    spec = importlib.util.spec_from_file_location("rewardloop", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["rewardloop"] = module
    spec.loader.exec_module(module)
    return module


def describe_device(dev) -> str:
    import torch

    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads, torch {torch.__version__}"
