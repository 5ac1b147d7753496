"""Flow-based inbetweening: keyframes [K,H,W,C] -> a full clip with the keyframes at their positions,
copied bit-exact, and the frames between them synthesised.

Methods
    crossfade   (1-t) I0 + t I1: the baseline every other method must beat.
    naive_flow  bidirectional backward warping with linearly scaled flows, F_t0 ~ -t F01(x),
                F_t1 ~ -(1-t) F10(x), blended (1-t, t). No occlusion reasoning: ghosts at motion edges.
    flow        ours, occlusion-aware: intermediate flows by "flow reversal" (forward-splat -t F01 from
                frame 0 and -(1-t) F10 from frame 1 to where each pixel is at time t; Xu et al. 2019), with
                softmax-splatting weights (Niklaus & Liu 2020) from photometric consistency and the
                forward-backward occlusion mask, so an occluder wins over what it hides; holes filled from
                the linear estimate; frames blended with visibility weights (a surface hidden in one
                keyframe is taken from the other).

Flow convention: motion.flow (flow src->dst, backward_warp(dst, flow) ~ src).
All intermediate frames of all gaps are computed as one batch (in chunks to bound memory).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .flow import METHODS as FLOW_METHODS, FlowPair, bidirectional_flow
from .warp import backward_warp, forward_splat

METHODS = ("flow", "naive_flow", "crossfade")
DEFAULT_FLOW_METHOD = "dis_fine"  # flows are computed once per keyframe pair, so accuracy beats speed
MAX_PIXELS = 4096 * 4096
_CHUNK_PIXELS = 16 * 512 * 512  # intermediate frames per chunk scale with resolution


def keyframe_positions(num_keyframes: int, frames_per_gap: int) -> list[int]:
    """Clip indices of the keyframes when every gap gets `frames_per_gap` new frames."""
    if num_keyframes < 2:
        raise ValueError(f"Inbetweening needs at least 2 keyframes, got {num_keyframes}.")
    if int(frames_per_gap) < 1:
        raise ValueError(f"frames_per_gap must be >= 1 (new frames between two keyframes), got {frames_per_gap}.")
    return [i * (int(frames_per_gap) + 1) for i in range(num_keyframes)]


def positions_for_length(num_keyframes: int, length: int) -> list[int]:
    """Keyframe positions spread evenly over a clip of `length` frames (first at 0, last at length-1)."""
    if num_keyframes < 2:
        raise ValueError(f"Inbetweening needs at least 2 keyframes, got {num_keyframes}.")
    if length < num_keyframes:
        raise ValueError(f"A clip of {length} frames cannot hold {num_keyframes} keyframes.")
    pos = [round(i * (length - 1) / (num_keyframes - 1)) for i in range(num_keyframes)]
    return pos


def inbetween(keyframes, frames_per_gap: int | None = None, method: str = "flow",
              flow_method: str = DEFAULT_FLOW_METHOD, positions: Sequence[int] | None = None,
              flows: FlowPair | None = None, progress=None) -> torch.Tensor:
    """Full clip [T,H,W,C] from keyframes [K,H,W,C] (or a list of [H,W,C] / [1,H,W,C] images).

    Give either `frames_per_gap` (new frames between consecutive keyframes; T = (K-1)(n+1)+1) or explicit
    strictly increasing `positions` starting at 0 (uneven gaps allowed; T = positions[-1] + 1). Output
    frames at the keyframe positions are exact copies of the keyframes. `flows` reuses flows already
    computed between consecutive keyframes (forward [K-1], backward [K-1]). `progress(done, total)` is
    called after each chunk of synthesised frames (the node layer hooks ComfyUI's progress/cancel in)."""
    keys = _stack_keyframes(keyframes)
    K, H, W, C = keys.shape
    if method not in METHODS:
        raise ValueError(f"Unknown inbetween method '{method}'. Choose one of: {', '.join(METHODS)}.")
    if method != "crossfade" and flow_method not in FLOW_METHODS:
        raise ValueError(f"Unknown flow method '{flow_method}'. Choose one of: {', '.join(FLOW_METHODS)}.")
    pos = _positions(K, frames_per_gap, positions)
    T = pos[-1] + 1
    out = torch.empty(T, H, W, C, dtype=keys.dtype, device=keys.device)
    out[pos] = keys

    # (gap, t) for every frame to synthesise, in clip order.
    gap_of, t_of, index = [], [], []
    for g in range(K - 1):
        span = pos[g + 1] - pos[g]
        for j in range(1, span):
            gap_of.append(g)
            t_of.append(j / span)
            index.append(pos[g] + j)
    if not index:
        return out
    gap_of = torch.tensor(gap_of, device=keys.device)
    t_all = torch.tensor(t_of, dtype=torch.float32, device=keys.device)
    index = torch.tensor(index, device=keys.device)

    pair = flows
    if pair is not None and (pair.forward.shape != (K - 1, H, W, 2) or pair.backward.shape != (K - 1, H, W, 2)):
        raise ValueError(f"Precomputed flows must be [K-1,H,W,2] = {(K - 1, H, W, 2)} in both directions.")
    if method != "crossfade" and pair is None:
        pair = bidirectional_flow(keys, flow_method)
    chunk = max(1, _CHUNK_PIXELS // (H * W))
    for s in range(0, len(index), chunk):
        g = gap_of[s:s + chunk]
        t = t_all[s:s + chunk]
        i0, i1 = keys[g].float(), keys[g + 1].float()
        if method == "crossfade":
            frames = torch.lerp(i0, i1, t[:, None, None, None])
        elif method == "naive_flow":
            frames = _naive(i0, i1, pair.forward[g], pair.backward[g], t)
        else:
            v0, v1 = pair.occlusion()
            frames = _occlusion_aware(i0, i1, pair.forward[g], pair.backward[g], v0[g], v1[g], t)
        out[index[s:s + chunk]] = frames.clamp_(0, 1).to(out.dtype)
        if progress is not None:
            progress(min(s + chunk, len(index)), len(index))
    return out


# --------------------------------------------------------------------------------------------------

def _naive(i0, i1, f01, f10, t):
    tt = t[:, None, None, None]
    a = backward_warp(i0, -tt * f01)
    b = backward_warp(i1, -(1 - tt) * f10)
    return torch.lerp(a, b, tt)


def _reverse_flow(img_src, img_dst, f_sd, valid, scale, beta: float = 20.0):
    """Flow from time t back to the source keyframe, for pixels at their time-t positions.

    Each source pixel x moves to x + scale*F(x) at time t; splatting -scale*F there gives, at every time-t
    pixel, the flow back to the source. Softmax weights favour pixels that are photometrically consistent
    and visible in the other keyframe: where an occluder and what it hides land on the same spot, the
    occluder (still visible later) wins. Returns (flow [N,H,W,2], coverage [N,H,W])."""
    err = (img_src - backward_warp(img_dst, f_sd)).abs().mean(-1)
    z = -beta * err - 4.0 * (1.0 - valid)
    moved = scale * f_sd
    flow_t, cov = forward_splat(-moved, moved, z, mode="softmax")
    return flow_t, cov


def _occlusion_aware(i0, i1, f01, f10, v0, v1, t):
    tt = t[:, None, None, None]
    ft0, c0 = _reverse_flow(i0, i1, f01, v0, tt)
    ft1, c1 = _reverse_flow(i1, i0, f10, v1, 1 - tt)
    # Coverage ~0: nothing from that keyframe lands at x_t (a surface it does not show, e.g. uncovered
    # by t). Those pixels come from the other keyframe; their flow takes the linear estimate, which only
    # matters where both sides are empty.
    m0 = c0.clamp(0, 1)[..., None]
    m1 = c1.clamp(0, 1)[..., None]
    ft0 = torch.where(m0 < 1e-3, -tt * f01, ft0)
    ft1 = torch.where(m1 < 1e-3, -(1 - tt) * f10, ft1)
    a = backward_warp(i0, ft0)
    b = backward_warp(i1, ft1)
    w0 = (1 - tt) * (m0 + 1e-4)
    w1 = tt * (m1 + 1e-4)
    return (w0 * a + w1 * b) / (w0 + w1)


def _stack_keyframes(keyframes) -> torch.Tensor:
    if isinstance(keyframes, torch.Tensor):
        items = [keyframes] if keyframes.ndim == 4 else None
        if keyframes.ndim != 4:
            raise ValueError(f"Keyframes must be a batch [K,H,W,C], got shape {tuple(keyframes.shape)}.")
        keys = keyframes
    else:
        items = [k if k.ndim == 4 else k[None] for k in keyframes]
        sizes = {tuple(k.shape[1:]) for k in items}
        if len(sizes) > 1:
            listed = ", ".join(f"{s[1]}x{s[0]}x{s[2]}" for s in sorted(sizes))
            raise ValueError(f"Keyframes differ in size ({listed}); resize them to one size (e.g. with an "
                             "upscale/resize node) before inbetweening.")
        if not items:
            raise ValueError("No keyframes given.")
        keys = torch.cat(items)
    K, H, W, C = keys.shape
    if K < 2:
        raise ValueError(f"Inbetweening needs at least 2 keyframes (start and end), got {K}.")
    if C not in (1, 3, 4):
        raise ValueError(f"Keyframes must have 1, 3 or 4 channels, got {C}.")
    if H * W > MAX_PIXELS:
        raise ValueError(f"Keyframes are {W}x{H}, above the {MAX_PIXELS}-pixel limit; inbetween at a lower "
                         "resolution and upscale the result.")
    if H < 8 or W < 8:
        raise ValueError(f"Keyframes are {W}x{H}; inbetweening needs at least 8x8 pixels.")
    if not torch.isfinite(keys).all():
        raise ValueError("Keyframes contain NaN or infinite values.")
    return keys


def _positions(K: int, frames_per_gap, positions) -> list[int]:
    if (frames_per_gap is None) == (positions is None):
        raise ValueError("Give exactly one of frames_per_gap or positions.")
    if positions is None:
        return keyframe_positions(K, frames_per_gap)
    pos = [int(p) for p in positions]
    if len(pos) != K:
        raise ValueError(f"{len(pos)} keyframe positions for {K} keyframes: give one position per keyframe.")
    if pos[0] != 0 or any(b <= a for a, b in zip(pos, pos[1:])):
        raise ValueError(f"Keyframe positions must start at 0 and strictly increase, got {pos}.")
    return pos
