"""Reward scorers (pure torch; no ComfyUI import), shared by the nodes, the gated retry loop and the trainers.

    from rewardloop.rewards import Clip, score, composite
    clip = Clip(frames, keyframes=kf, prompt="a red fox running", device="cuda")
    result = score("temporal_lpips", clip)          # RewardResult: value, per_item, details, applicable
    agg, parts = composite(clip, {"temporal_lpips": 1, "keyframe_ssim": 1})

Every scorer: higher = better, a documented range (see each module's docstring), never normalised across a
batch. A Clip computes optical flow, occlusion masks, edges and model features once and shares them.
`models.clear_cache()` frees every loaded network.
"""
from . import models
from .composite import DEFAULT_WEIGHTS, composite, to_frame_axis
from .context import DEFAULT_ANALYSIS_SIZE, Clip, FlowPair, check_frames, evenly_spaced
from .registry import SCORERS, Scorer, get, run
from .result import RewardResult, scores_payload

score = run

__all__ = ["Clip", "DEFAULT_ANALYSIS_SIZE", "FlowPair", "RewardResult", "SCORERS", "Scorer", "DEFAULT_WEIGHTS", "check_frames", "composite",
           "evenly_spaced", "get", "models", "run", "score", "scores_payload", "to_frame_axis"]
