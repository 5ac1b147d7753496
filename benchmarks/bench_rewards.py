"""Reward suite speed: every scorer on one clip with shared flow/caches (the pack's way) vs a naive per-frame,
model-per-call implementation (the seed sketches' way), measured in the same run on the same data.

    python benchmarks/bench_rewards.py [--frames 64] [--size 512] [--device cuda|cpu] [--skip-naive]
                                       [--long]            # also: 2000 frames at 1080p, bounded-memory run
                                       [--append-results]  # add the rows to benchmarks/RESULTS.md
    python benchmarks/bench_rewards.py --skip-naive --processes 3   # warm suite in 3 fresh processes: min/median
    python benchmarks/bench_rewards.py --batch 8 --size 33x240x416  # 8 clips as one batch vs one at a time

`--size` is a side (square frames, `--frames` long) or FRAMESxHEIGHTxWIDTH.

Data: the procedural parallax scene (pan + dolly) with a face (scikit-image's public-domain astronaut photo)
pasted into its top-left corner so identity_lock embeds faces, keyframes = its first and last frame, a
reference clip from later in the same shot (fvd_lite), windows 32/8 (so seams exist in 64 frames), a prompt.
Weights: real LPIPS/I3D when installed (REWARDLOOP_WEIGHTS_CACHE or ~/.cache/comfyui-rewardloop/weights, else
the installer is tried); otherwise, and for CLIP ViT-B/32 + ViT-L/14, BLIP-base, InceptionResnetV1, randomly
initialised full-size networks of the real architectures (compute cost does not depend on weight values).
LAION heads: the real files from tests/data; MiniLM: the bundled real one, else (the GPU
machine has no registry) a random network of MiniLM-L6's shape as a local text-model folder.
Optimised: `composite` over all 13 scorers on one Clip (flow, masks, edges, features computed once, models
cached, frames batched). "cold" includes model loading; "warm" is the steady per-clip cost (new Clip, models
already loaded), the number a retry loop or a trainer pays per sample.
Everything runs in the library's default runtime (rewards.default_runtime(), models from this script's folder).
Batch (`--batch N`): N different clips (the scene from N seeds, each with the face, its keyframes and a prompt) scored
by the full composite through `reward_function(...).batch` (every shared analysis once for the batch) and through
the same function one clip at a time, alternating, in the same process after a warm-up of each; clips/s of both
and the largest difference between the two paths' values.
Naive: for each scorer, the runtime is cleared and a new Clip is made per frame / pair / sampled frame
(flow recomputed per pair and per scorer, every model reloaded per call); clip-level scorers (fvd_lite,
seam, loop_break, novelty) get one fresh Clip each.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import torch

from _pack import ROOT, import_pack

WEIGHTS_CACHE = Path(os.environ.get("REWARDLOOP_WEIGHTS_CACHE", Path.home() / ".cache" / "comfyui-rewardloop" / "weights"))
BENCH_MODELS = Path(os.environ.get("REWARDLOOP_BENCH_MODELS", Path.home() / ".cache" / "comfyui-rewardloop" / "bench-models"))
PROMPT = "a city skyline with glass towers, hills and trees, camera moving sideways"


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ models
def prepare_models(root: Path) -> dict:
    """Populate a models root; returns notes on which weights are real."""
    from safetensors.torch import save_file

    from rewardloop.modelfiles import install_weights
    from rewardloop.rewards import models

    notes = {}
    root.mkdir(parents=True, exist_ok=True)
    real = [WEIGHTS_CACHE / m.kind / m.filename for s in install_weights.SOURCES.values() for m in s.members]
    if not all(p.is_file() for p in real):
        try:
            install_weights.install(WEIGHTS_CACHE, log=lambda m: None)
        except Exception as err:  # no registry access (e.g. the GPU machine): random weights, same cost
            print(f"[bench] real LPIPS/I3D unavailable ({str(err).splitlines()[0][:120]}): using random weights")
    for source in install_weights.SOURCES.values():
        for m in source.members:
            dst = root / m.kind / m.filename
            dst.parent.mkdir(exist_ok=True)
            src = WEIGHTS_CACHE / m.kind / m.filename
            if src.is_file():
                if not dst.exists():
                    os.symlink(src, dst)
                notes[m.filename] = "real"
            elif not dst.exists():
                save_file(_random_state(m.filename), str(dst))
                notes[m.filename] = "random"
            else:
                notes[m.filename] = "random (cached)"
    import open_clip

    for fname in (models.CLIPSCORE_FILE, models.AESTHETIC_CLIP_FILE):
        dst = root / "clip" / fname
        if not dst.exists():
            dst.parent.mkdir(exist_ok=True)
            net = open_clip.create_model(models.clip_arch_from_filename(fname))
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(dst))
        notes[fname] = "random (full size)"
    blip = root / "blip" / models.BLIP_FOLDER
    if not (blip / "config.json").exists():
        _random_blip(blip)
    notes["blip"] = "random BLIP-base (full size)"
    face = root / "facenet" / models.FACENET_FILE
    if not face.exists():
        from facenet_pytorch import InceptionResnetV1

        face.parent.mkdir(exist_ok=True)
        torch.save(InceptionResnetV1().state_dict(), face)
    notes["facenet"] = "random InceptionResnetV1 (MTCNN real)"
    (root / "aesthetic").mkdir(exist_ok=True)
    for name in models.AESTHETIC_HEADS.values():
        if not (root / "aesthetic" / name).exists():
            shutil.copy(ROOT / "tests" / "data" / "laion-aesthetic" / name, root / "aesthetic" / name)
    notes["aesthetic heads"] = "real"
    try:
        models.bundled_minilm_path()
        notes["text model"] = "bundled MiniLM (real)"
    except ImportError:
        _random_minilm(root / "text" / RANDOM_TEXT_MODEL)
        TEXT_OPTIONS["text_model"] = RANDOM_TEXT_MODEL
        notes["text model"] = "random MiniLM-L6-shaped bi-encoder (bundled package missing)"
    return notes


RANDOM_TEXT_MODEL = "random-minilm-l6"
TEXT_OPTIONS: dict = {}  # caption_consistency's options: the random text model where the bundled one is missing


def _random_minilm(folder: Path) -> None:
    from transformers import BertConfig, BertModel, BertTokenizer

    if (folder / "config.json").exists():
        return
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    vocab = {f"[unused{i}]": i for i in range(config.vocab_size)}
    for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]):
        vocab.pop(f"[unused{i}]")
        vocab[tok] = i
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(vocab=vocab).save_pretrained(folder)  # no modules.json: sentence-transformers mean-pools


def _random_state(filename: str) -> dict:
    from rewardloop.modelfiles import install_weights

    if filename.startswith("i3d"):
        from rewardloop.rewards.i3d import InceptionI3d

        return {k: v.contiguous() for k, v in InceptionI3d().state_dict().items()}
    from torchvision.models import alexnet, vgg16

    net = (alexnet if filename.startswith("alexnet") else vgg16)(weights=None).features
    idx = install_weights.ALEXNET_CONV_INDEX if filename.startswith("alexnet") else install_weights.VGG16_CONV_INDEX
    out = {f"features.{i}.{p}": getattr(net[i], p).detach().contiguous() for i in idx for p in ("weight", "bias")}
    chans = [net[i].out_channels for i in idx][-5:] if filename.startswith("alexnet") else [64, 128, 256, 512, 512]
    out.update({f"lin{k}.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(chans)})
    return out


def _random_blip(folder: Path) -> None:
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    config = BlipConfig()  # the base captioning model's sizes (ViT-B/16 at 384, BERT-base decoder)
    vocab = {f"[unused{i}]": i for i in range(config.text_config.vocab_size)}
    for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]):
        vocab.pop(f"[unused{i}]")
        vocab[tok] = i
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    folder.mkdir(parents=True, exist_ok=True)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)


# ---------------------------------------------------------------------------------------------- suites
def all_weights():
    from rewardloop.rewards import SCORERS

    return {name: 1.0 for name in SCORERS}


FLOW_METHOD = "dis_medium"
ANALYSIS_SIZE = None  # long side of flow-based analysis (Clip.analysis_size); None = the pack's default (256)


def _analysis_kw() -> dict:
    return {} if ANALYSIS_SIZE is None else {"analysis_size": ANALYSIS_SIZE}


def with_face(frames: torch.Tensor) -> torch.Tensor:
    """The astronaut's face (scikit-image sample, public domain), 30% of the frame's side, in the top-left corner."""
    import skimage.data

    face = torch.from_numpy(skimage.data.astronaut()[37:197, 144:304]).float() / 255  # 160x160 around the face
    side = int(0.3 * min(frames.shape[1:3]))
    face = torch.nn.functional.interpolate(face.permute(2, 0, 1)[None], size=(side, side), mode="bilinear",
                                           antialias=True)[0].permute(1, 2, 0)
    out = frames.clone()
    out[:, 8:8 + side, 8:8 + side] = face
    return out


def make_clip(data, dev, **kw):
    from rewardloop.rewards import Clip

    return Clip(data["frames"], keyframes=data["keyframes"], prompt=PROMPT, windows=(32, 8),
                reference=data["reference"], device=dev, flow_method=FLOW_METHOD, **_analysis_kw(), **kw)


def optimised(data, dev, times: dict | None = None, staged: bool = False):
    """One composite over every scorer on a new Clip, as a node or a trainer runs it: the flow is computed
    on a background CPU thread while the flow-free scorers run (so its time shows up only as waiting in
    the first flow-based scorer). `staged`: compute flow + masks first, alone, for a per-stage breakdown."""
    from rewardloop.rewards import composite

    clip = make_clip(data, dev)
    marks = []
    if staged:
        t = time.perf_counter()
        clip.flow()
        clip.valid_mask(0, 1)
        _sync(dev)
        marks.append(("shared flow + masks", time.perf_counter() - t))
    last = [time.perf_counter(), None]

    def on_component(name, i, n):
        _sync(dev)
        now = time.perf_counter()
        if last[1] is not None:
            marks.append((last[1], now - last[0]))
        last[0], last[1] = now, name

    agg, parts = composite(clip, all_weights(), {"caption_consistency": TEXT_OPTIONS}, on_component=on_component)
    _sync(dev)
    marks.append((last[1], time.perf_counter() - last[0]))
    if times is not None:
        times.update(dict(marks))
    return agg


def make_data(T: int, H: int, W: int, seed: int = 0) -> dict:
    from rewardloop.motion.scene import render_scene

    frames = with_face(render_scene(torch.linspace(0, 0.5, T), W, H, seed=seed, motion="pan_dolly"))
    return {"frames": frames, "keyframes": frames[[0, -1]].clone(),
            "reference": render_scene(torch.linspace(0.5, 1.0, 33), W, H, seed=0, motion="pan_dolly")}


def batch_vs_single(datas: list[dict], dev, repeat: int) -> dict:
    """Seconds to score the clips with the full composite as one batch and one at a time (same reward function,
    alternating runs after one warm-up of each), and how far apart the two paths' values are."""
    from rewardloop.rewards import reward_function

    fn = reward_function("composite", weights=all_weights(), options={"caption_consistency": TEXT_OPTIONS},
                         device=dev, flow_method=FLOW_METHOD, **_analysis_kw())
    frames = [d["frames"] for d in datas]
    inputs = [{"keyframes": d["keyframes"], "prompt": PROMPT, "windows": (32, 8), "reference": d["reference"]}
              for d in datas]

    def timed(run):
        _sync(dev)
        t = time.perf_counter()
        out = run()
        _sync(dev)
        return time.perf_counter() - t, out

    one = lambda: [fn(f, **i) for f, i in zip(frames, inputs)]  # noqa: E731
    together = lambda: fn.batch(frames, inputs)  # noqa: E731
    _, alone = timed(one)  # warm-up: every model loaded, reference features cached
    _, batched = timed(together)
    single_s, batch_s = [], []
    for _ in range(repeat):
        single_s.append(timed(one)[0])
        batch_s.append(timed(together)[0])
    return {"single_s": single_s, "batch_s": batch_s, "clips": len(datas),
            "max_diff": max(abs(a.value - b.value) for a, b in zip(alone, batched)),
            "excluded": sorted(alone[0].details["excluded"])}


def naive(data, dev) -> dict[str, float]:
    """Per-scorer seconds of the per-frame, model-per-call implementation."""
    from rewardloop.common.keyframes import evenly_spaced
    from rewardloop.rewards import Clip, SCORERS, default_runtime, score

    frames, keyframes = data["frames"], data["keyframes"]
    T = frames.shape[0]
    out = {}

    def fresh(x, **kw):
        default_runtime().clear()
        return Clip(x, device=dev, flow_method=FLOW_METHOD, **_analysis_kw(), **kw)

    for name in SCORERS:
        _sync(dev)
        t = time.perf_counter()
        try:
            _naive_one(name, data, dev, fresh, frames, keyframes, T, score, evenly_spaced, default_runtime().clear)
        except (ImportError, OSError) as err:  # a model the machine lacks: excluded here as in the composite
            print(f"[bench] naive: {name} skipped ({err})")
            continue
        _sync(dev)
        out[name] = time.perf_counter() - t
    return out


def _naive_one(name, data, dev, fresh, frames, keyframes, T, score, evenly_spaced, clear):
    if True:
        if name in ("temporal_lpips", "flow_smoothness", "structure_constancy"):
            for i in range(T - 1):
                score(name, fresh(frames[i:i + 2]))
        elif name == "keyframe_ssim":
            for kf, pos in zip(keyframes, (0, T - 1)):
                score(name, fresh(frames[pos:pos + 1], keyframes=kf[None]))
        elif name in ("clip_score", "aesthetic", "caption_consistency", "framing", "identity_lock"):
            n = {"clip_score": 8, "aesthetic": 8, "caption_consistency": 4, "framing": 16, "identity_lock": T // 8 + 1}[name]
            for i in evenly_spaced(n, T):
                opts = {"stride": 1} if name == "identity_lock" else {"num_samples": 1}
                opts.update(TEXT_OPTIONS if name == "caption_consistency" else {})
                score(name, fresh(frames[i:i + 1], prompt=PROMPT), **opts)
        else:  # clip-level: one fresh clip (flow recomputed, models reloaded) per scorer
            score(name, make_clip(data, dev) if name != "fvd_lite" else fresh(frames, reference=data["reference"]))
            clear()


def profile_warm(data, dev) -> None:
    """Wall time per function of one warm composite; time spent waiting for the GPU lands in the function that
    synchronises (.cpu(), float(), .item())."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    optimised(data, dev)
    _sync(dev)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(str(ROOT), 40)  # the pack's own functions


def long_run(dev) -> dict:
    """2000 frames at 1080p (a 50 GB float32 clip) as a strided view of one tall image (vertical pan), scored by
    the flow-based scorers at analysis size 256: validated, downscaled, flowed and scored in chunks."""
    from rewardloop.rewards import Clip, score

    T, H, W = 2000, 1080, 1920
    base = torch.rand(H + T, W, 3, generator=torch.Generator().manual_seed(0))
    frames = base.as_strided((T, H, W, 3), (W * 3, W * 3, 3, 1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    t = time.perf_counter()
    clip = Clip(frames, analysis_size=256, flow_method="dis_ultrafast", device=dev)
    values = {n: score(n, clip).value for n in ("temporal_lpips", "flow_smoothness", "structure_constancy",
                                                 "seam_consistency", "loop_break")}
    _sync(dev)
    return {"seconds": time.perf_counter() - t, "logical_gb": frames.numel() * 4 / 1e9,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "rss_before_gb": before,
            "values": values, "gpu_peak_gb": torch.cuda.max_memory_allocated() / 1e9 if dev.type == "cuda" else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", default="512", help="a side (square, --frames long) or FRAMESxHEIGHTxWIDTH")
    ap.add_argument("--batch", type=int, default=0,
                    help="score this many clips as one batch vs one at a time (full composite); nothing else runs")
    ap.add_argument("--processes", type=int, default=1,
                    help="run the warm suite (or --batch) in this many fresh processes, one after another: min/median")
    ap.add_argument("--json", default="", help=argparse.SUPPRESS)  # a --processes child writes its numbers here
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeat", type=int, default=2, help="warm runs (the minimum is reported)")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--long-only", action="store_true", help="only the 2000-frame 1080p memory run")
    ap.add_argument("--append-results", action="store_true")
    ap.add_argument("--spare-cores", type=int, default=None,
                    help="cores the background flow leaves free (default: rewards.context.BACKGROUND_FLOW_SPARE_CORES)")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile one more warm composite (main thread) and print where its wall time goes")
    ap.add_argument("--machine", default=None, help="machine description for RESULTS.md")
    ap.add_argument("--flow-method", default="dis_medium",
                    help="dis_* (OpenCV, CPU) or raft (needs models/rewardloop/raft weights; speed is weight-independent)")
    ap.add_argument("--analysis-size", type=int, default=None,
                    help="long side for the flow-based scorers (0 = native); 256 quarters flow, LPIPS and edge work")
    args = ap.parse_args()
    global FLOW_METHOD, ANALYSIS_SIZE
    FLOW_METHOD, ANALYSIS_SIZE = args.flow_method, args.analysis_size
    dims = [int(x) for x in args.size.lower().split("x")]
    if len(dims) not in (1, 3):
        ap.error(f"--size must be a side or FRAMESxHEIGHTxWIDTH, got {args.size!r}")
    T, H, W = dims if len(dims) == 3 else (args.frames, dims[0], dims[0])
    if args.processes > 1:
        _over_processes(args, T, H, W)
        return
    import_pack()
    if args.spare_cores is not None:
        from rewardloop.rewards import context

        context.BACKGROUND_FLOW_SPARE_CORES = args.spare_cores
    from rewardloop.rewards import default_runtime

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    notes = prepare_models(BENCH_MODELS)
    if FLOW_METHOD == "raft" and not list((BENCH_MODELS / "raft").glob("*.pth")):
        # RAFT's cost does not depend on weight values: a random raft_large measures the GPU-flow suite honestly.
        from torchvision.models.optical_flow import raft_large

        (BENCH_MODELS / "raft").mkdir(parents=True, exist_ok=True)
        torch.save(raft_large(weights=None).state_dict(), BENCH_MODELS / "raft" / "raft_large_C_T_SKHT_V2-ff5fadd5.pth")
        notes["raft"] = "random init (speed only)"
    default_runtime().roots.set([BENCH_MODELS])
    if args.long_only:
        _report(args, dev, None, None, None, None, None, long_run(dev))
        return
    print(f"[bench] device {dev}, {T} frames {H}x{W}, weights: {json.dumps(notes)}")
    if args.batch:
        r = batch_vs_single([make_data(T, H, W, seed=i) for i in range(args.batch)], dev, args.repeat)
        print(f"[bench] batch: {json.dumps(r)}")
        if args.json:
            Path(args.json).write_text(json.dumps(r))
        else:
            _report_rows(args, dev, [_batch_row(args, T, H, W, [r])])
        return
    data = make_data(T, H, W)

    default_runtime().clear()
    _sync(dev)
    t = time.perf_counter()
    agg = optimised(data, dev)
    _sync(dev)
    cold = time.perf_counter() - t
    warm, times, warm_runs = float("inf"), {}, []
    for _ in range(args.repeat):
        run_times: dict = {}
        t = time.perf_counter()
        agg = optimised(data, dev, run_times)
        _sync(dev)
        elapsed = time.perf_counter() - t
        warm_runs.append(elapsed)
        if elapsed < warm:
            warm, times = elapsed, run_times
    print(f"[bench] optimised: cold {cold:.2f} s, warm {warm:.2f} s; composite {agg.value:.4f}; "
          f"excluded {agg.details['excluded']}")
    if args.json:  # a --processes child: the warm runs only
        Path(args.json).write_text(json.dumps({"cold": cold, "warm": warm_runs, "per_stage": times}))
        return
    print("[bench] warm per stage (s; flow on a background thread): " +
          ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    staged: dict = {}
    t = time.perf_counter()
    optimised(data, dev, staged, staged=True)
    _sync(dev)
    staged_total = time.perf_counter() - t
    print(f"[bench] staged run (flow first, alone) {staged_total:.2f} s; per stage (s): " +
          ", ".join(f"{k} {v:.2f}" for k, v in staged.items()))
    times = {"(staged total)": staged_total, **staged}
    if args.profile:
        profile_warm(data, dev)
    naive_times = None
    if not args.skip_naive:
        naive_times = naive(data, dev)
        total = sum(naive_times.values())
        print(f"[bench] naive: {total:.1f} s ({total / warm:.1f}x the warm optimised run, {total / cold:.1f}x cold)")
        print("[bench] naive per scorer (s): " + ", ".join(f"{k} {v:.1f}" for k, v in naive_times.items()))
    _report(args, dev, T, f"{H}x{W}", warm, cold, times, long_run(dev) if args.long else None, naive_times)


def _machine(args, dev) -> str:
    load = os.getloadavg()[0]
    return args.machine or (f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}" if dev.type == "cuda" else
                            f"CPU {os.cpu_count()} cores (shared: load avg {load:.1f} during the run), "
                            f"torch {torch.__version__}")


def _batch_row(args, T, H, W, runs: list[dict]) -> str:
    """One RESULTS.md row for `--batch` results of one or more processes."""
    import statistics

    n = runs[0]["clips"]
    per = [(n / statistics.median(r["single_s"]), n / statistics.median(r["batch_s"])) for r in runs]
    nums = "; ".join(f"one at a time {a:.2f} clips/s, batch {b:.2f} clips/s (**{b / a:.2f}x**)" for a, b in per)
    return (f"| {datetime.date.today().isoformat()} | {{machine}} | `bench_rewards.py --batch {n} --size {T}x{H}x{W} "
            f"--repeat {args.repeat}{f' --processes {len(runs)}' if len(runs) > 1 else ''}` full composite (13 "
            f"scorers), {n} different clips, flow {FLOW_METHOD}, analysis {ANALYSIS_SIZE or 'default 256'}, medians "
            f"of the alternating runs{' per process' if len(runs) > 1 else ''} | {nums}; batch and one-at-a-time "
            f"values differ by at most {max(r['max_diff'] for r in runs):.1e}; excluded: "
            f"{', '.join(runs[0]['excluded']) or 'none'} |")


def _over_processes(args, T, H, W) -> None:
    """The warm suite (or --batch) in `--processes` fresh processes, one after another; min and median over them."""
    import statistics

    from _pack import run_processes, spread, without_options

    argv = without_options(sys.argv[1:], "--processes") + ["--skip-naive"]
    runs = run_processes(__file__, argv, args.processes)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.batch:
        rows = [_batch_row(args, T, H, W, runs)]
    else:
        medians = [statistics.median(r["warm"]) for r in runs]
        colds = " / ".join(f"{r['cold']:.1f}" for r in runs)
        s = spread(medians)
        rows = [f"| {datetime.date.today().isoformat()} | {{machine}} | `bench_rewards.py --skip-naive --repeat "
                f"{args.repeat} --processes {args.processes}` full suite (13 scorers, composite), {T} frames {H}x{W}, "
                f"flow {FLOW_METHOD} shared (background thread), analysis {ANALYSIS_SIZE or 'default 256'} | warm "
                f"median per process {' / '.join(f'{m:.2f}' for m in medians)} s: **median {s['median']:.2f} s, min "
                f"{s['min']:.2f} s over {args.processes} processes**; cold {colds} s |"]
    _report_rows(args, dev, rows)


def _report_rows(args, dev, rows: list[str]) -> None:
    rows = [r.replace("{machine}", _machine(args, dev)) for r in rows]
    for r in rows:
        print(r)
    if args.append_results:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write("\n".join(rows) + "\n")


def _report(args, dev, T, S, warm, cold, times, long, naive_times=None):
    if long:
        print(f"[bench] long: {json.dumps(long)}")
    machine = _machine(args, dev)
    rows = []
    date = datetime.date.today().isoformat()
    if warm is not None:
        stages = "; ".join(f"{k} {v:.2f}" for k, v in times.items())
        nums = f"warm {warm:.2f} s, cold (incl. model loading) {cold:.2f} s; per stage (s): {stages}"
        if naive_times:
            nums += (f"; naive per-frame/model-per-call {sum(naive_times.values()):.1f} s = "
                     f"{sum(naive_times.values()) / warm:.1f}x warm")
        rows.append(f"| {date} | {machine} | `bench_rewards.py` full suite (13 scorers, composite), {T} frames {S}, "
                    f"flow {FLOW_METHOD} shared (background thread), analysis {ANALYSIS_SIZE or 'default 256'}, precision "
                    f"{os.environ.get('REWARDLOOP_REWARD_PRECISION', 'auto')} | {nums} |")
    if long:
        rows.append(f"| {date} | {machine} | `bench_rewards.py --long` 2000 frames 1080p ({long['logical_gb']:.1f} GB as "
                    f"float32, strided view), 5 flow-based scorers, analysis 256, dis_ultrafast | "
                    f"{long['seconds']:.0f} s; peak RSS {long['peak_rss_gb']:.2f} GB (before {long['rss_before_gb']:.2f} GB)"
                    + (f"; GPU peak {long['gpu_peak_gb']:.2f} GB" if long['gpu_peak_gb'] else "") + " |")
    for r in rows:
        print(r)
    if args.append_results:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
