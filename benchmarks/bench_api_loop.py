"""The retry loop around a paid first/last-frame API node, end to end: pass rate, API calls and provider seconds per
finished clip, for no gating, whole-clip retries and per-segment gating.

Everything is real except the video service: a real ComfyUI 0.3.75 with its API nodes on and `--comfy-api-base`
pointing at the local API stand-in (tests/harness/api_standin), the real LumaImageToVideoNode, the real executor
and the pack's loop, queued with an API key in extra_data as the frontend does. Each clip is one prompt of the
shipped workflows, unchanged except for the loops' base seeds:
  - the "Paid API - first-last, gated" workflow (whole clip: keyframe SSIM + 0.25 temporal LPIPS >= 0.85, 5 retries);
  - the "Paid API - master frames" workflow (two segments between three master frames, each its own loop,
    3 retries each), with the stand-in's pass rate per segment set to 0.4 ** (1/2) = 63%: a clip made of two
    independently failing halves that passes 40% as a whole (the same assumption as bench_loop.py).
The stand-in renders every generation with a defect (drift, hallucinated object, lighting jump, wrong end frame)
unless its draw passes, at `--pass-rate` (40%) for a whole clip. Fewer retries (R) are read from the same runs:
with first_pass, the first R + 1 attempts of a run are exactly a run capped at R (attempts draw independently), so
"no gating" is R = 0 of the whole-clip runs (one generation, kept whatever its reward).

API calls: runs of the API node (one generation request each), counted by the loop (its attempt log) and checked
against the stand-in's count of create requests. Provider seconds: time inside the API node (uploads, the
stand-in's `--latency` per request standing in for the generation, polling, download), from the attempt logs.

    python benchmarks/bench_api_loop.py [--clips 300] [--latency 0.5] [--width 128] [--out results.json]

Prints markdown rows for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _pack import ROOT, import_pack

HARNESS = ROOT / "tests" / "harness"
sys.path.insert(0, str(HARNESS))

THRESHOLD = 0.85


def machine() -> str:
    return f"CPU {os.cpu_count()} cores (shared, load avg {os.getloadavg()[0]:.1f})"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a pass rate."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def logs_of(result) -> list[dict]:
    return [e for out in result.outputs.values() for e in out.get("rewardloop_log", [])]


def capped(log: dict, r: int) -> dict:
    """What a first_pass loop capped at r retries would have done: its first r + 1 attempts."""
    attempts = log["attempts"][:r + 1]
    return {"passed": any(a["passed"] for a in attempts), "calls": sum(a["api_calls"] for a in attempts),
            "provider_seconds": sum(a["provider_seconds"] for a in attempts),
            "seconds": sum(a["seconds"] for a in attempts)}


def run_clips(server, standin, workflow: str, clips: int, pass_rate: float, key: dict, seed0: int) -> list[list[dict]]:
    from workflow_specs import template_path
    from workflows import load, ui_to_api

    prompt = ui_to_api(load(template_path(workflow)), server.object_info())
    opens = sorted(k for k, v in prompt.items() if v["class_type"] == "RewardLoopRetryOpen")
    standin.configure(pass_rate=pass_rate)
    out = []
    for c in range(clips):
        for i, k in enumerate(opens):
            prompt[k]["inputs"]["seed"] = seed0 + 10 * c + i  # a new prompt (nothing cached) per clip
        before = len([e for e in standin.log() if e.get("kind") == "create"])
        t0 = time.perf_counter()
        result = server.run(prompt, timeout=900, extra_data=key)
        wall = time.perf_counter() - t0
        if result.status != "success":
            raise RuntimeError(f"{workflow} clip {c} failed: {json.dumps(result.error)[:2000]}")
        logs = logs_of(result)
        asked = len([e for e in standin.log() if e.get("kind") == "create"]) - before
        if asked != sum(g["total_api_calls"] for g in logs):
            raise RuntimeError(f"the loop counted {sum(g['total_api_calls'] for g in logs)} API calls, the stand-in "
                               f"saw {asked}")
        for g in logs:
            g["wall_seconds"] = wall
        out.append(logs)
        if c % 25 == 24:
            print(f"# {workflow}: {c + 1}/{clips} clips", file=sys.stderr, flush=True)
    return out


def summarize(runs: list[list[dict]], r: int) -> dict:
    clips = [[capped(g, r) for g in logs] for logs in runs]
    passed = sum(all(s["passed"] for s in clip) for clip in clips)
    calls = [sum(s["calls"] for s in clip) for clip in clips]
    prov = [sum(s["provider_seconds"] for s in clip) for clip in clips]
    return {"n": len(clips), "passed": passed, "rate": passed / len(clips), "ci": wilson(passed, len(clips)),
            "calls": statistics.mean(calls), "provider_seconds": statistics.mean(prov)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--pass-rate", type=float, default=0.4, help="the stand-in's pass rate of a whole clip")
    ap.add_argument("--latency", type=float, default=0.5, help="seconds the stand-in takes per generation request")
    ap.add_argument("--width", type=int, default=128, help="width of the 16:9 master frames (the user's images)")
    ap.add_argument("--out", help="write every attempt log as JSON here")
    args = ap.parse_args()
    import_pack()
    from api_standin import StandInProcess
    from api_workflows import write_input_images
    from comfy_server import ComfyServer, env_from_setup

    env = env_from_setup()
    seg_rate = args.pass_rate ** 0.5
    with tempfile.TemporaryDirectory() as tmp, StandInProcess(env["REWARDLOOP_PYTHON"], latency=args.latency,
                                                              pass_rate=args.pass_rate) as standin:
        base = Path(tmp)
        write_input_images(base / "input", args.width, args.width * 9 // 16 // 2 * 2)  # 16:9, even
        subprocess.run([env["REWARDLOOP_PYTHON"], str(ROOT / "install.py"), "--weights", "--models-dir",
                        str(base / "models" / "rewardloop")], check=True, capture_output=True)
        server = ComfyServer(env["REWARDLOOP_PYTHON"], env["REWARDLOOP_COMFYUI"], base, api_base=standin.url)
        server.start()
        key = {"api_key_comfy_org": standin.configure()["api_key"]}
        t0 = time.time()
        try:
            whole = run_clips(server, standin, "api_first_last_gated", args.clips, args.pass_rate, key, 1_000_000)
            segs = run_clips(server, standin, "api_master_frames_per_segment", args.clips, seg_rate, key, 5_000_000)
        finally:
            server.stop()
        elapsed = time.time() - t0
    if args.out:
        Path(args.out).write_text(json.dumps({"whole": whole, "segments": segs}))

    plain = summarize(whole, 0)
    per_call = plain["provider_seconds"]
    date = datetime.date.today().isoformat()
    height = args.width * 9 // 16 // 2 * 2
    head = (f"`bench_api_loop.py --clips {args.clips} --latency {args.latency}` real ComfyUI + LumaImageToVideoNode "
            f"-> API stand-in (pass rate {args.pass_rate:.0%} per whole clip, {seg_rate:.1%} per half-clip segment), "
            f"{args.width}x{height} master frames, 13-frame clips, reward keyframe SSIM + 0.25 t-LPIPS >= {THRESHOLD}")

    def line(label: str, s: dict) -> str:
        lo, hi = s["ci"]
        return (f"{label}: pass {s['rate']:.1%} (95% CI {lo:.1%}-{hi:.1%}, {s['passed']}/{s['n']}), "
                f"{s['calls']:.2f} API calls and {s['provider_seconds']:.2f} s in the API node per finished clip "
                f"({s['provider_seconds'] / per_call:.2f}x a plain generation; {s['calls'] / max(s['rate'], 1e-9):.2f} "
                f"calls per passing clip)")

    lines = [line("no gating (one generation)", plain)]
    lines += [line(f"whole-clip retries R={r}", summarize(whole, r)) for r in (1, 2, 3, 5)]
    lines += [line(f"per-segment gating R={r} per segment", summarize(segs, r)) for r in (0, 1, 2, 3)]
    walls = [statistics.mean(g[0]["wall_seconds"] for g in runs) for runs in (whole, segs)]
    lines.append(f"wall time per clip (whole prompt incl. rewards, this machine): whole-clip workflow "
                 f"{walls[0]:.1f} s, per-segment workflow {walls[1]:.1f} s; benchmark took {elapsed / 60:.0f} min")
    for text in lines:
        print(f"| {date} | {machine()} | {head} | {text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
