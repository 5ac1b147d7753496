"""Loop-break: penalise near-periodic motion (a clip stuck repeating itself), unless the prompt asks for a loop.

Definition: motion magnitude signals from the shared flow: the mean |flow| of each pair over the whole
frame and over a 4x4 grid of patches (17 signals of length N = T-1). Each signal is linearly detrended,
multiplied by a Hann window and Fourier transformed; power at frequencies k = 2..N/2 (periods from 2
frames up to N/2 frames, i.e. the motion repeats at least twice; DC and the whole-clip trend excluded)
is normalised to sum 1 per signal and averaged over signals (a static patch has no spectrum and is
skipped). Periodicity ratio rho = max / median of that spectrum (peak-to-median). A clip that repeats
every P frames gives a tall peak at k = N/P (rho in the hundreds); random shake gives the white-noise
level, whose expected peak-to-median over M bins is H_M / ln 2 (H_M the harmonic number, ~5 for M = 23).
Value (prompt does not ask for a loop): 1 / max(1, rho / rho0) with rho0 = 2 * H_M / ln 2 (twice the
white-noise level, so unstructured motion is not mistaken for a loop) -> range (0, 1], 1 = no loop. When the prompt asks for one ("loop", "looping", "seamless loop", "cyclic", "repeating", ... or
loop_mode="reward_loops"): 1 - 1 / max(1, rho / rho0), range [0, 1).
per_item: the whole-frame motion magnitude per pair (px at analysis resolution), the signal analysed.
Needs >= 8 pairs (9 frames); a clip without motion is not applicable.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from .context import Clip
from .result import RewardResult
from .scorer import scorer

NAME = "loop_break"
RANGE = (0.0, 1.0)
GRID = 4
MIN_PAIRS = 8
LOOP_MODES = ("auto", "penalise_loops", "reward_loops")
_LOOP_WORDS = re.compile(r"\b(loop|loops|looping|loopable|looped|seamless(ly)? loop\w*|cyclic|cycling|"
                         r"repeating|repeats?|endless(ly)?|boomerang)\b", re.IGNORECASE)


def prompt_wants_loop(prompt: str) -> bool:
    return bool(_LOOP_WORDS.search(prompt or ""))


def motion_signals(clip: Clip) -> torch.Tensor:
    """[N, 1 + GRID^2] mean flow magnitude per pair: whole frame, then patches (memoised)."""
    def compute():
        out = torch.empty(clip.num_pairs, 1 + GRID * GRID)
        for s, e in clip.chunks(clip.num_pairs, "motion signal", clip.analysis_chunk):
            mag = clip.flow_chunk(s, e).forward.norm(dim=-1)[:, None]  # [n,1,h,w]
            out[s:e, 0] = mag.mean(dim=(1, 2, 3)).cpu()
            out[s:e, 1:] = F.adaptive_avg_pool2d(mag, GRID).flatten(1).cpu()
        return out

    return clip.memo(("motion_signals", clip.flow_method, *clip.analysis_hw), compute)


def periodicity(signals: torch.Tensor) -> tuple[float, int, torch.Tensor]:
    """(rho, dominant k, averaged normalised spectrum over k = 2..N/2) for [N, S] signals."""
    N = signals.shape[0]
    x = signals.double()
    t = torch.arange(N, dtype=torch.float64)
    A = torch.stack([torch.ones(N, dtype=torch.float64), t], dim=1)
    coef = torch.linalg.lstsq(A, x).solution
    resid = (x - A @ coef) * torch.hann_window(N, periodic=False, dtype=torch.float64)[:, None]
    power = torch.fft.rfft(resid, dim=0).abs().pow(2)[2:N // 2 + 1]  # k = 2..N/2: 2 <= period <= N/2
    total = power.sum(0)
    keep = total > 1e-12 * max(float(total.max()), 1e-30)
    if not bool(keep.any()):
        return 1.0, 0, torch.zeros(power.shape[0])
    spectrum = (power[:, keep] / total[keep]).mean(1)
    k = int(spectrum.argmax())
    rho = float(spectrum[k] / spectrum.median().clamp(min=1e-12))
    return rho, k + 2, spectrum.float()


def noise_level(num_bins: int) -> float:
    """Expected max/median of `num_bins` i.i.d. exponential powers (white noise): H_M / ln 2."""
    return sum(1.0 / i for i in range(1, num_bins + 1)) / math.log(2)


@scorer(NAME, RANGE, uses=("flow", "prompt"),
        summary="penalises periodic motion (peak-to-median spectral ratio); rewards it when a loop is asked for")
def score(clip: Clip, loop_mode: str = "auto", rho0: float | None = None) -> RewardResult:
    if loop_mode not in LOOP_MODES:
        raise ValueError(f"loop_mode must be one of {LOOP_MODES}, got {loop_mode!r}")
    if clip.num_pairs < MIN_PAIRS:
        return RewardResult.not_applicable(NAME, f"needs at least {MIN_PAIRS + 1} frames", RANGE, "pair")
    signals = motion_signals(clip)
    if float(signals[:, 0].max()) < 1e-3:
        return RewardResult.not_applicable(NAME, "no motion in the clip", RANGE, "pair")
    rho, k, spectrum = periodicity(signals)
    if rho0 is None:
        rho0 = 2 * noise_level(len(spectrum))
    wants = loop_mode == "reward_loops" or (loop_mode == "auto" and prompt_wants_loop(clip.prompt))
    loopiness = 1 - 1 / max(1.0, rho / rho0)
    value = loopiness if wants else 1 - loopiness
    N = clip.num_pairs
    details = {"rho": rho, "rho0": rho0, "dominant_period_frames": N / k if k else None, "wants_loop": wants,
               "spectrum": spectrum.tolist()}
    return RewardResult(NAME, value, signals[:, 0], torch.arange(N) + 0.5, "signal", RANGE, details)
