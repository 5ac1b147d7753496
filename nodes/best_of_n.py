"""Best-of-N sampler node: a KSampler that draws up to N candidates and keeps the one the reward likes best.

The loop, the out-of-memory batch halving and the reward all live in the core (gating/best_of_n.py,
rewards.reward_function); this node hands them ComfyUI's sampler and VAE as callables.
"""
from __future__ import annotations

import math

from comfy_api.latest import io

from .. import gating, rewards
from ..common.keyframes import KeyframePositions
from ..gating.best_of_n import best_of_n
from ..rewards.chart import attempts_chart
from .retry import CATEGORY, _notify, _validate_settings
from . import runtime


def decode(vae, samples):
    images = vae.decode(samples)
    if images.ndim == 5:  # video VAEs: [B, T, H, W, C] -> frames, as core VAEDecode does
        images = images.reshape(-1, *images.shape[-3:])
    return images


class RewardLoopBestOfN(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        import comfy.samplers

        return io.Schema(
            node_id="RewardLoopBestOfN",
            display_name="Best-of-N Sampler (reward-gated)",
            category=CATEGORY,
            description=(
                "A KSampler that samples up to N candidates, scores each decoded candidate with a RewardLoop reward "
                "and stops at the first one that reaches the threshold (or keeps the best). Every candidate's seed "
                "is logged, so a plain KSampler can reproduce it."),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model, as for KSampler."),
                io.Conditioning.Input("positive", tooltip="Encoded prompt: what the candidates should show."),
                io.Conditioning.Input("negative", tooltip="Encoded negative prompt: what to avoid."),
                io.Latent.Input("latent_image", tooltip="The empty (or starting) latent, as for KSampler."),
                io.Vae.Input("vae", tooltip="Decodes each candidate so it can be scored."),
                io.Int.Input("seed", default=0, min=0, max=gating.SEED_MAX, control_after_generate=True,
                             tooltip="Seed of the first candidate; the others derive theirs (seed_policy)."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps, as in KSampler."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance scale: how strongly the prompt is followed, as in KSampler."),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES,
                               tooltip="Sampling algorithm, as in KSampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES,
                               tooltip="Noise schedule, as in KSampler."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the latent is replaced by noise (1.0 = from scratch), as in "
                                       "KSampler."),
                io.Int.Input("candidates", default=4, min=1, max=10000,
                             tooltip=f"At most this many candidates (capped at {gating.MAX_RETRIES + 1})."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="Candidates sampled together in one batch (faster where memory allows; "
                                     "a passing candidate still ends the loop after its batch)."),
                io.Combo.Input("reward", options=rewards.reward_names(), default="keyframe_ssim",
                               tooltip="Which RewardLoop reward scores each decoded candidate."),
                io.Float.Input("threshold", default=0.85, min=-1e6, max=1e6, step=0.01,
                               tooltip="A candidate passes when its reward is at least this."),
                io.Combo.Input("mode", options=list(gating.MODES), default="first_pass",
                               tooltip="first_pass: stop at the first candidate that passes. best_of: sample every "
                                       "candidate and keep the highest reward."),
                io.Combo.Input("seed_policy", options=list(gating.SEED_POLICIES), default="hash",
                               tooltip="hash: reproducible seeds far from neighbouring base seeds; increment: "
                                       "seed + candidate; random: fresh each candidate (logged)."),
                io.Combo.Input("reward_range", options=list(gating.REWARD_RANGES), default="0..1",
                               tooltip="0..1 for bounded rewards (SSIM, composites): the threshold must lie in "
                                       "[0, 1]. unbounded for rewards without that range."),
                io.Image.Input("keyframes", optional=True, tooltip="Anchor frames for keyframe rewards."),
                io.String.Input("keyframe_positions", optional=True, default="",
                                tooltip="JSON list of the keyframes' frame indices; empty = first/last (2 "
                                        "keyframes) or evenly spaced."),
                io.String.Input("prompt", optional=True, default="", multiline=True,
                                tooltip="Prompt text for prompt-aware rewards (CLIPScore, captions, loop-break)."),
            ],
            outputs=[
                io.Image.Output("chosen_frames", display_name="chosen frames",
                                tooltip="Decoded frames of the chosen candidate."),
                io.Latent.Output("chosen_latent", display_name="chosen latent",
                                 tooltip="Latent of the chosen candidate (for further sampling)."),
                io.Float.Output("chosen_reward", display_name="chosen reward",
                                tooltip="Reward of the chosen candidate."),
                io.Int.Output("chosen_candidate", display_name="chosen candidate",
                              tooltip="Index of the chosen candidate, counted from 0."),
                io.Boolean.Output("passed", display_name="passed",
                                  tooltip="Whether the chosen candidate reached the threshold."),
                io.String.Output("attempt_log", display_name="attempt log",
                                 tooltip="JSON: settings, one entry per candidate, decision."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, threshold=None, reward_range=None, mode=None, seed_policy=None, candidates=None):
        if candidates is not None and candidates < 1:
            return f"candidates must be >= 1, got {candidates}"
        return _validate_settings(threshold, reward_range, None, mode, seed_policy)

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, seed, steps, cfg, sampler_name, scheduler, denoise,
                candidates, batch_size, reward, threshold, mode, seed_policy, reward_range, keyframes=None,
                keyframe_positions="", prompt="") -> io.NodeOutput:
        import comfy.model_management
        import comfy.sample
        import comfy.utils
        import latent_preview
        import torch

        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        settings = gating.make_settings(threshold, candidates - 1, mode, seed_policy, seed, reward_range)
        positions = KeyframePositions.parse(keyframe_positions)
        score = rewards.reward_function(reward, runtime=runtime.get().rewards)
        display = cls.hidden.unique_id
        base = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        batch_inds = latent_image.get("batch_index")
        noise_mask = latent_image.get("noise_mask")
        per = base.shape[0]

        def sample(seeds):
            # Noise per candidate from its own seed (not one draw for the whole batch), so every logged seed
            # reproduces its candidate in a plain KSampler.
            noise = torch.cat([comfy.sample.prepare_noise(base, s, batch_inds) for s in seeds])
            mask = noise_mask
            if mask is not None and mask.shape[0] == per and len(seeds) > 1:
                mask = mask.repeat((len(seeds),) + (1,) * (mask.ndim - 1))
            return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                       base.repeat((len(seeds),) + (1,) * (base.ndim - 1)), denoise=denoise,
                                       noise_mask=mask, callback=latent_preview.prepare_callback(model, steps),
                                       disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seeds[0])

        def on_record(state, record):
            _notify(display, state.progress_text(),
                    gating.json_safe({"node_id": display, "attempt": record.attempt, "attempts": settings.attempts,
                                      "seed": record.seed, "reward": record.reward, "passed": record.passed,
                                      "seconds": record.seconds, "best_reward": state.best_reward,
                                      "best_attempt": state.best, "threshold": settings.threshold,
                                      "done": state.done, "failed_reason": record.failed_reason,
                                      "what": "candidate"}))

        (frames, samples), state = best_of_n(
            settings, sample, lambda chunk: decode(vae, chunk),
            lambda candidates: score.batch(candidates, {"keyframes": keyframes, "keyframe_positions": positions,
                                                        "prompt": prompt}),
            per_candidate=per, batch_size=batch_size,
            is_oom=lambda err: isinstance(err, comfy.model_management.OOM_EXCEPTION),
            on_oom=lambda n: comfy.model_management.soft_empty_cache(),
            should_stop=comfy.model_management.throw_exception_if_processing_interrupted, on_record=on_record)
        reward_value = state.best_reward if state.best_reward is not None else math.nan
        chart = attempts_chart([r.reward for r in state.records], settings.threshold, "candidate", reward)
        ui = gating.json_safe({"rewardloop_chart": [chart], "rewardloop_log": [state.as_dict()]})
        return io.NodeOutput(frames, dict(latent_image, samples=samples), reward_value, state.chosen, state.passed,
                             state.to_json(), ui=ui)


NODES = [RewardLoopBestOfN]
