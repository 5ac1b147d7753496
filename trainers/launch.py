"""Run the trainers by file path: `python /path/to/pack/trainers/launch.py <method> --config cfg.yaml`,
also as the script of `torchrun --nproc_per_node N .../launch.py grpo --config cfg.yaml`.

The pack folder's name varies between installs, so the pack is imported by path under the alias
`rewardloop` (importlib, submodule_search_locations) and never put on sys.path: its `nodes/` package would
shadow ComfyUI's own `nodes` module.
"""
import importlib.util
import os
import sys
from pathlib import Path

ALIAS = "rewardloop"
HERE = Path(__file__).resolve().parent
PACK_ROOT = HERE.parent


def import_pack(alias: str = ALIAS):
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, PACK_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(PACK_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    # `python trainers/launch.py` puts trainers/ first on sys.path, where config.py, model.py ... would
    # shadow same-named top-level modules of other libraries.
    sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
    import_pack()
    from rewardloop.trainers.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
