"""Reward-gated retry loops: pass rate vs retries vs time, and the loop machinery's own cost.

Part "passrate" (no ComfyUI): the known-pass-rate generator (procedural scene + seeded per-segment warps, see
gating/perturb.py) with the pack's keyframe SSIM reward, threshold 0.85, over many clips:
  - plain: one whole-clip generation (a clip of S segments passes with p_seg ** S; p_seg is set so this is 40%,
    the plain pass rate the gate has to improve on);
  - whole-clip retry loop, first_pass, max_retries R: re-generate the whole clip;
  - per-segment gating, max_retries R per segment: each segment between keyframes has its own loop.
  Time is measured wall time of generation + reward per attempt, reported relative to one plain generation
  (generation alone, no reward), plus a frame-count model (frames generated / clip length).
Part "overhead" (ComfyUI's real executor, in-process): one loop with N = 1..33 attempts (33 = the cap) (threshold 1.0, nothing
passes) vs the same body queued as a plain prompt; the difference per attempt is the loop machinery (open node,
close node bookkeeping, graph expansion, the executor's work on the expanded nodes), in CPU time of one thread.
Memory: how many candidate tensors are alive during and after a loop of N attempts, with ComfyUI's default cache
and with --cache-none (process RSS is not used: the allocator keeps freed pages, so it mostly measures noise).

    python benchmarks/bench_loop.py [--part passrate|overhead|all] [--clips 200] [--size 128]

Prints markdown rows for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from _pack import ROOT, import_pack

THRESHOLD = 0.85
FRAMES, EVERY = 33, 8


def machine() -> str:
    load = os.getloadavg()[0]
    return f"CPU {os.cpu_count()} cores (shared, load avg {load:.1f}), torch {torch.__version__.split('+')[0]}"


# ---------------------------------------------------------------------------------------------- pass rate
def passrate(clips: int, size: int, max_r: int) -> list[str]:
    import_pack()
    from rewardloop import gating, rewards
    from rewardloop.gating import perturb
    from rewardloop.motion import scene

    segments = gating.segment_ranges(FRAMES, every=EVERY)
    S = len(segments)
    p_seg = 0.4 ** (1 / S)
    keys = perturb.keyframes_of(FRAMES, EVERY)
    clean = scene.render_scene(scene.frame_times(FRAMES), size, size, 0, "pan")
    clean_keys = clean[keys]

    # CPU time of this process on one thread: on a shared machine wall time mostly measures the neighbours.
    clock = time.process_time
    torch.set_num_threads(1)

    def attempt(seed, first, last, key_idx):
        t0 = clock()
        frames, _ = perturb.perturbed_scene(FRAMES, size, size, 0, "pan", seed, p_seg, EVERY, first, last)
        t1 = clock()
        clip = rewards.Clip(frames, keyframes=clean_keys[key_idx],
                            keyframe_positions=[k - first for k in keys[key_idx[0]:key_idx[-1] + 1]])
        value = rewards.run("keyframe_ssim", clip).value
        t2 = clock()
        return value, t1 - t0, t2 - t1

    def loop(base_seed, first, last, key_idx):
        """One first_pass loop with max_r retries; per attempt (passed, gen s, reward s)."""
        settings = gating.make_settings(THRESHOLD, max_r, base_seed=base_seed)
        out = []
        for k in range(settings.attempts):
            value, g, r = attempt(settings.seed(k), first, last, key_idx)
            out.append((value >= THRESHOLD, g, r))
            if value >= THRESHOLD:
                break
        return out

    def prefix(att, R):
        """(passed, seconds incl. reward, generations, generation-only seconds) of the loop capped at R retries."""
        att = att[:R + 1]
        return any(a[0] for a in att), sum(a[1] + a[2] for a in att), len(att), sum(a[1] for a in att)

    attempt(123456, 0, FRAMES - 1, list(range(len(keys))))  # warm-up: textures, SSIM kernels
    whole, seg = [], []
    plain_gen = []
    t_start = time.perf_counter()
    for c in range(clips):
        w = loop(10_000 + c, 0, FRAMES - 1, list(range(len(keys))))
        whole.append(w)
        plain_gen.append(w[0][1])
        seg.append([loop(1_000_000 + 100 * c + i, a, b - 1, [i, i + 1]) for i, (a, b) in enumerate(segments)])
    elapsed = time.perf_counter() - t_start
    gen_ref = statistics.mean(plain_gen)  # one plain whole-clip generation, no reward

    rows = []
    date = datetime.date.today().isoformat()
    head = (f"`bench_loop.py --part passrate` {clips} clips, {size}x{size}, {FRAMES} frames, {S} segments "
            f"(keyframe every {EVERY}), keyframe SSIM >= {THRESHOLD}, p_seg {p_seg:.3f}")
    plain_pass = statistics.mean(w[0][0] for w in whole)
    lines = [f"plain whole clip: pass {plain_pass:.1%} (expected 40%), 1.00x time (gen {gen_ref * 1000:.0f} ms CPU, "
             f"1 thread)"]
    for R in range(max_r + 1):
        res = [prefix(w, R) for w in whole]
        rate = statistics.mean(r[0] for r in res)
        t = statistics.mean(r[1] for r in res) / gen_ref
        g = statistics.mean(r[3] for r in res) / gen_ref
        frames = statistics.mean(r[2] for r in res)
        lines.append(f"whole-clip loop R={R}: pass {rate:.1%} (theory {1 - 0.6 ** (R + 1):.1%}), "
                     f"{t:.2f}x time ({g:.2f}x generation only), {frames:.2f}x frames")
    for R in range(max_r + 1):
        res = [[prefix(s, R) for s in clip] for clip in seg]
        rate = statistics.mean(all(s[0] for s in clip) for clip in res)
        t = statistics.mean(sum(s[1] for s in clip) for clip in res) / gen_ref
        g = statistics.mean(sum(s[3] for s in clip) for clip in res) / gen_ref
        frames = statistics.mean(sum(s[2] * (b - a) for s, (a, b) in zip(clip, segments)) for clip in res) / FRAMES
        theory = (1 - (1 - p_seg) ** (R + 1)) ** S
        lines.append(f"per-segment gating R={R}: pass {rate:.1%} (theory {theory:.1%}), {t:.2f}x time "
                     f"({g:.2f}x generation only), {frames:.2f}x frames")
    for line in lines:
        rows.append(f"| {date} | {machine()} | {head} | {line} |")
    print(f"# passrate part took {elapsed:.0f} s", file=sys.stderr)
    return rows


# ---------------------------------------------------------------------------------------------- overhead
class _Server:
    """The executor's server interface, recording nothing (progress text and events cost a call each)."""
    client_id = None
    last_node_id = None

    def send_sync(self, event, data, sid=None):
        pass

    def send_progress_text(self, text, node_id, sid=None):
        pass


def _comfy():
    comfy_dir = os.environ.get("REWARDLOOP_COMFYUI", str(Path.home() / ".cache/comfyui-rewardloop/env/ComfyUI"))
    argv, sys.argv = sys.argv, ["main.py", "--cpu"]
    saved = list(sys.path)
    try:
        # Hide the pack root (a `python benchmarks/...` run from it puts it on sys.path) while ComfyUI imports.
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != str(ROOT)] + [comfy_dir]
        import comfy.options

        comfy.options.enable_args_parsing()
        importlib.import_module("utils.extra_config")
        comfy_nodes = importlib.import_module("nodes")
        execution = importlib.import_module("execution")
    finally:
        sys.argv = argv
        sys.path[:] = saved + [comfy_dir]
    return comfy_nodes, execution


def live_candidates(shape) -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor) and tuple(o.shape) == shape)


def overhead(size: int, repeats: int, mem_size: int) -> list[str]:
    comfy_nodes, execution = _comfy()
    import_pack()
    from comfy_api.latest import io

    from rewardloop import rewards
    from rewardloop.nodes import retry as loop

    class BenchAnchors(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="BenchAnchors", category="bench",
                             inputs=[io.Int.Input("size"), io.Int.Input("frames")], outputs=[io.Image.Output("k")])

        @classmethod
        def execute(cls, size, frames):
            from rewardloop.motion import scene

            return io.NodeOutput(scene.render_scene(torch.tensor([0.0, 1.0]), size, size, 0, "pan"))

    class BenchReward(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="BenchReward", category="bench",
                             inputs=[io.Image.Input("frames"), io.Image.Input("keys")],
                             outputs=[io.Float.Output("r")])

        watch_shape = None   # when set: count live candidate tensors while the loop runs (memory part)
        peak = 0

        @classmethod
        def execute(cls, frames, keys):
            if BenchReward.watch_shape is not None:
                BenchReward.peak = max(BenchReward.peak, live_candidates(BenchReward.watch_shape))
            return io.NodeOutput(rewards.run("keyframe_ssim", rewards.Clip(frames, keyframes=keys)).value)

    class BenchSink(io.ComfyNode):
        last = None

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="BenchSink", category="bench", is_output_node=True,
                             inputs=[io.Image.Input("frames"), io.Float.Input("r", optional=True, force_input=True),
                                     io.String.Input("log", optional=True, force_input=True)],
                             outputs=[])

        @classmethod
        def execute(cls, frames, r=None, log=None):
            BenchSink.last = json.loads(log) if log else None
            return io.NodeOutput()

    for cls in (*loop.NODES, BenchAnchors, BenchReward, BenchSink):
        comfy_nodes.NODE_CLASS_MAPPINGS[cls.GET_SCHEMA().node_id] = cls
    server = _Server()
    loop._server = lambda: server

    def body(seed, size, frames, gen_seed):
        return {
            "anchors": {"class_type": "BenchAnchors", "inputs": {"size": size, "frames": frames}},
            "gen": {"class_type": "RewardLoopPerturbedScene",
                    "inputs": {"width": size, "height": size, "length": frames, "scene_seed": 0,
                               "motion": "pan", "keyframe_every": 0, "first_frame": 0, "last_frame": -1,
                               "seed": gen_seed, "pass_probability": 0.0}},
            "reward": {"class_type": "BenchReward", "inputs": {"frames": ["gen", 0], "keys": ["anchors", 0]}},
        }

    def plain_prompt(seed, size, frames, copies=1):
        """`copies` independent bodies in one prompt: same per-prompt fixed costs as one loop prompt."""
        p = {}
        for i in range(copies):
            part = body(seed, size, frames, seed * 1000 + i)
            p.update({f"{k}{i}" if k != "anchors" else k: v for k, v in part.items()})
            p[f"gen{i}"]["inputs"]["seed"] = seed * 1000 + i
            p[f"reward{i}"]["inputs"]["frames"] = [f"gen{i}", 0]
            p[f"sink{i}"] = {"class_type": "BenchSink", "inputs": {"frames": [f"gen{i}", 0], "r": [f"reward{i}", 0]}}
        return p

    def loop_prompt(seed, size, frames, attempts):
        p = body(seed, size, frames, ["open", 2])
        p["open"] = {"class_type": "RewardLoopRetryOpen",
                     "inputs": {"seed": seed, "threshold": 1.0, "max_retries": attempts - 1, "mode": "first_pass",
                                "seed_policy": "hash", "reward_range": "0..1"}}
        p["close"] = {"class_type": "RewardLoopRetryClose",
                      "inputs": {"loop": ["open", 0], "frames": ["gen", 0], "reward": ["reward", 0]}}
        p["sink"] = {"class_type": "BenchSink", "inputs": {"frames": ["close", 0], "log": ["close", 4]}}
        return p

    torch.set_num_threads(1)  # CPU time of one thread: stable on a shared machine (see passrate)

    def run(ex, prompt, outputs):
        t = time.process_time()
        ex.execute(prompt, "bench", {}, outputs)
        if not ex.success:
            raise RuntimeError("benchmark prompt failed")
        return time.process_time() - t

    date = datetime.date.today().isoformat()
    rows = []
    counter = iter(range(1, 10**9))
    sinks = lambda n: [f"sink{i}" for i in range(n)]  # noqa: E731
    for label, sz, frames in (("trivial body (16x16, 2 frames)", 16, 2), (f"{size}x{size}, 33 frames", size, 33)):
        ex = execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC, cache_args={"ram": 0, "lru": 0})
        with torch.inference_mode():
            run(ex, plain_prompt(0, sz, frames), sinks(1))  # warm-up; the anchors stay cached from here on
            numbers = []
            for n in (1, 2, 4, 8, 16, 33):
                plain = min(run(ex, plain_prompt(next(counter), sz, frames, n), sinks(n)) for _ in range(repeats))
                looped = min(run(ex, loop_prompt(next(counter), sz, frames, n), ["sink"]) for _ in range(repeats))
                assert BenchSink.last["attempts_run"] == n
                per = (looped - plain) / n
                numbers.append(f"N={n}: loop {looped * 1000:.0f} ms vs {n} plain bodies {plain * 1000:.0f} ms: "
                               f"{per * 1000:+.2f} ms/attempt ({per / (plain / n):+.1%} of a body)")
        rows.append(f"| {date} | {machine()} | `bench_loop.py --part overhead` in-process executor, {label} + keyframe "
                    f"SSIM, threshold 1.0 (all N attempts run) vs N independent bodies in one prompt, CPU time 1 "
                    f"thread, best of {repeats} | " + "; ".join(numbers) + " |")

    shape = (33, mem_size, mem_size, 3)
    for cache in ("classic", "none"):
        kind = {"classic": execution.CacheType.CLASSIC, "none": execution.CacheType.NONE}[cache]
        ex = execution.PromptExecutor(server, cache_type=kind, cache_args={"ram": 0, "lru": 0})
        numbers = []
        with torch.inference_mode():
            run(ex, loop_prompt(next(counter), mem_size, 33, 1), ["sink"])
            for n in (1, 2, 4, 8, 16):
                gc.collect()
                BenchReward.watch_shape, BenchReward.peak = shape, 0
                run(ex, loop_prompt(next(counter), mem_size, 33, n), ["sink"])
                BenchReward.watch_shape = None
                gc.collect()
                numbers.append(f"N={n}: peak {BenchReward.peak}, after {live_candidates(shape)}")
        candidate = 33 * mem_size * mem_size * 3 * 4 / 2**20
        rows.append(f"| {date} | {machine()} | `bench_loop.py --part overhead` candidate tensors alive (referenced by "
                    f"anything: loop, ComfyUI cache, executor) while the reward of each attempt runs (peak) and after "
                    f"the prompt, loop of N attempts, {mem_size}x{mem_size}x33 candidates ({candidate:.0f} MB each), "
                    f"ComfyUI cache {'default (classic)' if cache == 'classic' else '--cache-none'} | "
                    + "; ".join(numbers) + " |")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=("passrate", "overhead", "all"))
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--max-retries", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mem-size", type=int, default=256)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    rows = []
    if args.part in ("passrate", "all"):
        rows += passrate(args.clips, args.size, args.max_retries)
    if args.part in ("overhead", "all"):
        rows += overhead(args.size, args.repeats, args.mem_size)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
