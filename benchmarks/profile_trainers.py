"""Where the trainer step's GPU time goes, and what each speed setting of trainers/speed.py buys, in one
process (one model build per part): the settings are switched on the live model one after another
(cumulative), each timed over a few steps; chosen variants also get a torch.profiler table.

    python benchmarks/profile_trainers.py --out DIR [--parts sdpa,dpo,dpo_big,grpo] [--budget-s 380]

Writes DIR/profile_results.json (every variant's median step time, peak memory, GRPO phase times) and
DIR/profiles.txt (profiler tables: top ops by self device time, and device time by category: matrix
products, attention, everything else). The last lines printed are a summary table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_trainers as bt  # noqa: E402

T0 = time.perf_counter()
OUT = Path("gpu-out")
PARTS = ("sdpa", "dpo", "dpo_big", "grpo", "dpo_compile", "grpo_compile", "dpo_big_compile")
RESULTS: dict = {p: [] for p in PARTS}


def save() -> None:
    (OUT / "profile_results.json").write_text(json.dumps(RESULTS, indent=1))


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def elapsed() -> float:
    return time.perf_counter() - T0


def log(msg: str) -> None:
    print(f"[{elapsed():6.1f}s] {msg}", flush=True)


def cuda_ms(fn, reps: int = 10, warm: int = 3) -> float:
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


# ------------------------------------------------------------------------------------------ SDPA
def part_sdpa() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = torch.device("cuda")
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    ms = cuda_ms(lambda: a @ b)
    RESULTS["sdpa"].append({"what": "gemm 8192^3 bf16", "ms": ms, "tflops": 2 * 8192 ** 3 / ms / 1e9})
    del a, b
    for batch, tokens in ((2, 3510), (4, 3510), (2, 14040)):
        # diffusers' layout: [B, S, H, D] projections permuted to [B, H, S, D] views (not contiguous)
        q, k, v = (torch.randn(batch, tokens, 12, 128, device=dev, dtype=torch.bfloat16).permute(0, 2, 1, 3)
                   .requires_grad_(True) for _ in range(3))
        flop_f = 4 * batch * 12 * tokens * tokens * 128
        ref = None
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                              ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
            row = {"what": f"sdpa {name} B{batch} S{tokens}"}
            try:
                with sdpa_kernel(backend):
                    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    if ref is None:
                        ref = out.detach().float()
                    row["rel_err_vs_flash"] = float((out.float() - ref).norm() / ref.norm())
                    g = torch.randn_like(out)
                    with torch.no_grad():
                        fwd = cuda_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))

                    def fb():
                        o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                        torch.autograd.grad(o, (q, k, v), g)

                    both = cuda_ms(fb)
                row.update(fwd_ms=fwd, fwd_tflops=flop_f / fwd / 1e9, fwdbwd_ms=both,
                           fwdbwd_tflops=3.5 * flop_f / both / 1e9)
            except Exception as exc:  # a backend that refuses this shape/device is a result too
                row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            RESULTS["sdpa"].append(row)
            log(json.dumps(row))


# ------------------------------------------------------------------------------------------ helpers
def bench_args(**over):
    a = argparse.Namespace(tiny=False, no_vae=False, steps=4, warmup=2, no_checkpointing=False, checkpointing=1.0,
                           keep_attention=False, compile="", attention="flash", prompts_per_step=1, kl_beta=0.0,
                           guidance=1.0)
    for k, v in over.items():
        setattr(a, k, v)
    return a


class Switches:
    """The speed settings of trainers/speed.py applied to / removed from a live loop."""

    def __init__(self, loop):
        from rewardloop.trainers.model import transformer_of

        self.loop = loop
        self.tr = transformer_of(loop.model)
        r = self.tr.rope  # build_policy already made the tables fp32: rebuild diffusers' float64 ones
        fresh = type(r)(r.attention_head_dim, r.patch_size, r.max_seq_len)
        self.fp64 = (fresh.freqs_cos.to(r.freqs_cos.device), fresh.freqs_sin.to(r.freqs_sin.device))

    def apply(self, v: dict) -> None:
        from rewardloop.trainers import speed

        loop = self.loop
        speed.set_lora_input_casts(loop.model, not v.get("nocast", False))
        if v.get("rope32"):  # what the trainers load (fp32 model cast); "base" rebuilt diffusers' float64 tables
            self.tr.rope.freqs_cos, self.tr.rope.freqs_sin = (t.float() for t in self.fp64)
        else:
            self.tr.rope.freqs_cos, self.tr.rope.freqs_sin = self.fp64
        speed.set_checkpointing(self.tr, v.get("ckpt", 1.0), v.get("keep_attn", False))
        loop._sdpa = None if v.get("attn") is None else speed.attention_backends(loop.device, v["attn"])
        params = [p for p in loop.model.parameters() if p.requires_grad]
        o = loop.cfg.optim
        loop.optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           **({"fused": True} if v.get("fused") else {"foreach": True}))
        loop.scheduler = torch.optim.lr_scheduler.LambdaLR(loop.optimizer, lambda s: 1.0)
        if v.get("compile") and not getattr(self, "compiled", False):
            speed.compile_blocks(self.tr, v["compile"])
            self.compiled = True


def time_steps(loop, steps: int, warmup: int, phases=None) -> dict:
    dev = loop.device
    times, first = [], None
    for i in range(warmup + steps):
        if i == warmup:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            if phases is not None:
                phases.clear()
        sync()
        t0 = time.perf_counter()
        metrics = loop.step(i)
        sync()
        dt = time.perf_counter() - t0
        if i == 0:
            first = dt
        if i >= warmup:
            times.append(dt)
    times.sort()
    out = {"median_ms": 1000 * times[len(times) // 2], "min_ms": 1000 * times[0], "first_s": first,
           "peak_gib": torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == "cuda" else float("nan"),
           "last_metrics": {k: v for k, v in metrics.items() if isinstance(v, float)}}
    if phases is not None:
        out["phases_ms"] = {k: 1000 * sum(v) / len(v) for k, v in phases.items()}
    return out


def categorize(prof) -> dict:
    cats = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None)
        if t is None:
            t = getattr(e, "self_cuda_time_total", 0.0)
        name = e.key
        if not t or not name.startswith("aten::"):  # kernel rows repeat the time of the aten op that ran them
            continue
        if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_grouped_mm", "aten::addmm_"):
            cats["matmul"] += t
        elif "attention" in name:
            cats["attention"] += t
        else:
            cats["other"] += t
    return {k: v / 1000 for k, v in cats.items()}  # ms


def profile_step(loop, title: str, fh, step_index: int = 99) -> dict:
    from torch.profiler import ProfilerActivity, profile

    sync()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        loop.step(step_index)
        sync()
    cats = categorize(prof)
    fh.write(f"\n\n===== {title} =====\ndevice ms by category (aten ops' self time): {json.dumps(cats)}\n")
    for key in ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"):
        try:
            fh.write(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=70))
            break
        except Exception:
            continue
    fh.flush()
    return cats


def run_variants(part: str, loop, variants, steps, warmup, profile_names, fh, budget, phases=None) -> None:
    sw = Switches(loop)
    for name, v in variants:
        if elapsed() > budget:
            log(f"{part}: budget reached, skipping {name}")
            RESULTS[part].append({"variant": name, "skipped": "budget"})
            continue
        try:
            sw.apply(v)
            r = time_steps(loop, steps, warmup, phases)
            if name in profile_names:
                r["categories_ms"] = profile_step(loop, f"{part} {name}", fh)
        except Exception as exc:
            r = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        r["variant"] = name
        r["settings"] = v
        RESULTS[part].append(r)
        save()
        log(f"{part} {name}: {json.dumps({k: r[k] for k in r if k not in ('last_metrics', 'settings')})}")


EAGER = {"nocast": True, "rope32": True, "keep_attn": True, "attn": "cudnn", "fused": True}


def part_dpo(bench, size, part, variants, profile_names, fh, budget) -> None:
    loop = bench.dpo_loop(*size)
    loop.prepare()
    loop.reseed(0)
    run_variants(part, loop, variants, 4, 2, profile_names, fh, budget)
    del loop
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def part_grpo(bench, variants, profile_names, fh, budget, part: str = "grpo") -> None:
    import rewardloop.trainers.grpo as grpo_mod

    loop = bench.grpo_loop(*((5, 32, 32) if bench.args.tiny else (33, 240, 416)))
    loop.prepare()
    loop.reseed(0)
    phases: dict = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            sync()
            t0 = time.perf_counter()
            out = fn(*a, **k)
            sync()
            phases.setdefault(name, []).append(time.perf_counter() - t0)
            return out
        return wrapper

    loop.rollout = timed("rollout", loop.rollout)
    loop.decode = timed("decode", loop.decode)
    grpo_mod.score_batch = timed("reward", grpo_mod.score_batch)
    run_variants(part, loop, variants, 2, 1, profile_names, fh, budget, phases)
    del loop
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu-out")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--budget-s", type=float, default=380.0)
    p.add_argument("--compile", default="default", help="compile mode for the DPO compile variant ('' = skip)")
    p.add_argument("--tiny", action="store_true", help="CPU dry run of the script's logic (tiny model)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    bt.import_pack()
    global OUT
    OUT = out
    fh = open(out / "profiles.txt", "w")

    if "sdpa" in parts and not args.tiny:
        part_sdpa()
        save()
    bench = bt.Bench(bench_args(tiny=args.tiny, attention="auto"))
    size, big = ((5, 32, 32), (5, 64, 64)) if args.tiny else ((33, 240, 416), (33, 480, 832))
    log("bench ready")
    if "dpo" in parts:
        variants = [
            ("base", {}),
            ("+nocast", {"nocast": True}),
            ("+rope32", {"nocast": True, "rope32": True}),
            ("+keep_attn", {"nocast": True, "rope32": True, "keep_attn": True}),
            ("+cudnn", {"nocast": True, "rope32": True, "keep_attn": True, "attn": "cudnn"}),
            ("+fused(eager best)", EAGER),
            ("eager ckpt0.5", {**EAGER, "ckpt": 0.5}),
            ("eager ckpt0", {**EAGER, "ckpt": 0.0}),
        ]
        part_dpo(bench, size, "dpo", variants, {"base", "+fused(eager best)"}, fh, args.budget_s - 150)
        save()
    if "dpo_big" in parts:
        variants = [("base", {}), ("eager best", EAGER), ("eager no keep_attn", {**EAGER, "keep_attn": False}),
                    ("eager flash", {**EAGER, "attn": "flash"})]
        part_dpo(bench, big, "dpo_big", variants, {"eager best"}, fh, args.budget_s - 90)
        save()
    if "grpo" in parts:
        variants = [("base", {}), ("eager best", EAGER)]
        part_grpo(bench, variants, set(), fh, args.budget_s - 60)
        save()
    # Compiled variants (speed.compile_blocks on the live model): the first timed step of the first variant
    # holds the compile time (dynamo's cache then serves later loops with the same shapes).
    C = {"nocast": True, "rope32": True, "fused": True, "compile": args.compile}
    if "dpo_compile" in parts and args.compile:
        variants = [("compile ckpt1", C), ("compile ckpt1 keep_attn", {**C, "keep_attn": True}),
                    ("compile ckpt0.5", {**C, "ckpt": 0.5}), ("compile ckpt0", {**C, "ckpt": 0.0})]
        part_dpo(bench, size, "dpo_compile", variants, {"compile ckpt1"}, fh, args.budget_s - 200)
    if "grpo_compile" in parts and args.compile:
        part_grpo(bench, [("compile ckpt1", C)], set(), fh, args.budget_s - 120, "grpo_compile")
    if "dpo_big_compile" in parts and args.compile:
        variants = [("compile ckpt0", {**C, "ckpt": 0.0})]  # the fastest setting (needs ~70 GiB at 33x480x832)
        part_dpo(bench, big, "dpo_big_compile", variants, {"compile ckpt0"}, fh, args.budget_s - 60)
    fh.close()
    print("\n| part | variant | median ms | peak GiB | first s | extra |\n|---|---|---|---|---|---|")
    for part in PARTS[1:]:
        for r in RESULTS[part]:
            extra = r.get("error") or r.get("skipped") or json.dumps(r.get("phases_ms", r.get("categories_ms", "")))
            print(f"| {part} | {r['variant']} | {r.get('median_ms', float('nan')):.0f} | "
                  f"{r.get('peak_gib', float('nan')):.1f} | {r.get('first_s') or float('nan'):.1f} | {extra} |")
    for r in RESULTS["sdpa"]:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
