"""Flow smoothness: is the motion field coherent in space and steady in time?

Uniform zoom has constant divergence and camera roll constant curl, so their *mean* says nothing about
quality; what betrays warping artefacts and boiling textures is how divergence and curl *vary*, and what
betrays shake, stutter and sudden speed changes is how the velocity itself changes along the motion
("consistent velocity profiles"). Definition, per pair t -> t+1 at the analysis resolution, on the forward
flow F_t normalised by its own mean magnitude (f = F_t / (mean_valid |F_t| + 0.5 px), so a fast pan and a
slow pan of the same scene score alike):
    div = df_x/dx + df_y/dy,  curl = df_y/dx - df_x/dy          (Sobel derivatives)
    S_t = L^2 * mean_valid( |grad div| + |grad curl| )           spatial variation
    V_t = L   * mean_track( |div_t+1(x + F_t) - div_t| + |curl_t+1(x + F_t) - curl_t| )   temporal variation
    A_t = mean_track |F_t+1(x + F_t) - F_t(x)| / (mean_valid |F_t| / 2 + mean_valid |F_t+1| / 2 + 0.5 px)
                                                                   acceleration along the motion, per speed
with L = `length_scale` (8 px: structure finer than this counts as roughness) and the fields of pair t+1
read where frame t's pixels land. `valid` = forward-backward consistent pixels, eroded by 2 px so that
motion boundaries (legitimate discontinuities) and occlusions are excluded; `track` = valid pixels that
land on valid pixels of pair t+1. A steady pan or zoom has A ~ 0; a shaken camera (a new offset every frame),
a held-then-skipped frame, or a reversal has A ~ 1-2. The last pair has no temporal terms.
    C_t = |m_t+2 - m_t| / ((m_t + m_t+1 + m_t+2) / 3 + 0.1 px)   cadence: speed two pairs apart, per speed
with m_t = mean_valid |F_t| (no floor); the last two pairs have none. Many open-model clips show each frame
twice (speeds alternate ~0 and v): A is high on every pair of such a clip, and a hold moved into it (hold, hold,
skip, skip) has *lower* A than the original, while the speed two pairs apart stays steady in any regular cadence,
smooth or 2:1, and jumps where a hold or skip breaks it. Its floor is 0.1 px (not 0.5) so that a hold on a slow
shot still counts.
    U_t = 1 - mean(consistent_t)                                 motion that cannot be followed
the share of frame t's pixels whose forward and backward flows disagree (before erosion): occlusions give a
little of it in every clip, shuffled or cut frames most of it. Without U, pairs the flow cannot follow left
S, V and A with nothing to average over and read as perfectly smooth. Without A (before this term existed) a
clip shaken by a different whole-frame shift every frame scored *smoother* than the original: a shift has no
divergence or curl and enlarges the magnitude the fields are divided by.
Value: mean_t 1 / (1 + S_t + V_t + 2 A_t + U_t + 2 C_t), range (0, 1], higher = better (1 = piecewise-affine,
steady, trackable motion). per_item: per pair. details: mean S, V, A, U and C.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .context import Clip, sobel_xy
from .result import RewardResult
from .scorer import scorer

NAME = "flow_smoothness"
RANGE = (0.0, 1.0)
LENGTH_SCALE = 8.0
MIN_MAGNITUDE = 0.5  # px: keeps near-static clips from dividing by ~0
EROSION = 2
# Weights of the acceleration and untracked terms, chosen on a few real AI clips (benchmarks/reward_validity.py):
# acceleration 1 still let some stuttered copies through, 2 did not; untracked 1 was the smallest weight that put
# every shuffled copy of those clips below its original.
ACCEL_WEIGHT = 2.0
UNTRACKED_WEIGHT = 1.0
# Cadence term: weight and floor chosen on 166 real AI clips (benchmarks/reward_validity.py on the harness's clips
# and on the even positions of benchmarks/blind_clips.txt), where stutter on 2:1-cadence clips was the loss to fix.
CADENCE_WEIGHT = 2.0
CADENCE_FLOOR = 0.1  # px


def div_curl(flow: torch.Tensor) -> torch.Tensor:
    """[n,h,w,2] -> [n,2,h,w] (divergence, curl)."""
    dx, dy = sobel_xy(flow.permute(0, 3, 1, 2))  # each [n,2(u,v),h,w]
    return torch.stack([dx[:, 0] + dy[:, 1], dx[:, 1] - dy[:, 0]], dim=1)


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """[n,h,w] 0/1 -> eroded (a pixel stays valid only if its whole (2r+1)^2 neighbourhood is)."""
    if radius <= 0:
        return mask
    return 1 - F.max_pool2d((1 - mask)[:, None], 2 * radius + 1, stride=1, padding=radius)[:, 0]


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (x * m).sum(dim=(-2, -1)) / m.sum(dim=(-2, -1)).clamp(min=1)


@scorer(NAME, RANGE, uses=("flow",),
        summary="1/(1 + spatial and temporal variation of curl and divergence + acceleration along the motion + "
                "untracked share + cadence breaks), magnitude-normalised")
def score(clip: Clip, length_scale: float = LENGTH_SCALE) -> RewardResult:
    if clip.num_frames < 2:
        return RewardResult.not_applicable(NAME, "needs at least 2 frames", RANGE, "pair")
    from ..motion.warp import backward_warp

    n = clip.num_pairs
    spatial = torch.zeros(n)
    temporal = torch.zeros(n)
    accel = torch.zeros(n)
    untracked = torch.zeros(n)
    valid_frac = torch.zeros(n)
    speed_px = torch.zeros(n)  # m_t, without the floor
    for s, e in clip.chunks(n, "flow smoothness", clip.analysis_chunk):
        e1 = min(e + 1, n)  # one extra pair for the temporal terms of the chunk's last pair
        fwd = clip.flow_chunk(s, e1).forward
        consistent = clip.valid_mask(s, e1)
        valid = erode(consistent, EROSION)
        mag = _masked_mean(torch.hypot(fwd[..., 0], fwd[..., 1]), valid) + MIN_MAGNITUDE
        dc = div_curl(fwd / mag[:, None, None, None])  # [m,2,h,w]
        gx, gy = sobel_xy(dc)
        grad = (gx * gx + gy * gy).sqrt().sum(dim=1)  # |grad div| + |grad curl|
        k = e - s
        speed_px[s:e] = (mag[:k] - MIN_MAGNITUDE).cpu()
        spatial[s:e] = (length_scale ** 2 * _masked_mean(grad[:k], valid[:k])).cpu()
        valid_frac[s:e] = valid[:k].mean(dim=(1, 2)).cpu()
        untracked[s:e] = (1 - consistent[:k].mean(dim=(1, 2))).cpu()
        if dc.shape[0] > 1:  # temporal terms for pairs s .. e1-2 (the clip's last pair has none)
            step = fwd[:-1]
            # pair t+1's fields, velocity and validity read where frame t's pixels land
            nxt = backward_warp(torch.cat([dc[1:].permute(0, 2, 3, 1), fwd[1:], valid[1:, ..., None]], -1), step)
            track = valid[:-1] * (nxt[..., 4] > 0.5)
            tv = length_scale * _masked_mean((nxt[..., :2].permute(0, 3, 1, 2) - dc[:-1]).abs().sum(dim=1), track)
            speed = (mag[:-1] + mag[1:]) / 2  # each already includes MIN_MAGNITUDE
            dv = nxt[..., 2:4] - step
            # hypot: norm(dim=-1) over a 2-vector is several times slower on CPU
            ta = _masked_mean(torch.hypot(dv[..., 0], dv[..., 1]), track) / speed
            temporal[s:s + tv.shape[0]] = tv.cpu()
            accel[s:s + ta.shape[0]] = ta.cpu()
    cadence = torch.zeros(n)
    if n > 2:
        local = (speed_px[2:] + speed_px[1:-1] + speed_px[:-2]) / 3 + CADENCE_FLOOR
        cadence[:-2] = (speed_px[2:] - speed_px[:-2]).abs() / local
    values = 1 / (1 + spatial + temporal + ACCEL_WEIGHT * accel + UNTRACKED_WEIGHT * untracked
                  + CADENCE_WEIGHT * cadence)
    details = {"spatial_variation_mean": float(spatial.mean()), "temporal_variation_mean": float(temporal.mean()),
               "acceleration_mean": float(accel.mean()), "untracked_mean": float(untracked.mean()),
               "cadence_mean": float(cadence.mean()),
               "valid_fraction_mean": float(valid_frac.mean()),
               "length_scale_px": length_scale, "analysis_size": list(clip.analysis_hw)}
    return RewardResult(NAME, float(values.mean()), values, torch.arange(n) + 0.5, "pair", RANGE, details)
