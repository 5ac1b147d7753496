"""Framing: composition cues a camera operator checks, per sampled frame.

Saliency proxy: luma gradient energy (Sobel magnitude, kornia) blurred with a Gaussian of 2% of the frame
diagonal; the "subject" is the top 5% of that map (no saliency model weights are needed or shipped).
Components, each in [0, 1]:
  - thirds: exp(-d^2 / (2 * 0.1^2)), d = distance (in frame widths/heights) from the subject's
    energy-weighted centroid to the nearest rule-of-thirds intersection;
  - safe areas: mean of the subject's share inside the action-safe (93%) and title-safe (90%) boxes
    (centred, per side) — a subject cut by the frame edge scores low;
  - horizon: the dominant near-horizontal line (OpenCV Hough on Canny edges, within 30 deg of horizontal)
    per frame; the frame's score is exp(-|tilt - median tilt| / 2 deg), i.e. tilt *stability* across the
    clip (frames without such a line, or clips with fewer than 2 such frames, skip this component).
Value: mean over sampled frames of the mean of the available components, range [0, 1], higher = better.
per_item: per sampled frame. details: component means and per-frame tilts.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .context import Clip, gray, nan_mean, thread_map
from .result import RewardResult
from .scorer import scorer

NAME = "framing"
RANGE = (0.0, 1.0)
NUM_SAMPLES = 16
THIRDS_SIGMA = 0.1
ACTION_SAFE, TITLE_SAFE = 0.93, 0.90
SUBJECT_QUANTILE = 0.95
TILT_SCALE_DEG = 2.0
MAX_HORIZON_TILT = 30.0


def energy_maps(frames: torch.Tensor) -> torch.Tensor:
    """[n,h,w] blurred gradient energy, each map summing to 1."""
    import kornia

    g = kornia.filters.sobel(gray(frames))
    h, w = g.shape[-2:]
    sigma = 0.02 * math.hypot(h, w)
    k = 2 * int(3 * sigma) + 1
    e = kornia.filters.gaussian_blur2d(g, (k, k), (sigma, sigma))[:, 0]
    return e / e.sum(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def subject_masses(energy: torch.Tensor) -> torch.Tensor:
    """Energy restricted to the top (1 - SUBJECT_QUANTILE) pixels of each map, renormalised."""
    flat = energy.flatten(1)
    thr = torch.quantile(flat, SUBJECT_QUANTILE, dim=1)
    mass = energy * (energy >= thr[:, None, None])
    return mass / mass.sum(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def thirds_scores(mass: torch.Tensor) -> torch.Tensor:
    n, h, w = mass.shape
    ys = (torch.arange(h, device=mass.device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=mass.device, dtype=torch.float32) + 0.5) / w
    cy = (mass.sum(2) * ys).sum(1)
    cx = (mass.sum(1) * xs).sum(1)
    pts = torch.tensor([1 / 3, 2 / 3], device=mass.device)
    dx = (cx[:, None] - pts).abs().min(1).values
    dy = (cy[:, None] - pts).abs().min(1).values
    return torch.exp(-(dx ** 2 + dy ** 2) / (2 * THIRDS_SIGMA ** 2))


def safe_scores(mass: torch.Tensor) -> torch.Tensor:
    n, h, w = mass.shape

    def inside(frac):
        my, mx = round(h * (1 - frac) / 2), round(w * (1 - frac) / 2)
        return mass[:, my:h - my, mx:w - mx].sum(dim=(1, 2))

    return (inside(ACTION_SAFE) + inside(TITLE_SAFE)) / 2


def horizon_tilts(edges: torch.Tensor) -> list[float | None]:
    """Tilt in degrees (positive = clockwise) of the strongest near-horizontal Hough line per edge map.
    OpenCV's Hough has no batched torch equivalent in our dependencies; the votes are only accumulated for
    angles within MAX_HORIZON_TILT of horizontal (the only lines used: a third of the full half-turn's work,
    same lines), frames in a thread pool (OpenCV releases the GIL)."""
    import cv2

    step = np.pi / 360
    # theta = 90 deg is a horizontal line; the range's ends lie on the accumulator's angle grid.
    lo = (90.0 - MAX_HORIZON_TILT) / 180 * np.pi
    hi = (90.0 + MAX_HORIZON_TILT) / 180 * np.pi

    def one(e: np.ndarray) -> float | None:
        img = (e > 0.5).astype(np.uint8) * 255
        threshold = max(20, int(0.15 * img.shape[1]))
        lines = cv2.HoughLines(img, 1, step, threshold, min_theta=lo, max_theta=hi + step / 2)
        if lines is None:
            return None
        for rho_theta in lines[:, 0]:  # sorted by votes
            deg = math.degrees(float(rho_theta[1])) - 90.0
            if abs(deg) <= MAX_HORIZON_TILT:
                return deg
        return None

    return thread_map(one, list(edges.cpu().numpy()))


@scorer(NAME, RANGE, summary="rule of thirds, safe-area occupancy and horizon-tilt stability")
def score(clip: Clip, num_samples: int = NUM_SAMPLES) -> RewardResult:
    idx = clip.sample_indices(num_samples)
    mass = subject_masses(energy_maps(clip.analysis_frames_at(idx)))
    thirds = thirds_scores(mass).cpu()
    safe = safe_scores(mass).cpu()
    tilts = horizon_tilts(clip.edges_at(idx))
    have = [t for t in tilts if t is not None]
    horizon = torch.full((len(idx),), float("nan"))
    if len(have) >= 2:
        med = float(np.median(have))
        for i, t in enumerate(tilts):
            if t is not None:
                horizon[i] = math.exp(-abs(t - med) / TILT_SCALE_DEG)
    comps = torch.stack([thirds, safe, horizon], dim=1)
    per_frame = torch.tensor([nan_mean(row) for row in comps])
    details = {"thirds_mean": float(thirds.mean()), "safe_area_mean": float(safe.mean()),
               "horizon_stability_mean": nan_mean(horizon), "tilts_deg": tilts, "sampled_frames": idx}
    return RewardResult(NAME, float(per_frame.mean()), per_frame, torch.tensor(idx, dtype=torch.float32), "sample",
                        RANGE, details)
