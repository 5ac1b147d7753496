"""The table of scorers: name -> function, range, what it reads from the Clip, which model folders it needs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import (aesthetic, caption, clipscore, flow_smoothness, framing, fvd_lite, identity, keyframe_ssim, loop_break,
               novelty, seam, structure, temporal_lpips)
from .context import Clip
from .result import RewardResult


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable[..., RewardResult]
    value_range: tuple[float, float]
    uses: tuple[str, ...]          # Clip inputs/products: flow, keyframes, prompt, reference, windows
    model_folders: tuple[str, ...]  # sub-folders of models/rewardloop it loads from
    summary: str


SCORERS: dict[str, Scorer] = {s.name: s for s in (
    Scorer(keyframe_ssim.NAME, keyframe_ssim.score, keyframe_ssim.RANGE, ("keyframes",), (),
           "SSIM of the frames at the keyframe positions vs the anchor keyframes"),
    Scorer(temporal_lpips.NAME, temporal_lpips.score, temporal_lpips.RANGE, ("flow",), ("lpips",),
           "1 - occlusion-masked LPIPS between each frame and the flow-warped next frame"),
    Scorer(flow_smoothness.NAME, flow_smoothness.score, flow_smoothness.RANGE, ("flow",), (),
           "1/(1 + spatial + temporal variation of curl and divergence), magnitude-normalised"),
    Scorer(fvd_lite.NAME, fvd_lite.score, fvd_lite.RANGE, ("reference",), ("i3d",),
           "-unbiased polynomial-kernel MMD^2 of I3D logits (KVD-style) vs a reference video"),
    Scorer(identity.NAME, identity.score, identity.RANGE, ("keyframes",), ("facenet",),
           "cosine of face embeddings to the keyframes' (or first) face"),
    Scorer(structure.NAME, structure.score, structure.RANGE, ("flow",), (),
           "SSIM of blurred Canny edges of each frame and the flow-warped next frame, near edges only"),
    Scorer(clipscore.NAME, clipscore.score, clipscore.RANGE, ("prompt",), ("clip",),
           "Hessel CLIPScore 2.5*max(cos,0) of evenly sampled frames vs the prompt"),
    Scorer(caption.NAME, caption.score, caption.RANGE, ("prompt",), ("blip", "text"),
           "similarity of BLIP captions of sampled frames to the prompt"),
    Scorer(seam.NAME, seam.score, seam.RANGE, ("flow", "windows"), (),
           "typical transition change / worst change at each window seam"),
    Scorer(loop_break.NAME, loop_break.score, loop_break.RANGE, ("flow", "prompt"), (),
           "penalises periodic motion (peak-to-median spectral ratio); rewards it when a loop is asked for"),
    Scorer(aesthetic.NAME, aesthetic.score, aesthetic.RANGE, (), ("clip", "aesthetic"),
           "LAION aesthetic head on CLIP ViT-L/14 embeddings of sampled frames"),
    Scorer(framing.NAME, framing.score, framing.RANGE, (), (),
           "rule of thirds, safe-area occupancy and horizon-tilt stability"),
    Scorer(novelty.NAME, novelty.score, novelty.RANGE, (), ("lpips",),
           "new content after frame k minus a tax on abnormal jumps"),
)}


def get(name: str) -> Scorer:
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; available: {', '.join(SCORERS)}") from None


def run(name: str, clip: Clip, **options) -> RewardResult:
    return get(name).fn(clip, **options)
