"""Do the scorers give the same values on the GPU as on the CPU? Every scorer on one clip (bench_rewards.py's
data: procedural scene with a face, 48 frames at 256x256, windows 32/8), in fp32 on both devices with the same weights and
the same (CPU, DIS) flow; prints each value on both and the difference, and the captions on both.

    python benchmarks/gpu_cpu_agreement.py [--frames 32] [--size 256]

GPU-only code paths this covers: the CUDA-graph BLIP decoder, the one device copy of the clip's frames, GPU
preprocessing for BLIP. Differences come from GPU vs CPU kernels (convolutions, reductions) in fp32.
"""
from __future__ import annotations

import argparse
import math
import torch

import bench_rewards as bench
from _pack import describe_device, import_pack


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--devices", default="cpu,cuda", help="the two devices compared (cpu,cpu: a dry run here)")
    args = ap.parse_args()
    import_pack()
    from rewardloop.motion.scene import render_scene
    from rewardloop.rewards import SCORERS, default_runtime, score

    notes = bench.prepare_models(bench.BENCH_MODELS)
    default_runtime().roots.set([bench.BENCH_MODELS])
    T, S = args.frames, args.size
    frames = bench.with_face(render_scene(torch.linspace(0, 0.5, T), S, S, seed=0, motion="pan_dolly"))
    data = {"frames": frames, "keyframes": frames[[0, -1]].clone(),
            "reference": render_scene(torch.linspace(0.5, 1.0, 17), S, S, seed=0, motion="pan_dolly")}
    options = {"caption_consistency": bench.TEXT_OPTIONS, "novelty_after_k": {"k": T // 2}}
    values, captions = {}, {}
    first, second = args.devices.split(",")
    for dev in (first, second):
        clip = bench.make_clip(data, torch.device(dev), precision="fp32")
        for name in SCORERS:
            res = score(name, clip, **options.get(name, {}))
            values[(dev, name)] = res.value if res.applicable else float("nan")
            if name == "caption_consistency":
                captions[dev] = res.details.get("captions")
    print(f"[agree] {describe_device(torch.device(second))}; weights: {notes}")
    worst = 0.0
    cells = []
    for name in SCORERS:
        a, b = values[(first, name)], values[(second, name)]
        diff = abs(a - b) if math.isfinite(a) and math.isfinite(b) else float("nan")
        rel = diff / max(abs(a), 1e-6) if math.isfinite(diff) else float("nan")
        worst = max(worst, rel) if math.isfinite(rel) else worst
        print(f"[agree] {name:22s} {first} {a: .6f}  {second} {b: .6f}  |diff| {diff:.2e}  rel {rel:.2e}")
        cells.append(f"{name} {diff:.1e}")
    same_captions = captions[first] == captions[second]
    print(f"[agree] captions equal: {same_captions}; {first} {[c[:60] for c in captions[first]]}; "
          f"{second} {[c[:60] for c in captions[second]]}")
    print(f"[agree] largest relative difference {worst:.2e}")
    print(f"| ROW | `gpu_cpu_agreement.py` {T} frames {S}x{S}, fp32 both | |value diff| per scorer: {'; '.join(cells)}; "
          f"largest relative {worst:.1e}; BLIP captions identical: {same_captions} |")


if __name__ == "__main__":
    main()
