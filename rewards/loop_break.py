"""Loop-break: penalise a clip stuck repeating itself (it comes back to frames it already showed), unless the
prompt asks for a loop.

Definition: each frame (analysis resolution) is reduced to a 16x16 RGB thumbnail x_t (area average: layout
and colour, not texture); d(s, t) = mean |x_s - x_t| (0..1). The clip's distance at lag L is
    D(L) = mean_t d(t, t + L),  L = 1 .. floor(T/2)        (a repeat is seen at least twice)
A one-shot clip drifts away from where it was: D grows with the lag (or levels off). A clip that repeats
every P frames comes back: D(P) drops well below the largest distance at shorter lags. The return at lag L is
    R(L) = (max_{L' < L} D(L') - D(L)) / (max_{L' < L} D(L') + 0.002)
(0.002, half an 8-bit grey level, keeps near-static clips, whose distances are all noise, from reading as
loops) and the loopiness is
rho = max(0, max_{L >= 2} R(L)) in [0, 1): ~0 for one-shot clips, ~0.5-1 for a clip that restarts or
plays back and forth. This replaced a motion-magnitude periodicity ratio that called short one-shot clips
loops (a smooth rise and fall of the motion over 33 frames looks periodic) while missing real restarts.
Value (prompt does not ask for a loop): 1 - rho, range (0, 1], 1 = no repetition. When the prompt asks for
one ("loop", "looping", "seamless loop", "cyclic", "repeating", ... or loop_mode="reward_loops"): rho, range
[0, 1).
per_item: d(t, t + P) per frame t, P the lag of the strongest return (how closely each frame is repeated one
period later; a signal, not a score). details: rho, the dominant period, D(L).
Not applicable below 9 frames (no lag can be seen twice) or when no frame differs from the others.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from .context import Clip
from .result import RewardResult
from .scorer import scorer

NAME = "loop_break"
RANGE = (0.0, 1.0)
THUMB = 16
MIN_FRAMES = 9
RETURN_FLOOR = 0.002  # mean absolute thumbnail difference (0..1 units) a return is measured against, at least
STATIC = 1e-3        # a clip whose frames never differ by more than this has nothing to repeat
LOOP_MODES = ("auto", "penalise_loops", "reward_loops")
_LOOP_WORDS = re.compile(r"\b(loop|loops|looping|loopable|looped|seamless(ly)? loop\w*|cyclic|cycling|"
                         r"repeating|repeats?|endless(ly)?|boomerang)\b", re.IGNORECASE)


def prompt_wants_loop(prompt: str) -> bool:
    return bool(_LOOP_WORDS.search(prompt or ""))


def thumbnails(clip: Clip) -> torch.Tensor:
    """[T, 3*THUMB^2] area-averaged RGB thumbnails of the analysis frames (memoised)."""
    def compute():
        out = torch.empty(clip.num_frames, 3 * THUMB * THUMB)
        for s, e in clip.chunks(clip.num_frames, "thumbnails", clip.analysis_chunk):
            x = clip.analysis_frames(s, e).permute(0, 3, 1, 2)
            out[s:e] = F.adaptive_avg_pool2d(x, THUMB).flatten(1).float().cpu()
        return out

    return clip.memo(("thumbnails", THUMB, *clip.analysis_hw), compute)


def lag_distances(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D(L) for L = 1..T//2, the [T,T] pairwise distance matrix) of [T, d] thumbnails."""
    dist = torch.cdist(x.double(), x.double(), p=1) / x.shape[1]
    T = x.shape[0]
    return torch.stack([dist.diagonal(L).mean() for L in range(1, T // 2 + 1)]), dist


def loopiness(D: torch.Tensor) -> tuple[float, int]:
    """(rho, the lag of the strongest return; 0 when there is none) from D(L), L = 1..len(D)."""
    best, lag = 0.0, 0
    running = D.cummax(0).values
    for L in range(2, len(D) + 1):
        prev = float(running[L - 2])
        r = (prev - float(D[L - 1])) / (prev + RETURN_FLOOR)
        if r > best:
            best, lag = r, L
    return best, lag


@scorer(NAME, RANGE, uses=("prompt",),
        summary="penalises a clip that comes back to frames it already showed; rewards it when a loop is asked for")
def score(clip: Clip, loop_mode: str = "auto") -> RewardResult:
    if loop_mode not in LOOP_MODES:
        raise ValueError(f"loop_mode must be one of {LOOP_MODES}, got {loop_mode!r}")
    T = clip.num_frames
    if T < MIN_FRAMES:
        return RewardResult.not_applicable(NAME, f"needs at least {MIN_FRAMES} frames to see a repeat twice", RANGE,
                                           "signal")
    D, dist = lag_distances(thumbnails(clip))
    if float(D.max()) < STATIC:
        return RewardResult.not_applicable(NAME, "no frame differs from the others: nothing to repeat", RANGE,
                                           "signal")
    rho, lag = loopiness(D)
    wants = loop_mode == "reward_loops" or (loop_mode == "auto" and prompt_wants_loop(clip.prompt))
    value = rho if wants else 1 - rho
    P = lag or 1
    per = dist.diagonal(P).float()
    details = {"rho": rho, "dominant_period_frames": lag or None, "wants_loop": wants,
               "lag_distance": D.float().tolist()}
    return RewardResult(NAME, value, per, torch.arange(T - P, dtype=torch.float32), "signal", RANGE, details)
