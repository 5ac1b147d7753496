"""What the benchmark scripts share. `import_pack`: the pack's own pack_import helper (imports it by path as the
package `rewardloop`, never via sys.path: the pack's nodes/ folder would shadow ComfyUI's `nodes` module). Scripts run
as `python benchmarks/X.py`, so this folder is on sys.path and `from _pack import import_pack` works.
`describe_device`: the machine column of a RESULTS.md row. `run_processes`: a script run again in several fresh
processes, one after another, each writing its numbers as JSON (run-to-run spread: min and median over processes)."""
from __future__ import annotations

import json
import os
import platform
import runpy
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
import_pack = runpy.run_path(str(ROOT / "pack_import.py"))["import_pack"]


def describe_device(dev) -> str:
    import torch

    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads, torch {torch.__version__}"


def run_processes(script: str, argv: list[str], count: int, env: dict | None = None) -> list[dict]:
    """`python script *argv --json FILE` in `count` fresh processes, one after another (the script writes its
    numbers to FILE); returns what each wrote. Their output passes through; a failing process stops the run."""
    out = []
    with tempfile.TemporaryDirectory(prefix="rl_procs_") as tmp:
        for i in range(count):
            path = Path(tmp) / f"process_{i}.json"
            print(f"[bench] process {i + 1}/{count}", flush=True)
            subprocess.run([sys.executable, script, *argv, "--json", str(path)], check=True,
                           env={**os.environ, **(env or {})})
            out.append(json.loads(path.read_text()))
    return out


def spread(values: list[float]) -> dict:
    """min / median / max of per-process numbers."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def without_options(argv: list[str], *names: str) -> list[str]:
    """argv with the options `names` ("--x value" or "--x=value") left out: a parent's own options, not the child's."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(n + "=") for n in names):
            out.append(arg)
    return out
