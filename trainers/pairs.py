"""Preference-pair builder: score generated clips per prompt with a reward function and write the
chosen/rejected JSONL that the DPO trainer reads (the bridge from online rollouts to offline DPO).

Inputs (pairs.clips):
  * a folder with one sub-folder per prompt, each holding `prompt.txt` and the clips (video files or
    frame folders), or
  * a JSONL file of {"prompt": ..., "clip": path} rows (paths relative to the file).
Output (pairs.out): JSONL rows {prompt, chosen, rejected, chosen_score, rejected_score} with clip paths
relative to the output file, plus `<out>.scores.jsonl` with every clip's score.
Strategies: best_worst (one pair per prompt: top vs bottom score) or all_pairs (every ordered pair whose
score gap is >= min_margin, best gaps first, capped by max_pairs_per_prompt).
Under torchrun each process scores a stride of the clips and process 0 writes the files. Clips of one prompt are
scored together (SCORE_BATCH at a time, one call: shared analyses batched across them).
"""
from __future__ import annotations

import json
import logging
import os
from itertools import combinations
from pathlib import Path

from .config import TrainerConfig, resolve_path
from .reward_fns import build_reward, score_batch
from .video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_clip

log = logging.getLogger(__name__)


def list_clips(cfg: TrainerConfig) -> list[tuple[str, Path]]:
    src = resolve_path(cfg, cfg.pairs.clips)
    items: list[tuple[str, Path]] = []
    if src.is_dir():
        for sub in sorted(p for p in src.iterdir() if p.is_dir()):
            ptxt = sub / "prompt.txt"
            if not ptxt.is_file():
                continue
            prompt = ptxt.read_text(encoding="utf-8").strip()
            for clip in sorted(sub.iterdir()):
                is_video = clip.is_file() and clip.suffix.lower() in VIDEO_SUFFIXES
                is_frames = clip.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in clip.iterdir())
                if is_video or is_frames:
                    items.append((prompt, clip))
        if not items:
            raise ValueError(f"pairs.clips {src}: no sub-folder with a prompt.txt and clips was found.")
    elif src.is_file():
        for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                items.append((str(row["prompt"]), src.parent / row["clip"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{src.name}:{n}: expected {{\"prompt\": ..., \"clip\": ...}} ({exc!r}).") from exc
    else:
        raise ValueError(f"pairs.clips {src} does not exist.")
    return items


def make_pairs(scored: list[dict], strategy: str, min_margin: float, cap: int) -> list[dict]:
    by_prompt: dict[str, list[dict]] = {}
    for s in scored:
        by_prompt.setdefault(s["prompt"], []).append(s)
    pairs = []
    for prompt, clips in by_prompt.items():
        clips = sorted(clips, key=lambda c: c["score"], reverse=True)
        if len(clips) < 2:
            continue
        if strategy == "best_worst":
            cands = [(clips[0], clips[-1])]
        else:
            cands = sorted(combinations(clips, 2), key=lambda ab: ab[0]["score"] - ab[1]["score"], reverse=True)
        chosen = [(a, b) for a, b in cands if a["score"] - b["score"] >= min_margin and a["score"] > b["score"]]
        if cap:
            chosen = chosen[:cap]
        pairs.extend({"prompt": prompt, "chosen": a["clip"], "rejected": b["clip"], "chosen_score": a["score"],
                      "rejected_score": b["score"]} for a, b in chosen)
    return pairs


SCORE_BATCH = 8  # clips of one prompt scored in one call (read into memory together)


def _batches(items: list[tuple[str, Path]]) -> list[list[tuple[str, Path]]]:
    """Consecutive clips of the same prompt, at most SCORE_BATCH at a time."""
    out: list[list[tuple[str, Path]]] = []
    for item in items:
        if out and out[-1][0][0] == item[0] and len(out[-1]) < SCORE_BATCH:
            out[-1].append(item)
        else:
            out.append([item])
    return out


def _score(fn, read: list[tuple[str, Path, object]], reject) -> list[tuple[str, Path, float]]:
    """(prompt, clip, score) of the read clips in one call; if that fails, clip by clip, so a clip the reward cannot
    score (too small, no finite value) is named and passed to `reject`."""
    if not read:
        return []
    try:
        values = score_batch(fn, [f for _, _, f in read], [prompt for prompt, _, _ in read]).tolist()
    except (ValueError, FloatingPointError) as exc:
        if len(read) > 1:
            return [row for item in read for row in _score(fn, [item], reject)]
        reject(ValueError(f"{read[0][1]}: {exc}"))
        return []
    return [(prompt, clip, v) for (prompt, clip, _), v in zip(read, values)]


def build_pairs(cfg: TrainerConfig, rt) -> dict:
    p = cfg.pairs
    out = resolve_path(cfg, p.out)
    fn = build_reward(p.reward, rt.device)
    items = list_clips(cfg)
    mine = items[rt.rank:: rt.world]
    scored, bad = [], []

    def reject(exc: ValueError) -> None:
        if p.on_bad_sample == "error":
            raise exc
        bad.append(str(exc))

    for batch in _batches(mine):  # a prompt's clips scored together (sizes may differ)
        if rt.stop_requested_local():  # local check: ranks score different numbers of clips
            return {"status": "cancelled", "step": len(scored), "method": "pairs", "out": str(out)}
        read = []
        for prompt, clip in batch:
            try:
                frames = read_clip(clip, p.frames)
                if p.frames and frames.shape[0] < p.frames:
                    raise ValueError(f"Clip {clip} has {frames.shape[0]} frames, pairs.frames={p.frames}.")
                read.append((prompt, clip, frames))
            except ValueError as exc:
                reject(exc)
        for prompt, clip, score in _score(fn, read, reject):
            scored.append({"prompt": prompt, "clip": os.path.relpath(clip, out.parent), "score": score})
    if rt.world > 1:
        from accelerate.utils import gather_object

        scored = gather_object([scored])
        bad = gather_object([bad])
        scored = [s for part in scored for s in part]
        bad = [b for part in bad for b in part]
    pairs = make_pairs(scored, p.strategy, p.min_margin, p.max_pairs_per_prompt)
    if rt.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in pairs), encoding="utf-8")
        tmp.replace(out)
        scores_path = out.with_name(out.name + ".scores.jsonl")
        scores_path.write_text("".join(json.dumps(s) + "\n" for s in scored), encoding="utf-8")
        for msg in bad:
            log.warning("skipped clip: %s", msg)
    rt.barrier()
    if not pairs:
        raise ValueError(f"No preference pairs could be formed from {len(scored)} scored clips "
                         f"({len(bad)} unreadable): each prompt needs >= 2 clips with different scores.")
    return {"status": "finished", "step": len(scored), "out": str(out), "pairs": len(pairs),
            "scored": len(scored), "skipped": len(bad), "method": "pairs",
            **({"skipped_errors": bad[:20]} if bad else {})}
