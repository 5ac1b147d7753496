"""Structure constancy: do shapes and outlines survive from frame to frame once motion is compensated?

Definition, per pair t -> t+1 at the analysis resolution: frame t+1 is warped onto frame t with the flow
(the *image* is warped, then edges are taken: warping a binary edge map smears it). Canny edges (OpenCV,
see context.canny) of frame t and of the warped frame are blurred with a Gaussian (sigma 1.5 px)
so a 1-px shift is a small change, not a total mismatch. SSIM maps (common.image.ssim_map: window 11, sigma 1.5,
windows inside the frame, each at its centre pixel) of the two blurred edge maps are averaged only over pixels that
are (a) forward-backward consistent and (b) within 3 px of an edge in either map: raw edge-map SSIM is dominated
by empty areas, which are trivially "constant".
Value: mean over pairs of that masked SSIM, range [-1, 1], higher = better. Pairs with (almost) no edges
are skipped (NaN); a clip with no edges at all is not applicable. per_item: per pair.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common.image import SSIM_WINDOW, ssim_map
from .context import Clip, canny, nan_mean
from .result import RewardResult
from .scorer import scorer

NAME = "structure_constancy"
RANGE = (-1.0, 1.0)
BLUR_SIGMA = 1.5
NEAR_EDGE = 3
MIN_REGION = 1e-3  # fraction of the frame


def blurred(edges: torch.Tensor) -> torch.Tensor:
    import kornia

    return kornia.filters.gaussian_blur2d(edges[:, None], (7, 7), (BLUR_SIGMA, BLUR_SIGMA))


@scorer(NAME, RANGE, uses=("flow",),
        summary="SSIM of blurred Canny edges of each frame and the flow-warped next frame, near edges only")
def score(clip: Clip) -> RewardResult:
    if clip.num_frames < 2:
        return RewardResult.not_applicable(NAME, "needs at least 2 frames", RANGE, "pair")
    n = clip.num_pairs
    values = torch.full((n,), float("nan"))
    for s, e in clip.chunks(n, "structure constancy", clip.analysis_chunk):
        e_ref = clip.edges(s, e)
        e_warp = canny(clip.warped_next(s, e))
        smap = ssim_map(blurred(e_ref), blurred(e_warp))[:, 0]
        near = F.max_pool2d(torch.maximum(e_ref, e_warp)[:, None], 2 * NEAR_EDGE + 1, stride=1,
                            padding=NEAR_EDGE)[:, 0]
        r = SSIM_WINDOW // 2  # the map holds the windows inside the frame: one per pixel r or more from the border
        region = (near * clip.valid_mask(s, e))[:, r:-r, r:-r]
        count = region.sum(dim=(1, 2))
        v = (smap * region).sum(dim=(1, 2)) / count.clamp(min=1)
        v[count < MIN_REGION * region[0].numel()] = float("nan")
        values[s:e] = v.cpu()
    value = nan_mean(values)
    if value != value:
        return RewardResult.not_applicable(NAME, "no edges found in the clip", RANGE, "pair")
    skipped = int(torch.isnan(values).sum())
    return RewardResult(NAME, value, values, torch.arange(n) + 0.5, "pair", RANGE,
                        {"pairs_without_edges": skipped, "blur_sigma": BLUR_SIGMA})
