"""Import this pack as the Python package `rewardloop` from its folder, wherever that folder is.

ComfyUI imports the pack under its folder name, which varies between installs and is not a valid module name.
Scripts (the trainer launcher, install.py, the weight installer, the benchmarks) and the tests import it by path
instead, under a fixed alias, and never by putting the pack folder on sys.path: its `nodes/` would shadow
ComfyUI's own `nodes` module, and its `trainers/config.py`... would shadow top-level modules of other libraries.

Standard library only (nothing of the pack is importable yet). From any script of the pack:

    import runpy
    runpy.run_path(str(PACK_ROOT / "pack_import.py"))["import_pack"](script=__file__)
    from rewardloop.trainers.cli import main
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "rewardloop"
ROOT = Path(__file__).resolve().parent


def import_pack(alias: str = PACKAGE, *, script: str | os.PathLike | None = None) -> ModuleType:
    """The pack as package `alias` (imported once per process). `script`: the running script's file; its
    folder, which Python put first on sys.path, is taken off it so the pack's modules resolve only as
    `rewardloop.<module>`."""
    if script is not None:
        here = Path(script).resolve().parent
        sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != here]
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[alias]
        raise
    return module
