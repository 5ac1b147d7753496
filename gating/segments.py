"""Per-segment gating helpers: which frames each segment covers, and joining gated segments back into one clip.

Keyframe-then-inbetween clips are made of segments between consecutive keyframes; consecutive segments share
their boundary keyframe (segment i covers keyframes i and i+1), so a segment can be gated, and re-rolled, against
both of its anchors without touching its neighbours.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..common.keyframes import KeyframePositions


def segment_ranges(num_frames: int, every: int | None = None, keyframes: Sequence[int] | None = None,
                   segments: int | None = None) -> list[tuple[int, int]]:
    """Half-open frame ranges (start, stop), one per segment, sharing boundary frames: with 33 frames and a
    keyframe every 8: (0, 9), (8, 17), (16, 25), (24, 33). Give exactly one of `every` (a segment length of at
    least 1 frame: KeyframePositions.every), `keyframes` (positions from 0 to num_frames - 1) or `segments` (split
    as evenly as possible)."""
    if sum(x is not None for x in (every, keyframes, segments)) != 1:
        raise ValueError("give exactly one of every, keyframes or segments")
    if num_frames < 2:
        raise ValueError(f"a clip with segments needs at least 2 frames, got {num_frames}")
    if segments is not None:
        if not 1 <= segments <= num_frames - 1:
            raise ValueError(f"{num_frames} frames can be split into 1..{num_frames - 1} segments, got {segments}")
        keys = KeyframePositions.spread(segments + 1, num_frames)
    elif every is not None:
        if every < 1:  # 0 means "first and last only" for keyframes; as a segment length it is a mistake
            raise ValueError(f"segment length `every` must be >= 1 frame (for one segment use segments=1), got {every}")
        keys = KeyframePositions.every(num_frames, every)
    else:
        keys = KeyframePositions.parse(list(keyframes), "keyframes")
        if len(keys) < 2:
            raise ValueError(f"keyframes must hold at least the first and the last frame, got {keys.to_list()}")
        keys.check(num_frames, whole_clip=True, name="keyframes")
    return [(a, b + 1) for a, b in zip(keys, keys[1:])]


def join_segments(segments: Sequence[torch.Tensor], overlap: int = 1) -> torch.Tensor:
    """One clip from consecutive segments [T_i, ...] whose first `overlap` frames repeat the previous segment's
    last ones (the shared keyframe). The output is preallocated once (no growing concatenation)."""
    if not segments:
        raise ValueError("no segments to join")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    first = segments[0]
    for i, seg in enumerate(segments):
        if seg.shape[1:] != first.shape[1:]:
            raise ValueError(f"segment {i + 1} has frame shape {tuple(seg.shape[1:])}, segment 1 has "
                             f"{tuple(first.shape[1:])}: every segment must have the same size and channels")
        if i > 0 and seg.shape[0] <= overlap:
            raise ValueError(f"segment {i + 1} has {seg.shape[0]} frame(s), not more than the overlap ({overlap})")
    total = first.shape[0] + sum(s.shape[0] - overlap for s in segments[1:])
    out = torch.empty((total, *first.shape[1:]), dtype=first.dtype, device=first.device)
    pos = 0
    for i, seg in enumerate(segments):
        part = seg if i == 0 else seg[overlap:]
        out[pos:pos + part.shape[0]] = part.to(device=out.device, dtype=out.dtype)
        pos += part.shape[0]
    return out


def summarize_logs(logs: Sequence[dict | None]) -> dict:
    """Clip-level view of per-segment retry loops: a clip passes when every gated segment passed. Segments without
    a log (not gated) count as passed and are marked so."""
    segments = []
    for i, log in enumerate(logs):
        if log is None:
            segments.append({"segment": i, "gated": False, "passed": True})
            continue
        segments.append({"segment": i, "gated": True, "passed": bool(log.get("passed")),
                         "chosen_attempt": log.get("chosen_attempt"), "attempts_run": log.get("attempts_run"),
                         "best_reward": log.get("best_reward"), "seconds": log.get("total_seconds")})
    gated = [s for s in segments if s["gated"]]
    return {"segments": segments, "all_passed": all(s["passed"] for s in segments),
            "failed_segments": [s["segment"] for s in segments if not s["passed"]],
            "total_attempts": sum(s["attempts_run"] or 0 for s in gated),
            "total_seconds": round(sum(s["seconds"] or 0.0 for s in gated), 6)}
