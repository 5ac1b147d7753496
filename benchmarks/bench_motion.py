"""Motion core speed and quality at 512x512: scene rendering, optical flow per method, inbetweening per
method (fps of synthesised frames, with and without the flow computation) and its PSNR/SSIM against the
procedural scene's exact frames. Runs on CUDA when available (or --device), else CPU.

    python benchmarks/bench_motion.py [--size 512] [--length 65] [--every 4] [--device cuda]
                                      [--raft-random]   # time RAFT with random weights (speed only)
                                      [--skip-flow-methods]  # only the inbetween rows
                                      [--temporal-mix 0.2]   # also a whole call with this temporal_mix
    python benchmarks/bench_motion.py --window-merge [--merge-frames 600 --merge-size 1280x720]

The inbetween rows time the real default path: `inbetween.keyframe_flows` (temporally initialised flows, what
inbetween() computes when given none) plus synthesis, and one whole inbetween() call with every default.
--window-merge measures Window Split -> Window Merge alone (CPU): the merge's peak memory (resident set size, reset
before the merge, so torch allocations count) against the size of its output.

Prints markdown table rows for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch

from _pack import describe_device, import_pack



def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, dev, repeat=3):
    """Best of `repeat` after a warm-up (texture cache, cv2 threads, CUDA kernels): the minimum is the
    least disturbed by other processes on a shared machine."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        _sync(dev)
        t = time.perf_counter()
        out = fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--length", type=int, default=65)
    ap.add_argument("--every", type=int, default=4, help="keyframe spacing (4 = 4x inbetweening)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--motion", default="pan")
    ap.add_argument("--raft-random", action="store_true")
    ap.add_argument("--skip-flow-methods", action="store_true")
    ap.add_argument("--temporal-mix", type=float, default=0.0, help="also time a whole inbetween() call with it")
    ap.add_argument("--window-merge", action="store_true", help="only the Window Split -> Merge memory row")
    ap.add_argument("--merge-frames", type=int, default=600)
    ap.add_argument("--merge-size", default="1280x720", help="WxH of the merge benchmark's frames")
    ap.add_argument("--merge-view-input", action="store_true",
                    help="the clip to split is one frame repeated as a view (no memory of its own): the merge's peak "
                         "alone, on a machine without room for a second full-size clip")
    args = ap.parse_args()
    import_pack()
    if args.window_merge:
        return window_merge(args)
    from rewardloop.common.image import ssim
    from rewardloop.common.keyframes import KeyframePositions
    from rewardloop.motion import inbetween, optical_flow as flow, scene

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    machine = describe_device(dev)
    today = datetime.date.today().isoformat()
    S, T = args.size, args.length
    rows = []

    def row(bench, numbers):
        rows.append(f"| {today} | {machine} | {bench} | {numbers} |")
        print(rows[-1], flush=True)

    times = scene.frame_times(T)
    scene.clear_cache()
    t0 = time.perf_counter()
    scene.render_scene(times[:1], S, S, 0, args.motion, device=dev)
    first = time.perf_counter() - t0
    sec, frames = _timed(lambda: scene.render_scene(times, S, S, 0, args.motion, device=dev), dev)
    row(f"bench_motion scene render {S}x{S}, {T} frames, {args.motion}",
        f"{sec:.2f} s ({T / sec:.1f} fps); first call incl. textures {first:.2f} s")

    # Flow: 3-frame steps (the inbetween gap) so the displacement is non-trivial.
    a_idx = torch.arange(0, T - args.every, args.every)[:8]
    src, dst = frames[a_idx], frames[a_idx + args.every]
    gt = scene.ground_truth_flow(times[a_idx], times[a_idx + args.every], S, S, 0, args.motion, device=dev)
    methods = [] if args.skip_flow_methods else [m for m in flow.METHODS if m != "raft"]
    raft = None
    if args.raft_random:
        methods.append("raft")
        raft = _random_raft(flow)
    for method in methods:
        sec, f = _timed(lambda: flow.compute_flow(src, dst, method, device=dev, raft=raft), dev)
        epe = (f.to(dev) - gt.flow).norm(dim=-1)[gt.valid].mean().item()
        note = " (random weights: speed only)" if method == "raft" else ""
        row(f"bench_motion flow {method}{note}, {S}x{S}, {len(a_idx)} pairs, {args.every}-frame gap",
            f"{sec / len(a_idx) * 1000:.1f} ms/pair; EPE {epe:.3f} px (mean GT magnitude {gt.flow.norm(dim=-1)[gt.valid].mean():.2f})")

    pos = KeyframePositions.every(T, args.every).to_list()
    keys = frames[pos]
    mask = torch.ones(T, dtype=torch.bool)
    mask[pos] = False
    n_new = int(mask.sum())
    fm = inbetween.DEFAULT_FLOW_METHOD
    plain_sec, _ = _timed(lambda: flow.bidirectional_flow(keys, fm), dev)
    # What inbetween() computes when given no flows (flow_init="temporal", its default).
    flow_sec, pair = _timed(lambda: inbetween.keyframe_flows(keys, fm, pos), dev)
    row(f"bench_motion keyframe flows {fm}, {S}x{S}, {len(pos)} keyframes",
        f"keyframe_flows (temporal init, inbetween's default) {flow_sec:.3f} s, plain bidirectional_flow "
        f"{plain_sec:.3f} s")

    def quality(out):
        o, g = out[mask].float(), frames[mask].float()
        psnr = (10 * torch.log10(1 / ((o - g) ** 2).mean(dim=(1, 2, 3)))).mean().item()
        s = ssim(o, g).mean().item()
        return f"PSNR {psnr:.2f} dB, SSIM {s:.4f}"

    for method in inbetween.METHODS:
        sec, out = _timed(lambda: inbetween.inbetween(keys, positions=pos, method=method, flows=pair), dev)
        total = sec + (flow_sec if method != "crossfade" else 0.0)
        row(f"bench_motion inbetween {method} (defaults otherwise), {S}x{S}, {T} frames, keyframe every "
            f"{args.every} ({n_new} new), flows {fm} keyframe_flows",
            f"{n_new / sec:.1f} fps synthesis, {n_new / total:.1f} fps incl. flow; {quality(out)}")
    # The whole default call as a node makes it: flows and synthesis in one inbetween() with no flows given.
    sec, out = _timed(lambda: inbetween.inbetween(keys, positions=pos), dev)
    row(f"bench_motion inbetween() all defaults, flows computed inside, {S}x{S}, {T} frames, keyframe every "
        f"{args.every} ({n_new} new)", f"{n_new / sec:.1f} fps incl. flow ({sec:.3f} s); {quality(out)}")
    if args.temporal_mix > 0:
        sec, out = _timed(lambda: inbetween.inbetween(keys, positions=pos, temporal_mix=args.temporal_mix), dev)
        row(f"bench_motion inbetween() defaults but temporal_mix {args.temporal_mix}, flows computed inside, {S}x{S}, "
            f"{T} frames, keyframe every {args.every} ({n_new} new)",
            f"{n_new / sec:.1f} fps incl. flow ({sec:.3f} s); {quality(out)}")

def _random_raft(flow):
    """Random-weight raft_large in a temporary model folder: RAFT's cost does not depend on weight values."""
    import tempfile

    from torchvision.models.optical_flow import raft_large

    from rewardloop import modelfiles

    root = Path(tempfile.mkdtemp())
    (root / "raft").mkdir()
    torch.save(raft_large(weights=None).state_dict(), root / "raft" / flow.RAFT_WEIGHTS[0][0])
    return flow.RaftModels(modelfiles.ModelRoots([root]))


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def window_merge(args):
    """Window Split -> Window Merge on a long clip, as the nodes run them (the split's own windows: views of the
    input); the merge's peak is the resident set's high-water mark (reset just before it, Linux /proc) above the
    resident set before it, so every torch allocation counts."""
    from rewardloop.motion import windows

    width, height = (int(v) for v in args.merge_size.lower().split("x"))
    n = args.merge_frames
    if args.merge_view_input:  # one frame, expanded: the windows are views that cost nothing
        frames = torch.rand(1, height, width, 3).expand(n, height, width, 3)
    else:
        frames = torch.empty(n, height, width, 3)
        for t in range(0, n, 16):  # distinct values, written in place (no second copy)
            frames[t:t + 16] = torch.rand(1, height, width, 3) * 0.5 + torch.arange(t, min(t + 16, n)).view(
                -1, 1, 1, 1) / (2 * n)
    split = windows.split_windows(frames, 64, 16)
    output_bytes = frames.numel() * frames.element_size()
    warm = windows.split_windows(torch.rand(70, 16, 16, 3), 64, 16)  # pages in the code paths first
    windows.merge_windows(warm.clips, warm.ranges, warm.length)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the high-water mark (VmHWM) to the current resident set
    before = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    merged = windows.merge_windows(split.clips, split.ranges, split.length)
    sec = time.perf_counter() - t0
    peak = (_rss_kib("VmHWM") - before) * 1024
    worst = max(float((merged[t:t + 16] - frames[t:t + 16]).abs().max()) for t in range(0, len(frames), 16))
    assert worst < 1e-6, f"a split-merge round trip must give the clip back (largest difference {worst})"
    today = datetime.date.today().isoformat()
    print(f"| {today} | {describe_device(torch.device('cpu'))} | `bench_motion.py --window-merge` Window Split -> "
          f"Merge, {args.merge_frames} frames {width}x{height} float32, window 64 overlap 16 ({len(split.ranges)} "
          f"windows){', input one frame expanded (a view)' if args.merge_view_input else ''} | merge peak {peak / 2**30:.2f} GiB above its input for an output of {output_bytes / 2**30:.2f} "
          f"GiB = **{peak / output_bytes:.2f}x** the output (goal <= 1.2x); {sec:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
