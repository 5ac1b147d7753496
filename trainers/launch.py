"""Run the trainers by file path: `python /path/to/pack/trainers/launch.py <method> --config cfg.yaml`,
also as the script of `torchrun --nproc_per_node N .../launch.py grpo --config cfg.yaml`.

The pack folder's name varies between installs, so the pack is imported by path as `rewardloop`
(pack_import.py at the pack root), never through sys.path.
"""
import runpy
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    runpy.run_path(str(PACK_ROOT / "pack_import.py"))["import_pack"](script=__file__)
    from rewardloop.trainers.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
