"""Keyframe positions: the frame index of each keyframe in a clip, with one rule everywhere.

The rule: positions are whole-number frame indices (booleans and fractions are refused), strictly increasing
(keyframe i sits before keyframe i+1: positions pair with keyframe images in order, so sorting them silently
would pair an image with the wrong frame), at least 0 and below MAX_FRAMES, and, once a clip is known, inside it.
A widget or JSON text such as "[0, 8, 16]" parses to the same type; an empty text means "not given".
`every(length, n)` puts a keyframe every n frames, first and last always (n = 0: first and last only).
"""
from __future__ import annotations

import json
import numbers
from collections.abc import Iterator, Sequence

# Longest clip any node of the pack makes (the largest `length` widget): a position beyond it is a typo, and
# checking it here stops an inbetween from trying to allocate a clip of that length.
MAX_FRAMES = 100_000
EXAMPLE = "[0, 8, 16]"


def evenly_spaced(count: int, total: int) -> list[int]:
    """`count` indices spread over 0..total-1, first and last included, unique and sorted (a single index is the
    middle one: the sampling rule of scorers that look at a few frames)."""
    if total <= 0:
        return []
    count = max(1, min(int(count), total))
    if count == 1:
        return [0] if total == 1 else [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


class KeyframePositions(Sequence):
    """Strictly increasing frame indices, one per keyframe. Immutable; compares equal to another instance with
    the same indices; `to_list()` / `to_json()` for outputs."""

    __slots__ = ("_frames",)

    def __init__(self, frames: Sequence[int] = (), name: str = "keyframe_positions"):
        values = list(frames)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{name} must be a JSON list of frame indices such as {EXAMPLE} (whole numbers), "
                             f"got {values!r}.")
        values = [int(v) for v in values]
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"{name} must strictly increase (each keyframe after the previous one, no repeats), "
                             f"got {values}.")
        if values and values[0] < 0:
            raise ValueError(f"{name} are frame indices counted from 0, got {values[0]}.")
        if values and values[-1] >= MAX_FRAMES:
            raise ValueError(f"{name}: frame {values[-1]} is beyond the longest clip the pack makes ({MAX_FRAMES} "
                             f"frames); check the positions, e.g. {EXAMPLE}.")
        self._frames = tuple(values)

    # ---- constructors ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, value, name: str = "keyframe_positions") -> "KeyframePositions | None":
        """A widget / JSON text ("[0, 8, 16]"), a sequence of ints or an instance -> positions; None or blank text
        -> None (not given)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, str):
            if not value.strip():
                return None
            text = value
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, list):
                raise ValueError(f"{name} must be a JSON list of frame indices such as {EXAMPLE}, got {text[:80]!r}.")
        elif not isinstance(value, Sequence):
            raise ValueError(f"{name} must be a JSON list of frame indices such as {EXAMPLE}, got "
                             f"{type(value).__name__}.")
        return cls(value, name)

    @classmethod
    def every(cls, length: int, every: int) -> "KeyframePositions":
        """A keyframe every `every` frames of a `length`-frame clip, first and last always; `every` = 0: the first
        and last frame only."""
        if isinstance(length, bool) or int(length) < 1:
            raise ValueError(f"the clip length must be at least 1 frame, got {length}.")
        if isinstance(every, bool) or int(every) < 0:
            raise ValueError(f"keyframe_every must be >= 0 (0 = first and last frame only), got {every}.")
        length, every = int(length), int(every)
        frames = list(range(0, length, every)) if every > 0 else [0]
        if frames[-1] != length - 1:
            frames.append(length - 1)
        return cls(frames)

    @classmethod
    def spread(cls, count: int, length: int) -> "KeyframePositions":
        """`count` keyframes spread evenly over a `length`-frame clip: one keyframe sits on frame 0, two on the
        first and last frame, more are evenly spaced between them."""
        if count < 1:
            raise ValueError(f"need at least one keyframe, got {count}.")
        if count > length:
            raise ValueError(f"{count} keyframes do not fit a clip of {length} frames: give keyframe_positions "
                             f"explicitly or use fewer keyframes.")
        return cls([0] if count == 1 else evenly_spaced(count, length))

    @classmethod
    def with_gaps(cls, count: int, frames_per_gap: int) -> "KeyframePositions":
        """`count` keyframes with `frames_per_gap` new frames between each two (a clip of (count-1)(n+1)+1)."""
        if isinstance(frames_per_gap, bool) or int(frames_per_gap) < 1:
            raise ValueError(f"frames_per_gap must be >= 1 (new frames between two keyframes), got {frames_per_gap}.")
        return cls([i * (int(frames_per_gap) + 1) for i in range(count)])

    # ---- checks ---------------------------------------------------------------------------------------
    def check(self, length: int | None = None, count: int | None = None, *, whole_clip: bool = False,
              name: str = "keyframe_positions") -> "KeyframePositions":
        """Self, after checking it against a clip of `length` frames (every position inside it), `count`
        keyframes (one position each) and, with `whole_clip`, that the first keyframe is frame 0 and the last one
        (when `length` is known) the clip's last frame."""
        if count is not None and len(self) != count:
            raise ValueError(f"{name}: {len(self)} keyframe positions for {count} keyframes; give one position per "
                             f"keyframe.")
        if length is not None:
            outside = [p for p in self._frames if p >= length]
            if outside:
                raise ValueError(f"{name}: keyframe positions {outside} are outside the clip (frames 0..{length - 1}).")
        if whole_clip and self._frames:
            if self._frames[0] != 0:
                raise ValueError(f"{name} must start at frame 0 (the first keyframe opens the clip), got "
                                 f"{list(self._frames)}.")
            if length is not None and self._frames[-1] != length - 1:
                raise ValueError(f"{name} must end at the clip's last frame ({length - 1}), got {list(self._frames)}.")
        return self

    # ---- sequence and output --------------------------------------------------------------------------
    def __getitem__(self, index):
        return self._frames[index]

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator[int]:
        return iter(self._frames)

    def __eq__(self, other) -> bool:
        return isinstance(other, KeyframePositions) and other._frames == self._frames

    def __hash__(self) -> int:
        return hash(self._frames)

    def __repr__(self) -> str:
        return f"KeyframePositions({list(self._frames)})"

    @property
    def clip_length(self) -> int:
        """Frames of the shortest clip that holds every keyframe (last position + 1)."""
        return self._frames[-1] + 1 if self._frames else 0

    def to_list(self) -> list[int]:
        return list(self._frames)

    def to_json(self) -> str:
        return json.dumps(list(self._frames))
