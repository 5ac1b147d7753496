"""The one way benchmark scripts import the pack: by path, as the package `rewardloop`, never via sys.path
(the pack's nodes/ folder would shadow ComfyUI's `nodes` module). Scripts run as `python benchmarks/X.py`, so
this folder is on sys.path and `from _pack import import_pack` works."""
from __future__ import annotations

import importlib.util
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
