"""Seam consistency: are the joins between overlapping generation windows invisible?

Long clips are generated in windows (default 64 frames, consecutive windows overlapping by 16). A seam
shows as a transition that is much less explainable by motion than the clip's ordinary transitions.
Definition: for every transition t -> t+1 (analysis resolution) a motion-compensated change
    d_t = mean_pixels( valid * |I_t - W(I_t+1)| + (1 - valid) * |I_t - I_t+1| )
(warping error where the flow is trustworthy, raw change where it is not, so cuts are not hidden).
A seam's zone is its overlap plus the transitions entering and leaving it; its score is
    s_j = min(1, median(d over transitions outside every zone) / max(d over the zone))
Value: mean_j s_j, range (0, 1], higher = better (1 = no seam transition worse than a typical one).
per_item: one per seam, at the zone's centre. Windows: (window, overlap) or explicit [start, end) frame
ranges (as Window Split produces; (window, overlap) is planned the same way, the last window aligned to
the clip's end); not applicable when the clip fits in one window.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .context import Clip
from .result import RewardResult
from .scorer import scorer

NAME = "seam_consistency"
RANGE = (0.0, 1.0)
WINDOW, OVERLAP = 64, 16
EPS = 1e-3  # a floor for the baseline change on near-static clips


def window_ranges(num_frames: int, windows=None) -> list[tuple[int, int]]:
    """[start, end) ranges from None (64/16), a (window, overlap) pair, a dict, a motion.windows.Windows, or
    explicit ranges."""
    if windows is None:
        windows = (WINDOW, OVERLAP)
    if hasattr(windows, "ranges"):  # motion.windows.Windows (the Window Split node's REWARDLOOP_WINDOWS)
        windows = windows.ranges
    if isinstance(windows, dict):
        if "ranges" in windows:
            windows = windows["ranges"]
        else:
            windows = (windows.get("window", WINDOW), windows.get("overlap", OVERLAP))
    if isinstance(windows, Sequence) and len(windows) == 2 and all(isinstance(v, int) for v in windows):
        from ..motion.windows import window_ranges as plan  # the same plan Window Split uses

        return plan(num_frames, int(windows[0]), int(windows[1]))
    ranges = [(int(a), int(b)) for a, b in windows]
    for (a0, b0), (a1, b1) in zip(ranges, ranges[1:]):
        if not (a0 < a1 <= b0 < b1 or b0 == a1):
            raise ValueError(f"window ranges must be increasing and overlap or abut: {(a0, b0)} then {(a1, b1)}")
    if ranges and (ranges[0][0] < 0 or ranges[-1][1] > num_frames):
        raise ValueError(f"window ranges {ranges[0]}..{ranges[-1]} exceed the clip's {num_frames} frames")
    return ranges


def seam_zones(ranges: list[tuple[int, int]], num_pairs: int) -> list[tuple[int, int]]:
    """Pair-index zones [first, last] for each join: overlap frames [a1, b0) -> pairs a1-1 .. b0-1."""
    zones = []
    for (_, b0), (a1, _) in zip(ranges, ranges[1:]):
        first, last = max(0, a1 - 1), min(num_pairs - 1, max(a1, b0) - 1)
        zones.append((first, last))
    return zones


def transition_change(clip: Clip) -> torch.Tensor:
    """d_t per pair (memoised): motion-compensated mean absolute change."""
    def compute():
        d = torch.empty(clip.num_pairs)
        for s, e in clip.chunks(clip.num_pairs, "seam changes", clip.analysis_chunk):
            ref, nxt = clip.analysis_frames(s, e), clip.analysis_frames(s + 1, e + 1)
            m = clip.valid_mask(s, e)[..., None]
            diff = m * (ref - clip.warped_next(s, e)).abs() + (1 - m) * (ref - nxt).abs()
            d[s:e] = diff.mean(dim=(1, 2, 3)).cpu()
        return d

    return clip.memo(("transition_change", clip.flow_method, *clip.analysis_hw), compute)


@scorer(NAME, RANGE, uses=("flow", "windows"), summary="typical transition change / worst change at each window seam")
def score(clip: Clip) -> RewardResult:
    ranges = window_ranges(clip.num_frames, clip.windows)
    if len(ranges) < 2 or clip.num_frames < 3:
        return RewardResult.not_applicable(NAME, "the clip fits in one window: no seams", RANGE, "seam",
                                           {"windows": ranges})
    d = transition_change(clip)
    zones = seam_zones(ranges, clip.num_pairs)
    in_zone = torch.zeros(clip.num_pairs, dtype=torch.bool)
    for a, b in zones:
        in_zone[a:b + 1] = True
    outside = d[~in_zone] if bool((~in_zone).any()) else d
    baseline = float(outside.median()) + EPS
    worst = torch.tensor([float(d[a:b + 1].max()) + EPS for a, b in zones])
    values = (baseline / worst).clamp(max=1.0)
    positions = torch.tensor([(a + b + 1) / 2 for a, b in zones], dtype=torch.float32)
    details = {"windows": ranges, "seam_pairs": zones, "baseline_change": baseline,
               "worst_change": worst.tolist()}
    return RewardResult(NAME, float(values.mean()), values, positions, "seam", RANGE, details)
