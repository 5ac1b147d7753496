"""Seam consistency: are the joins between overlapping generation windows invisible?

Long clips are generated in windows (default 64 frames, consecutive windows overlapping by 16). A seam
shows as a transition that stands out from its neighbours: in how much of its change the motion does not
explain, in how far things move (a window that restarts or skips frames jumps in time), or in the frame's overall
colour (a window that starts under other lighting; inside a fast move the per-pixel change hides that, the
frame's mean colour does not, since content moving across the frame keeps it).
Definition: for every transition t -> t+1 (analysis resolution)
    d_t = mean_pixels( valid * |I_t - W(I_t+1)| + (1 - valid) * |I_t - I_t+1| )   (motion-compensated change:
          warping error where the flow is trustworthy, raw change where it is not, so cuts are not hidden)
    m_t = mean_pixels |flow t->t+1|                                                   (how far things move, px)
    c_t = sum_rgb |mean_pixels I_t+1 - mean_pixels I_t|                              (change of the mean colour)
and its excess over its own neighbourhood (the `R` transitions on each side, median, so a seam is judged against
the motion around it rather than the clip's typical motion, which differs between a pan and a still shot)
    e_t = max(0, log((d_t + eps_d) / (median_nb d + eps_d)), log((m_t + eps_m) / (median_nb m + eps_m)),
              log((c_t + eps_c) / (median_nb c + eps_c)))
A seam's zone is its overlap plus the transitions entering and leaving it; its score is
    s_j = 1 / (1 + sum(e_t over the zone))
a sum, not a maximum, so a join's own jump counts even where the clip already has a bigger natural change there.
Value: mean_j s_j, range (0, 1], higher = better (1 = no transition of any zone stands out from its neighbours).
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
EPS = 1e-3  # a floor for the change on near-static clips (mean absolute change, 0..1 pixel values)
MOTION_EPS = 0.1  # px at the analysis size: a floor for the flow magnitude of near-static clips
# A floor for the mean-colour change (summed over RGB, 0..1 values), so the ordinary frame-to-frame drift of a real
# clip's colour does not stand out; chosen on real clips (benchmarks/RESULTS.md, "Reward validity").
COLOUR_EPS = 0.03
R = 2  # transitions on each side that make a transition's neighbourhood


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


def transition_motion(clip: Clip) -> torch.Tensor:
    """m_t per pair (memoised): mean forward-flow magnitude in pixels at the analysis size."""
    def compute():
        m = torch.empty(clip.num_pairs)
        for s, e in clip.chunks(clip.num_pairs, "seam motion", clip.analysis_chunk):
            m[s:e] = clip.flow_chunk(s, e).forward.norm(dim=-1).mean(dim=(1, 2)).cpu()
        return m

    return clip.memo(("transition_motion", clip.flow_method, *clip.analysis_hw), compute)


def transition_colour(clip: Clip) -> torch.Tensor:
    """c_t per pair (memoised): how much the frame's mean colour changes, summed over RGB."""
    def compute():
        means = torch.empty(clip.num_frames, 3)
        for s, e in clip.chunks(clip.num_frames, "seam colour", clip.analysis_chunk):
            means[s:e] = clip.analysis_frames(s, e).mean(dim=(1, 2)).cpu()
        return (means[1:] - means[:-1]).abs().sum(dim=1)

    return clip.memo(("transition_colour", *clip.analysis_hw), compute)


def local_excess(x: torch.Tensor, eps: float, r: int = R) -> torch.Tensor:
    """log((x_t + eps) / (median of the r values on each side of t + eps)), [n] (fewer neighbours at the ends)."""
    n = x.shape[0]
    offsets = torch.cat([torch.arange(-r, 0), torch.arange(1, r + 1)])
    idx = torch.arange(n)[:, None] + offsets[None, :]
    inside = (idx >= 0) & (idx < n)
    nb = torch.where(inside, x[idx.clamp(0, n - 1)], torch.full_like(idx, float("nan"), dtype=x.dtype))
    med = nb.nanquantile(0.5, dim=1)  # the midpoint of the two middle values, not torch.median's lower one
    return torch.log((x + eps) / (med.nan_to_num(0.0) + eps))


@scorer(NAME, RANGE, uses=("flow", "windows"),
        summary="how much the transitions at each window seam stand out from their neighbours (change, motion, colour)")
def score(clip: Clip) -> RewardResult:
    ranges = window_ranges(clip.num_frames, clip.windows)
    if len(ranges) < 2 or clip.num_frames < 3:
        return RewardResult.not_applicable(NAME, "the clip fits in one window: no seams", RANGE, "seam",
                                           {"windows": ranges})
    d, m, c = transition_change(clip), transition_motion(clip), transition_colour(clip)
    excess = torch.stack([local_excess(d, EPS), local_excess(m, MOTION_EPS),
                          local_excess(c, COLOUR_EPS)]).amax(dim=0).clamp(min=0)
    zones = seam_zones(ranges, clip.num_pairs)
    totals = torch.stack([excess[a:b + 1].sum() for a, b in zones])
    values = 1 / (1 + totals)
    positions = torch.tensor([(a + b + 1) / 2 for a, b in zones], dtype=torch.float32)
    worst = [a + int(excess[a:b + 1].argmax()) for a, b in zones]
    details = {"windows": ranges, "seam_pairs": zones, "zone_excess": totals.tolist(), "worst_pair": worst,
               "worst_pair_change": [float(d[t]) for t in worst], "worst_pair_motion_px": [float(m[t]) for t in worst],
               "worst_pair_colour_change": [float(c[t]) for t in worst]}
    return RewardResult(NAME, float(values.mean()), values, positions, "seam", RANGE, details)
