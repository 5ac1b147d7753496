"""Why the compiled DPO pair step's time varies between runs: per-step wall time next to the host CPU time the
step used and the GPU's busy time (sum of kernel durations under torch.profiler), for each checkpointing
setting, in one process. Run it several times (separate processes) and compare: if wall ~ CPU time and the GPU
is idle much of the step, the step is launch-bound and its time follows the host CPU.

    python benchmarks/dpo_step_variance.py --size 33x240x416 --compile default --checkpointing 1,0 --out DIR
    python benchmarks/dpo_step_variance.py --processes 3 --checkpointing 1 --out DIR   # min / median over 3 processes

Prints one JSON line per setting (and writes DIR/dpo_variance_<pid>.json). With --compile the warm-up defaults to 10
steps: a process that starts from a warm inductor cache spends its first ~8 steps in a CPU-heavy phase (RESULTS.md).
`--processes N` runs the measurement in N fresh processes one after another, sharing one inductor cache (the first
compiles, the others start warm, as a user's later runs do), and prints per setting the median and min step of each
process and over all of them, with a RESULTS.md row.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

import bench_trainers as bt
from _pack import import_pack


def host() -> dict:
    info = {"node": platform.node(), "cores": os.cpu_count(), "torch": torch.__version__}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        try:
            q = "clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw"
            info["nvidia_smi"] = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                                                capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def gpu_busy_ms(loop, step_index: int) -> tuple[float, float]:
    """(wall ms, summed kernel ms) of one step under the profiler."""
    from torch.profiler import DeviceType, ProfilerActivity, profile

    sync()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])) as prof:
        loop.step(step_index)
        sync()
    wall = 1000 * (time.perf_counter() - t0)
    busy = sum(e.device_time for e in prof.events() if e.device_type == DeviceType.CUDA) / 1000
    return wall, busy


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each thread of this process, by name (Linux /proc; threads of one name summed)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def busiest(before: dict, after: dict, top: int = 4) -> dict:
    delta = {k: round(1000 * (after.get(k, 0.0) - before.get(k, 0.0))) for k in after}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1])[:top])


def measure(loop, steps: int, warmup: int, start: int) -> dict:
    walls, cpus, firsts, threads = [], [], [], []
    for i in range(warmup + steps):
        t_before = thread_cpu()
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        loop.step(start + i)
        sync()
        wall, cpu = 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)
        threads.append(busiest(t_before, thread_cpu()))
        (firsts if i < warmup else walls).append(wall)
        if i >= warmup:
            cpus.append(cpu)
    return {"warmup_ms": [round(x, 1) for x in firsts], "wall_ms": [round(x, 1) for x in walls],
            "cpu_ms": [round(x, 1) for x in cpus], "thread_cpu_ms": threads, "median_ms": statistics.median(walls), "min_ms": min(walls)}


def over_processes(a) -> None:
    """`--processes N`: this script in N fresh processes sharing one inductor cache; min/median per setting."""
    import datetime
    import sys

    from _pack import run_processes, spread, without_options

    argv = without_options(sys.argv[1:], "--processes", "--warmup")
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or str(Path(a.out).resolve() / "inductor-cache")
    reports = run_processes(__file__, argv + ["--warmup", str(a.warmup)], a.processes,
                            env={"TORCHINDUCTOR_CACHE_DIR": cache})
    host_info = reports[0]["host"]
    machine = (f"{host_info.get('gpu', 'CPU')} (host {host_info.get('cpu', '?')}, {host_info.get('cores')} cores), "
               f"torch {host_info['torch']}")
    for k, setting in enumerate(reports[0]["settings"]):
        runs = [r["settings"][k] for r in reports]
        medians, mins = [r["median_ms"] for r in runs], [r["min_ms"] for r in runs]
        pooled = statistics.median([w for r in runs for w in r["wall_ms"]])
        summary = {"checkpointing": setting["checkpointing"], "median_ms_per_process": medians,
                   "min_ms_per_process": mins, "median_of_medians_ms": spread(medians)["median"],
                   "median_all_steps_ms": pooled, "min_ms": min(mins)}
        print(json.dumps(summary), flush=True)
        size = "--tiny (5x32x32)" if a.tiny else f"--size {a.size}"
        cache_note = ", one inductor cache (process 1 compiles, the rest start warm)" if a.compile else ""
        print(f"| {datetime.date.today()} | {machine} | `dpo_step_variance.py {size} --compile {a.compile or 'off'} "
              f"--steps {a.steps} --warmup {a.warmup} --processes {a.processes}`, checkpointing "
              f"{setting['checkpointing']:g}{cache_note} | DPO pair "
              f"step median per process {' / '.join(f'{m:.0f}' for m in medians)} ms, min "
              f"{' / '.join(f'{m:.0f}' for m in mins)} ms: **median {pooled:.0f} ms over all {len(runs) * a.steps} "
              f"measured steps, min {min(mins):.0f} ms** |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="33x240x416")
    p.add_argument("--compile", default="default")
    p.add_argument("--checkpointing", default="1,0", help="comma list of fractions of blocks checkpointed")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=None, help="unmeasured steps (default 10 with --compile, else 3)")
    p.add_argument("--processes", type=int, default=1, help="fresh processes one after another: min/median over them")
    p.add_argument("--json", default="", help=argparse.SUPPRESS)  # a --processes child writes its report here
    p.add_argument("--out", default="gpu-out")
    p.add_argument("--tiny", action="store_true", help="CPU smoke run (tiny model): checks the script, no timings")
    a = p.parse_args()
    if a.warmup is None:
        a.warmup = 10 if a.compile and not a.tiny else 3
    if a.processes > 1:
        over_processes(a)
        return
    import_pack()
    from rewardloop.trainers import speed

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(tiny=a.tiny, no_vae=True, steps=a.steps, warmup=a.warmup, no_checkpointing=False,
                              checkpointing=1.0, keep_attention=False, compile=a.compile, attention="auto",
                              prompts_per_step=1, kl_beta=0.0, guidance=1.0, no_gc_freeze=False)
    bench = bt.Bench(args)
    loop = bench.dpo_loop(*((5, 32, 32) if a.tiny else bt._parse_size(a.size)))
    loop.prepare()
    loop.reseed(0)
    report = {"host": host(), "size": a.size, "compile": a.compile, "settings": []}
    step = 0
    for frac in (float(x) for x in a.checkpointing.split(",")):
        speed.set_checkpointing(loop.transformer, frac, False)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        r = measure(loop, a.steps, a.warmup, step)
        step += a.steps + a.warmup
        r["profiled_wall_ms"], r["gpu_busy_ms"] = gpu_busy_ms(loop, step)
        step += 1
        r["checkpointing"] = frac
        r["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if torch.cuda.is_available() else None
        report["settings"].append(r)
        print(json.dumps(r), flush=True)
    report["host_after"] = host()
    (out / f"dpo_variance_{os.getpid()}.json").write_text(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report))
    print(json.dumps(report["host"]), json.dumps(report["host_after"].get("nvidia_smi")), flush=True)


if __name__ == "__main__":
    main()
