"""Flow-based inbetweening: keyframes [K,H,W,C] -> a full clip with the keyframes at their positions,
copied bit-exact, and the frames between them synthesised.

Methods
    crossfade   (1-t) I0 + t I1: the baseline every other method must beat.
    naive_flow  bidirectional backward warping with linearly scaled flows, F_t0 ~ -t F01(x),
                F_t1 ~ -(1-t) F10(x), blended (1-t, t). No occlusion reasoning: ghosts at motion edges.
    flow        ours. Two estimates of every new frame, mixed per pixel by how far the flows can be trusted:
                - occlusion-aware: intermediate flows by "flow reversal" (forward-splat t F01 from frame 0
                  and (1-t) F10 from frame 1 to where each pixel is at time t; Xu et al. 2019) with softmax-
                  splatting weights (Niklaus & Liu 2020) from photometric consistency and the forward-backward
                  occlusion mask, so an occluder wins over what it hides; holes filled from the linear
                  estimate; frames blended with visibility weights. Best where the flows are right.
                - multi-hypothesis: the mean of four motion-compensated estimates (flow reversal, linear
                  flow, and the exact inverse of each keyframe's flow by fixed-point iteration, each
                  warping both keyframes). Where the flows are wrong they are wrong differently, and the mean
                  is the least-squares hedge (multi-hypothesis motion compensation, as in video coding).
                Both move each keyframe pixel along a quadratic path (`motion` "quadratic", default; Xu et al.
                2019): its flows to the previous and the next keyframe give it a velocity and an acceleration
                (zero where either flow fails the forward-backward check, at the clip's ends and next to scene
                cuts, so there the path is the straight line of `motion` "linear").
                The mix weight is the local fraction (25 px box) of forward-backward consistent pixels seen
                from time t: ~1 on reliable flows, where the occlusion reasoning matters, low where the flow
                estimate failed (fast motion of small objects, motion blur, textureless areas).
                Gaps whose keyframes share almost no consistent motion (a scene cut: < `CUT_THRESHOLD` of
                their pixels pass the forward-backward check) are not warped: `scene_cuts` "extrapolate"
                (default) makes a hard cut at mid-gap where each side keeps moving (the earlier keyframe
                carried forward on its motion from the keyframe before it, the later one backward on its
                motion to the keyframe after it; a plain hold where that neighbour is missing or a cut too),
                "hold" keeps the earlier keyframe up to mid-gap and then the later one, "crossfade" blends
                them (a dissolve), "interpolate" warps anyway.
                Keyframe flows (when not given): `keyframe_flows`, each pair started from its neighbours'
                constant-velocity prediction (`flow_init` "temporal", default). `temporal_mix` (default 0.2)
                blends in an estimate built from those predictions (a hedge; twice the synthesis cost).

Quality (PSNR of rebuilt frames on real footage and on the procedural scene, per method and option) and speed are
measured by bench_inbetween_real.py and bench_motion.py; the numbers are in benchmarks/RESULTS.md. Each default
here is the setting that measured best on the tuning clip without losing on the held-out ones.

Flow convention: motion.optical_flow (flow src->dst, backward_warp(dst, flow) ~ src). Keyframe positions follow
common.keyframes.KeyframePositions.
All intermediate frames of all gaps are computed as one batch (in chunks to bound memory).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..common.frames import check_frames
from ..common.keyframes import KeyframePositions
from .optical_flow import METHODS as FLOW_METHODS, FlowPair, RaftModels, bidirectional_flow
from .warp import backward_warp, forward_splat

METHODS = ("flow", "naive_flow", "crossfade")
SCENE_CUT_MODES = ("crossfade", "hold", "extrapolate", "interpolate")
MOTION_MODELS = ("quadratic", "linear")
FLOW_INITS = ("temporal", "none")
DEFAULT_FLOW_METHOD = "dis_fine"  # flows are computed once per keyframe pair, so accuracy beats speed
MAX_PIXELS = 4096 * 4096
_CHUNK_PIXELS = 8 * 512 * 512  # intermediate frames per chunk scale with resolution (~40 MB per 512^2 frame)
# Fraction of forward-backward consistent pixels below which a keyframe pair counts as a scene cut: real cuts
# score far below it and every ordinary gap of the footage in bench_inbetween_real.py far above (RESULTS.md).
CUT_THRESHOLD = 0.2
_RELIABILITY_WINDOW = 25  # px; tuned on bikes 0-120 and the procedural scene (smaller windows lost PSNR)
_FIXED_POINT_ITERS = 3  # more iterations did not change the PSNR
# Chosen on bikes 0-120, where it helped, and checked on the held-out clips (RESULTS.md).
DEFAULT_TEMPORAL_MIX = 0.2


def inbetween(keyframes, frames_per_gap: int | None = None, method: str = "flow",
              flow_method: str = DEFAULT_FLOW_METHOD, positions: KeyframePositions | Sequence[int] | None = None,
              flows: FlowPair | None = None, progress=None, scene_cuts: str = "extrapolate",
              motion: str = "quadratic", flow_init: str = "temporal",
              temporal_mix: float = DEFAULT_TEMPORAL_MIX, raft: RaftModels | None = None) -> torch.Tensor:
    """Full clip [T,H,W,C] from keyframes [K,H,W,C] (or a list of [H,W,C] / [1,H,W,C] images).

    Give either `frames_per_gap` (new frames between consecutive keyframes; T = (K-1)(n+1)+1) or explicit
    `positions` starting at 0 (KeyframePositions: strictly increasing; uneven gaps allowed; T = positions[-1] + 1).
    Output frames at the keyframe positions are exact copies of the keyframes. `flows` reuses flows already
    computed between consecutive keyframes (forward [K-1], backward [K-1]). `progress(done, total)` counts the
    keyframe flows as they finish, then each chunk of synthesised frames (the node layer hooks ComfyUI's
    progress/cancel in). A clip that would not fit in the memory available is refused before anything is
    allocated. `raft`: where the "raft" flow method keeps its network (a runtime's RaftModels).
    `scene_cuts` (method "flow" only) says what to do in gaps `detect_scene_cuts` flags: "extrapolate"
    (default: hard cut at mid-gap, each side continuing its keyframe's motion), "hold" (hard cut, still
    frames), "crossfade" (dissolve) or "interpolate" (warp anyway). `motion` (method "flow" only):
    "quadratic" (default) bends each pixel's path by the acceleration its keyframe's flows to both
    neighbours show, "linear" moves it at constant speed (the only choice with two keyframes). `flow_init`
    (when `flows` is None): "temporal" starts each keyframe pair's flow from its neighbours' prediction
    (`keyframe_flows`; better on fast motion; a quarter-resolution prediction pass first, a little more flow
    time), "none" computes every pair from scratch. `temporal_mix` (method "flow", 0..1, default 0.2; 0 = off):
    weight of a second estimate whose keyframe flows are the neighbouring gaps' constant-velocity predictions
    (`_neighbour_flows`), a hedge where motion changes within the gap; it doubles the synthesis cost."""
    keys = _stack_keyframes(keyframes)
    K, H, W, C = keys.shape
    if method not in METHODS:
        raise ValueError(f"Unknown inbetween method '{method}'. Choose one of: {', '.join(METHODS)}.")
    if method != "crossfade" and flow_method not in FLOW_METHODS:
        raise ValueError(f"Unknown flow method '{flow_method}'. Choose one of: {', '.join(FLOW_METHODS)}.")
    if scene_cuts not in SCENE_CUT_MODES:
        raise ValueError(f"Unknown scene_cuts mode '{scene_cuts}'. Choose one of: {', '.join(SCENE_CUT_MODES)}.")
    if motion not in MOTION_MODELS:
        raise ValueError(f"Unknown motion model '{motion}'. Choose one of: {', '.join(MOTION_MODELS)}.")
    if not 0.0 <= float(temporal_mix) <= 1.0:
        raise ValueError(f"temporal_mix must be in 0..1 (weight of the neighbour-predicted estimate), got {temporal_mix}.")
    if flow_init not in FLOW_INITS:
        raise ValueError(f"Unknown flow_init '{flow_init}'. Choose one of: {', '.join(FLOW_INITS)}.")
    pos = _positions(K, frames_per_gap, positions)
    T = pos[-1] + 1
    _check_fits(T, H, W, C, keys)
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
    flow_steps = 0
    if method != "crossfade" and pair is None:
        temporal = flow_init == "temporal"
        flow_steps = keyframe_flow_count(K, flow_method, temporal)
        report = None if progress is None else (lambda done, _n: progress(done, flow_steps + len(index)))
        pair = keyframe_flows(keys, flow_method, pos, temporal_init=temporal, raft=raft, progress=report)
    cut = torch.zeros(K - 1, dtype=torch.bool, device=keys.device)
    acc0 = acc1 = None
    if method == "flow":
        found = detect_scene_cuts(pair).to(keys.device)
        if scene_cuts != "interpolate":
            cut = found
        if motion == "quadratic":
            acc0, acc1 = _accelerations(pair, pos, found)
        if temporal_mix > 0:
            pred01, pred10, has_pred = _neighbour_flows(pair, pos, found)
        if scene_cuts == "extrapolate" and bool(found.any()):
            vel0, vel1 = _cut_velocities(pair, pos, found)
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
            dev = i0.device
            a0 = a1 = None
            if acc0 is not None:
                a0, a1 = acc0[g].to(dev), acc1[g].to(dev)
            frames = _flow_frames(i0, i1, pair.forward[g].to(dev), pair.backward[g].to(dev), v0[g].to(dev),
                                  v1[g].to(dev), t, a0, a1)
            if temporal_mix > 0 and has_pred[g].any():
                alt = _flow_frames(i0, i1, pred01[g].to(dev), pred10[g].to(dev), v0[g].to(dev), v1[g].to(dev), t)
                w = temporal_mix * has_pred[g].to(dev, frames.dtype)[:, None, None, None]
                frames = torch.lerp(frames, alt, w)
            if cut[g].any():
                tt = t[:, None, None, None]
                if scene_cuts == "hold":
                    held = torch.where(tt < 0.5, i0, i1)
                elif scene_cuts == "extrapolate":
                    held = _extrapolated_cut(i0, i1, vel0[g].to(dev), vel1[g].to(dev), t)
                else:
                    held = torch.lerp(i0, i1, tt)
                frames = torch.where(cut[g][:, None, None, None], held, frames)
        out[index[s:s + chunk]] = frames.clamp_(0, 1).to(out.dtype)
        if progress is not None:
            progress(flow_steps + min(s + chunk, len(index)), flow_steps + len(index))
    return out


def keyframe_flow_count(K: int, flow_method: str = DEFAULT_FLOW_METHOD, temporal_init: bool = True) -> int:
    """How many flows `keyframe_flows` computes for K keyframes (its progress total)."""
    passes = 2 if temporal_init and K >= 3 and flow_method != "raft" else 1
    return passes * 2 * (K - 1)


def keyframe_flows(keys: torch.Tensor, flow_method: str = DEFAULT_FLOW_METHOD, positions: Sequence[int] | None = None,
                   temporal_init: bool = True, raft: RaftModels | None = None, progress=None) -> FlowPair:
    """Flows between consecutive keyframes [K,H,W,C] (at clip `positions`, default evenly spaced), as
    `inbetween` computes them when none are given.

    With `temporal_init` (DIS and Farneback, K >= 3) every estimate starts from the constant-velocity
    prediction of its neighbouring pair instead of zero: the forward flow of gap g from minus the backward
    flow of gap g-1, the backward flow of gap g from minus the forward flow of gap g+1 (scaled by the
    ratio of the gaps' lengths). Coarse-to-fine estimators lose large motion that their coarsest scale
    cannot see from a zero start (fast pans over 4-frame gaps); the prediction hands it over. The
    predictions come from a quarter-resolution pass (the estimators use a first guess only at their
    coarsest scales; ~1/16 of the full pass's pixels), and a pair whose own or predicting gap is a scene
    cut in that pass starts as without a guess. On real footage this beat a zero start, matched a
    full-resolution prediction pass at a fraction of its cost, and lost without the cut gating (RESULTS.md)."""
    keys = _stack_keyframes(keys)
    K, H, W, _ = keys.shape
    if flow_method not in FLOW_METHODS:
        raise ValueError(f"Unknown flow method '{flow_method}'. Choose one of: {', '.join(FLOW_METHODS)}.")
    total = keyframe_flow_count(K, flow_method, temporal_init)

    def report(offset):  # `progress(done, total)` over both passes
        return None if progress is None else (lambda done, _n: progress(offset + done, total))

    if not temporal_init or K < 3 or flow_method == "raft":
        return bidirectional_flow(keys, flow_method, raft=raft, progress=report(0))
    pos = list(range(K)) if positions is None else [int(p) for p in positions]
    span = torch.tensor([pos[i + 1] - pos[i] for i in range(K - 1)], dtype=torch.float32, device=keys.device)
    s = 4
    while s > 1 and min(H, W) // s < 32:  # keep the prediction pass above DIS's smallest useful size
        s //= 2
    small = F.interpolate(keys.permute(0, 3, 1, 2).float(), size=(H // s, W // s), mode="area")
    coarse = bidirectional_flow(small.permute(0, 2, 3, 1).contiguous(), flow_method, progress=report(0))
    cut = detect_scene_cuts(coarse)

    def up(f: torch.Tensor) -> torch.Tensor:  # on the keyframes' device (a GPU if there is one)
        scale = torch.tensor([W / f.shape[2], H / f.shape[1]], device=f.device)
        return F.interpolate(f.permute(0, 3, 1, 2), size=(H, W), mode="bilinear",
                             align_corners=False).permute(0, 2, 3, 1) * scale

    fw, bw = up(coarse.forward), up(coarse.backward)
    init_f = torch.zeros_like(fw)
    init_b = torch.zeros_like(bw)
    ok = ~(cut[1:] | cut[:-1])[:, None, None, None]  # gap g+1 predicted from gap g or the reverse
    # Forward flow of gap g (1..K-2) from gap g-1: keyframe g's pixels keep their velocity.
    init_f[1:] = ok * -bw[:-1] * (span[1:] / span[:-1])[:, None, None, None]
    # Backward flow of gap g (0..K-3) from gap g+1: keyframe g+1's pixels, looking back.
    init_b[:-1] = ok * -fw[1:] * (span[:-1] / span[1:])[:, None, None, None]
    return bidirectional_flow(keys, flow_method, init=FlowPair(init_f, init_b, flow_method), progress=report(total // 2))


def _neighbour_flows(pair: FlowPair, pos: Sequence[int], cut: torch.Tensor):
    """Keyframe flows of every gap as its neighbours predict them at constant velocity: F01 of gap g from
    minus F10 of gap g-1, F10 of gap g from minus F01 of gap g+1 (scaled by the gaps' length ratio); a side
    without a usable neighbour (clip end, scene cut next to it or in the gap) keeps the gap's own flow.
    Returns (F01 [K-1,H,W,2], F10 [K-1,H,W,2], has_prediction [K-1] bool: at least one side predicted)."""
    fw, bw = pair.forward, pair.backward
    n = fw.shape[0]
    p01, p10 = fw.clone(), bw.clone()
    has = torch.zeros(n, dtype=torch.bool, device=fw.device)
    if n < 2:
        return p01, p10, has
    span = torch.tensor([pos[i + 1] - pos[i] for i in range(n)], dtype=fw.dtype, device=fw.device)
    ok = ~(cut[1:] | cut[:-1]).to(fw.device)
    okb = ok[:, None, None, None]
    p01[1:] = torch.where(okb, -bw[:-1] * (span[1:] / span[:-1])[:, None, None, None], fw[1:])
    p10[:-1] = torch.where(okb, -fw[1:] * (span[:-1] / span[1:])[:, None, None, None], bw[:-1])
    has[1:] |= ok
    has[:-1] |= ok
    return p01, p10, has


def _cut_velocities(pair: FlowPair, pos: Sequence[int], cut: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Constant-velocity motion of each keyframe away from a cut, for `scene_cuts` "extrapolate": per gap g,
    where keyframe g's pixels would be one gap-g length later (minus its flow back to keyframe g-1,
    scaled by the gaps' length ratio) and where keyframe g+1's pixels were one gap-g length earlier (minus
    its flow on to keyframe g+2). Zero (a hold) where that neighbouring gap does not exist or is itself a
    cut. Returns ([K-1,H,W,2], [K-1,H,W,2])."""
    fw, bw = pair.forward, pair.backward
    n = fw.shape[0]
    vel0 = torch.zeros_like(fw)
    vel1 = torch.zeros_like(bw)
    if n < 2:
        return vel0, vel1
    span = torch.tensor([pos[i + 1] - pos[i] for i in range(n)], dtype=fw.dtype, device=fw.device)
    ok = ~cut.to(fw.device)
    vel0[1:] = (ok[:-1, None, None, None] * -bw[:-1]) * (span[1:] / span[:-1])[:, None, None, None]
    vel1[:-1] = (ok[1:, None, None, None] * -fw[1:]) * (span[:-1] / span[1:])[:, None, None, None]
    return vel0, vel1


def _extrapolated_cut(i0, i1, vel0, vel1, t):
    """A hard cut at mid-gap where each side keeps moving: before it keyframe 0's pixels travel t vel0,
    after it keyframe 1's travel back (1-t) vel1. Frames are rendered by backward warping with the exact
    inverse of that displacement (`_source_offset`); zero velocity is a plain hold."""
    tt = t[:, None, None, None]
    before = tt < 0.5
    moved = torch.where(before, tt * vel0, (1 - tt) * vel1)
    src = torch.where(before, i0, i1)
    return backward_warp(src, _source_offset(moved))


def detect_scene_cuts(flows: FlowPair, threshold: float = CUT_THRESHOLD) -> torch.Tensor:
    """[K-1] bool: keyframe pairs with (almost) no forward-backward consistent motion between them, i.e.
    fewer than `threshold` of their pixels pass the check in the mean of both directions. Warping across
    such a gap only smears two unrelated images into each other."""
    v0, v1 = flows.occlusion()
    return 0.5 * (v0.mean(dim=(1, 2)) + v1.mean(dim=(1, 2))) < threshold


# --------------------------------------------------------------------------------------------------

def _naive(i0, i1, f01, f10, t):
    tt = t[:, None, None, None]
    a = backward_warp(i0, -tt * f01)
    b = backward_warp(i1, -(1 - tt) * f10)
    return torch.lerp(a, b, tt)


def _reverse_flow(img_src, img_dst, f_sd, valid, moved, beta: float = 20.0):
    """Flow from time t back to the source keyframe, for pixels at their time-t positions.

    Each source pixel x moves to x + moved(x) at time t; splatting -moved there gives, at every time-t
    pixel, the flow back to the source. Softmax weights favour pixels that are photometrically consistent
    and visible in the other keyframe: where an occluder and what it hides land on the same spot, the
    occluder (still visible later) wins. Returns (flow [N,H,W,2], coverage [N,H,W])."""
    err = (img_src - backward_warp(img_dst, f_sd)).abs().mean(-1)
    z = -beta * err - 4.0 * (1.0 - valid)
    flow_t, cov = forward_splat(-moved, moved, z, mode="softmax")
    return flow_t, cov


def _source_offset(moved: torch.Tensor, iters: int = _FIXED_POINT_ITERS) -> torch.Tensor:
    """Offset from each time-t pixel x back to the source pixel p that moves there, p + moved(p) = x,
    by fixed-point iteration p <- x - moved(p) (exact inversion of a smooth displacement field; the
    estimate -moved(x) is its first step)."""
    d = -moved
    for _ in range(iters):
        d = -backward_warp(moved, d)
    return d


def _accelerations(pair: FlowPair, pos: Sequence[int], cut: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadratic motion (Xu et al. 2019, "Quadratic video interpolation"): a keyframe's flows to its previous
    and next keyframe give each of its pixels a velocity and an acceleration. In units of gap g (length
    S, keyframe time 0, the other side at -a, a = other span / S) the path x(t) = F01 t - A t(1-t) passes
    through F01 at t=1 and F0m at t=-a when A = (F0m + a F01) / (a (1+a)) (= half the acceleration; for even
    gaps (F0m + F01)/2). Returns (A of keyframe g in gap g, A of keyframe g+1 in gap g, seen backwards
    from it), each [K-1,H,W,2]. Zero (linear motion) at the clip's ends, next to scene cuts, and at
    pixels whose flows to either neighbour fail the forward-backward check: an acceleration from a wrong
    flow bends the path the wrong way (ungated, the gain on real footage almost vanished)."""
    fw, bw = pair.forward, pair.backward
    v0, v1 = pair.occlusion()
    n = fw.shape[0]  # gaps
    acc0 = torch.zeros_like(fw)
    acc1 = torch.zeros_like(bw)
    if n < 2:
        return acc0, acc1
    span = torch.tensor([pos[i + 1] - pos[i] for i in range(n)], dtype=fw.dtype, device=fw.device)
    ok = ~(cut[:-1] | cut[1:]).to(fw.device)  # inner keyframes 1..n-1, neither neighbouring gap a cut
    gate = (v1[:-1] * v0[1:] * ok[:, None, None])[..., None]  # [n-1,H,W,1] for keyframes 1..n-1
    # Keyframe k (1..n-1) as the start of gap k: F01 = fw[k], F0m = bw[k-1], a = span[k-1] / span[k].
    a = (span[:-1] / span[1:])[:, None, None, None]
    acc0[1:] = gate * (bw[:-1] + a * fw[1:]) / (a * (1 + a))
    # Keyframe k as the end of gap k-1, looking back: F10 = bw[k-1], the other side F12 = fw[k], a = span[k] / span[k-1].
    a = (span[1:] / span[:-1])[:, None, None, None]
    acc1[:-1] = gate * (fw[1:] + a * bw[:-1]) / (a * (1 + a))
    return acc0, acc1


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    """[N,H,W] local mean over a k x k window (borders: mean of the pixels inside). Separable: two 1-D
    passes give the same mean (the in-frame count factorises too) at 2k instead of k^2 reads a pixel."""
    x = F.avg_pool2d(x[:, None], (1, k), 1, (0, k // 2), count_include_pad=False)
    return F.avg_pool2d(x, (k, 1), 1, (k // 2, 0), count_include_pad=False)[:, 0]


def _flow_frames(i0, i1, f01, f10, v0, v1, t, acc0=None, acc1=None):
    """The 'flow' method (module docstring): occlusion-aware flow reversal where the flows are reliable,
    the mean of four motion hypotheses where they are not. acc0/acc1: half-accelerations of the keyframes'
    pixels (`_accelerations`), None for linear motion."""
    tt = t[:, None, None, None]
    # Where each keyframe's pixels are at time t (relative to where they start).
    mv0 = tt * f01
    mv1 = (1 - tt) * f10
    if acc0 is not None:
        bend = tt * (1 - tt)
        mv0 = mv0 - bend * acc0
        mv1 = mv1 - bend * acc1
    ft0, c0 = _reverse_flow(i0, i1, f01, v0, mv0)
    ft1, c1 = _reverse_flow(i1, i0, f10, v1, mv1)
    # Coverage ~0: nothing from that keyframe lands at x_t (a surface it does not show, e.g. uncovered
    # by t). Those pixels come from the other keyframe; their flow takes the linear estimate, which only
    # matters where both sides are empty.
    m0 = c0.clamp(0, 1)[..., None]
    m1 = c1.clamp(0, 1)[..., None]
    ft0 = torch.where(m0 < 1e-3, -mv0, ft0)
    ft1 = torch.where(m1 < 1e-3, -mv1, ft1)
    a = backward_warp(i0, ft0)
    b = backward_warp(i1, ft1)
    w0 = (1 - tt) * (m0 + 1e-4)
    w1 = tt * (m1 + 1e-4)
    occlusion_aware = (w0 * a + w1 * b) / (w0 + w1)

    # Hypotheses, each a pair of positions (in keyframe 0, in keyframe 1) for every time-t pixel.
    pool = torch.lerp(a, b, tt)
    pool += torch.lerp(backward_warp(i0, -mv0), backward_warp(i1, -mv1), tt)
    d0 = _source_offset(mv0)  # to the frame-0 pixel moving here; it lands in frame 1 at d0 + F01(p)
    pool += torch.lerp(backward_warp(i0, d0), backward_warp(i1, d0 + backward_warp(f01, d0)), tt)
    d1 = _source_offset(mv1)
    pool += torch.lerp(backward_warp(i0, d1 + backward_warp(f10, d1)), backward_warp(i1, d1), tt)
    pool /= 4

    # Reliability seen from time t: forward-backward validity of the pixels each keyframe sends here.
    valid = 0.5 * (backward_warp(v0[..., None], d0) + backward_warp(v1[..., None], d1))[..., 0]
    r = _box(valid, _RELIABILITY_WINDOW).clamp(0, 1)[..., None]
    return torch.lerp(pool, occlusion_aware, r)


def _stack_keyframes(keyframes) -> torch.Tensor:
    if isinstance(keyframes, torch.Tensor):
        if keyframes.ndim != 4:
            raise ValueError(f"Keyframes must be a batch [K,H,W,C], got shape {tuple(keyframes.shape)}.")
        keys = keyframes
    else:
        items = [k if k.ndim == 4 else k[None] for k in keyframes]
        if not items:
            raise ValueError("No keyframes given.")
        sizes = {tuple(k.shape[1:]) for k in items}
        if len(sizes) > 1:
            listed = ", ".join(f"{s[1]}x{s[0]}x{s[2]}" for s in sorted(sizes))
            raise ValueError(f"Keyframes differ in size ({listed}); resize them to one size (e.g. with an "
                             "upscale/resize node) before inbetweening.")
        keys = torch.cat(items)
    if keys.shape[0] < 2:
        raise ValueError(f"Inbetweening needs at least 2 keyframes (start and end), got {keys.shape[0]}.")
    return check_frames(keys, "keyframes", min_size=8, max_pixels=MAX_PIXELS, rgb=False)


def _positions(K: int, frames_per_gap, positions) -> list[int]:
    if (frames_per_gap is None) == (positions is None):
        raise ValueError("Give exactly one of frames_per_gap or positions.")
    if positions is None:
        return KeyframePositions.with_gaps(K, frames_per_gap).to_list()
    return KeyframePositions.parse(positions).check(count=K, whole_clip=True).to_list()


def _check_fits(T: int, H: int, W: int, C: int, like: torch.Tensor) -> None:
    """Refuse a clip larger than the memory available where it would be made (host RAM, or the GPU's free memory),
    with the input to change, before allocating it: a huge allocation fails with an allocator message that names
    nothing, or gets the server killed."""
    need = T * H * W * C * like.element_size()
    if like.device.type == "cuda":
        free = torch.cuda.mem_get_info(like.device)[0]
    else:
        try:
            import psutil
        except ImportError:  # ComfyUI depends on psutil; a bare core install may not have it
            return
        free = psutil.virtual_memory().available
    if need > free:
        raise ValueError(f"keyframe_positions / frames_per_gap ask for a clip of {T} frames of {W}x{H}: "
                         f"{need / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB of memory available. "
                         "Use fewer frames between keyframes, or split the clip into windows.")
