"""Validation clips: deterministic (ODE, fixed seeds) samples of a prompt list with the current LoRA, decoded
and scored by the monitoring metrics (any reward/scorer name: temporal_lpips, flow_smoothness, seam_consistency,
identity_lock, clip_score, fvd_lite, loop_break ...; SCORE_BATCH clips in one call). Used every
`validation.every` steps of a DPO/GRPO run (logged as val_<metric>) and by the curriculum's gates. Never touches
the training RNG, so it does not change the training trajectory or its resumability.
"""
from __future__ import annotations

import torch

from .config import RewardSpec, TrainerConfig, latent_frames, resolve_path
from .flow import ode_step, sampling_sigmas
from .model import make_decoder
from .reward_fns import build_reward, score_batch
from .text_embeddings import TextEmbeddings, pad_batch, read_prompt_list

SCORE_BATCH = 4  # validation clips scored together (decoded clips held in host memory meanwhile)


def metric_specs(items) -> dict[str, RewardSpec]:
    """validation.metrics (names or RewardSpecs, as the config loader leaves them) by name."""
    specs = [RewardSpec(name=item) if isinstance(item, str) else item for item in items]
    return {spec.name: spec for spec in specs}


@torch.no_grad()
def sample_and_score(trainer, cfg: TrainerConfig, *, prompts_path: str, text_embeddings: str, seeds, steps: int,
                     frames: int, height: int, width: int, metrics: dict[str, RewardSpec],
                     decoder_choice: str = "auto") -> dict[str, float]:
    if not prompts_path:
        raise ValueError("validation needs a prompt list (validation.prompts / curriculum.validation_prompts).")
    if not height or not width:
        raise ValueError("validation clips need a height and width (set them in the method's section).")
    prompts = read_prompt_list(resolve_path(cfg, prompts_path))
    emb = TextEmbeddings.load(resolve_path(cfg, text_embeddings))
    emb.require(prompts, "validation prompts")
    sigmas = sampling_sigmas(steps, cfg.model.flow_shift).to(trainer.device)
    tcfg = trainer.transformer.config
    shape = (tcfg.in_channels, latent_frames(frames), height // 8, width // 8)
    decoder = getattr(trainer, "decoder", None) or make_decoder(cfg, trainer.device, decoder_choice)
    fns = {name: build_reward(spec, trainer.device) for name, spec in metrics.items()}
    scores = {name: [] for name in fns}
    clips, clip_prompts = [], []

    def score_clips():  # every metric scores the collected clips in one call
        for name, fn in fns.items():
            scores[name] += score_batch(fn, clips, clip_prompts).tolist()
        clips.clear()
        clip_prompts.clear()

    for prompt in prompts:
        ctx = pad_batch([emb.get(prompt)], cfg.model.text_len, tcfg.text_dim).to(trainer.device)
        for seed in seeds:
            trainer.rt.check_cancel()
            gen = torch.Generator(device=trainer.device).manual_seed(int(seed))
            x = torch.randn((1, *shape), generator=gen, device=trainer.device)
            for k in range(steps):
                v = trainer.forward(x, sigmas[k].expand(1), ctx)
                x = ode_step(x, v, sigmas[k].expand(1), sigmas[k + 1].expand(1))
            clips.append(decoder.decode(x).cpu()[0])
            clip_prompts.append(prompt)
            if len(clips) == SCORE_BATCH:
                score_clips()
    if clips:
        score_clips()
    return {name: sum(v) / len(v) for name, v in scores.items()}


def method_section(cfg: TrainerConfig):
    return cfg.grpo if cfg.method == "grpo" else cfg.dpo


def periodic_validation(trainer) -> dict[str, float]:
    """The run's `validation:` block, with the method section's prompts/size/steps as defaults."""
    cfg, val = trainer.cfg, trainer.cfg.validation
    sec = method_section(cfg)
    values = sample_and_score(
        trainer, cfg, prompts_path=val.prompts or getattr(sec, "prompts", ""), text_embeddings=sec.text_embeddings,
        seeds=val.seeds, steps=val.sampling_steps or getattr(sec, "sampling_steps", 20), frames=sec.frames,
        height=sec.height, width=sec.width, metrics=metric_specs(val.metrics),
        decoder_choice=getattr(sec, "decoder", "auto"))
    return {f"val_{k}": v for k, v in values.items()}
