"""Reward scorers (pure torch; no ComfyUI import), shared by the nodes, the gated retry loop and the trainers.

    from rewardloop.rewards import Clip, RewardRuntime, score, composite, reward_function
    runtime = RewardRuntime(["/path/to/ComfyUI/models/rewardloop"])   # or default_runtime()
    clip = Clip(frames, keyframes=kf, prompt="a red fox running", device="cuda", runtime=runtime)
    result = score("temporal_lpips", clip)          # RewardResult: value, per_item, details, applicable
    agg, parts = composite(clip, {"temporal_lpips": 1, "keyframe_ssim": 1})
    fn = reward_function("composite", device="cuda")  # frames -> RewardResult, for loops and trainers
    results = fn.batch(frames_bt, [{"prompt": p} for p in prompts])   # a batch of clips, analyses shared

Every scorer: higher = better, a documented range (see each module's docstring), never normalised across a
batch. A Clip computes optical flow, occlusion masks, edges and model features once and shares them. The runtime
holds the loaded networks and caches; `runtime.clear()` frees them all.
"""
from . import models
from .composite import DEFAULT_WEIGHTS, composite, to_frame_axis
from .context import DEFAULT_ANALYSIS_SIZE, Clip
from .factory import RewardFunction, reward_function, reward_names, score_batch
from .registry import SCORERS, Scorer, check_options, get, option_names, run
from .result import RewardResult, scores_payload
from .runtime import RewardRuntime, default_runtime

score = run

__all__ = ["Clip", "DEFAULT_ANALYSIS_SIZE", "DEFAULT_WEIGHTS", "RewardFunction", "RewardResult", "RewardRuntime",
           "SCORERS", "Scorer", "check_options", "composite", "default_runtime", "get", "models", "option_names",
           "reward_function", "reward_names", "run", "score", "score_batch", "scores_payload", "to_frame_axis"]
