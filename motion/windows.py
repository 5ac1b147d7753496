"""Long clips as overlapping windows: split, process each window, merge back with seam blending.

Windows are (start, end) frame-index pairs, end exclusive, so a seam reward can score exactly the
frames two windows share (`seams`). Merging crossfades linearly over each overlap, which removes the
hard cut a plain concatenation would leave where two independently generated windows disagree.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

_CHUNK_PIXELS = 8 * 512 * 512  # shared frames blended per step: bounds the float32 temporaries


@dataclass
class Windows:
    """A clip split into windows: `clips[i]` holds frames `ranges[i][0]:ranges[i][1]` of a clip of
    `length` frames."""

    clips: list[torch.Tensor]
    ranges: list[tuple[int, int]]
    length: int

    def seams(self) -> list[tuple[int, int]]:
        return seams(self.ranges)


def window_ranges(length: int, window: int = 64, overlap: int = 16) -> list[tuple[int, int]]:
    """Windows of `window` frames stepping by window - overlap; the last one is aligned to the clip's end
    (so every window is full length when the clip is at least one window long; the last overlap can then
    be larger than `overlap`). A clip shorter than one window is a single window."""
    if length < 1:
        raise ValueError(f"Cannot split a clip of {length} frames.")
    if window < 2:
        raise ValueError(f"window must be >= 2 frames, got {window}.")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got overlap={overlap}, window={window}.")
    if length <= window:
        return [(0, length)]
    step = window - overlap
    starts = list(range(0, length - window + 1, step))
    if starts[-1] + window < length:
        starts.append(length - window)
    return [(s, s + window) for s in starts]


def seams(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Frame ranges (start, end exclusive) shared by consecutive windows."""
    return [(b[0], a[1]) for a, b in zip(ranges, ranges[1:]) if b[0] < a[1]]


def split_windows(frames: torch.Tensor, window: int = 64, overlap: int = 16) -> Windows:
    if frames.ndim != 4:
        raise ValueError(f"Expected frames [T,H,W,C], got shape {tuple(frames.shape)}.")
    ranges = window_ranges(frames.shape[0], window, overlap)
    return Windows([frames[s:e] for s, e in ranges], ranges, frames.shape[0])


def merge_windows(clips: list[torch.Tensor], ranges: list[tuple[int, int]], length: int | None = None) -> torch.Tensor:
    """Inverse of split_windows for processed windows: frames covered by one window are copied, frames in
    an overlap are a linear crossfade from the earlier window to the later one (weights (n-j)/(n+1) and
    (j+1)/(n+1) over an n-frame overlap, so both windows contribute at every shared frame). Memory: the output
    plus a few frames."""
    if len(clips) != len(ranges) or not clips:
        raise ValueError(f"Got {len(clips)} windows for {len(ranges)} ranges: they must match and be non-empty.")
    shape = clips[0].shape[1:]
    for c, (s, e) in zip(clips, ranges):
        if c.ndim != 4 or c.shape[1:] != shape:
            raise ValueError("All windows must be frame batches [t,H,W,C] of the same frame size.")
        if c.shape[0] != e - s:
            raise ValueError(f"Window for frames {s}..{e - 1} has {c.shape[0]} frames, expected {e - s}.")
    for a, b in zip(ranges, ranges[1:]):
        if b[0] < a[0] or b[1] < a[1] or b[0] > a[1]:
            raise ValueError(f"Windows {a} and {b} must be in order and leave no gap between them.")
    if ranges[0][0] != 0:
        raise ValueError("The first window must start at frame 0.")
    length = ranges[-1][1] if length is None else length
    if ranges[-1][1] != length:
        raise ValueError(f"The windows end at frame {ranges[-1][1]}, but the clip has {length} frames.")

    weights = []
    for i, (s, e) in enumerate(ranges):
        w = torch.ones(e - s)
        if i > 0 and ranges[i - 1][1] > s:  # ramp up over the overlap with the previous window
            n = ranges[i - 1][1] - s
            w[:n] = torch.arange(1, n + 1) / (n + 1)
        if i + 1 < len(ranges) and ranges[i + 1][0] < e:  # ramp down over the overlap with the next one
            n = e - ranges[i + 1][0]
            w[e - s - n:] = torch.minimum(w[e - s - n:], torch.arange(n, 0, -1) / (n + 1))
        weights.append(w)

    # The output is the only full-size allocation: frames one window covers are copied straight in, shared
    # frames are blended a few at a time (a float32 sum of the whole clip plus its normalised copy needed about 3x
    # the clip's memory; bench_motion.py --window-merge measures the merge).
    out = torch.empty(length, *shape, dtype=clips[0].dtype, device=clips[0].device)
    covering = [[i for i, (s, e) in enumerate(ranges) if s <= t < e] for t in range(length)]
    chunk = max(1, _CHUNK_PIXELS // max(1, shape[0] * shape[1]))
    t = 0
    while t < length:
        owners = covering[t]
        stop = t + 1
        while stop < length and covering[stop] == owners and (len(owners) == 1 or stop - t < chunk):
            stop += 1
        if len(owners) == 1:
            i = owners[0]
            out[t:stop] = clips[i][t - ranges[i][0]:stop - ranges[i][0]]
        else:
            acc = torch.zeros(stop - t, *shape, dtype=torch.float32, device=out.device)
            total = torch.zeros(stop - t)
            for i in owners:
                s = ranges[i][0]
                w = weights[i][t - s:stop - s]
                acc += clips[i][t - s:stop - s].float() * w.to(acc.device)[:, None, None, None]
                total += w
            out[t:stop] = (acc / total.to(acc.device)[:, None, None, None]).to(out.dtype)
        t = stop
    return out
