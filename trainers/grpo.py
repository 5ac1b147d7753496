"""Flow-GRPO for Wan: online RL with the SDE sampler's per-step log-probs.

One training step (= one optimizer update per inner epoch):
  1. roll out G = group_size samples for each of prompts_per_step prompts with the current policy: the
     steps of the train window [window_start, window_start + window_size) (the high-noise end) are SDE
     steps with recorded fp32 log-probs, the others deterministic Euler/ODE steps (MixGRPO's mix: a short
     window costs a fraction of full-trajectory training);
  2. decode the final latents (VAE) and score them with the reward function, a group's clips in one call; the
     gold reward, if set, is logged and never enters the loss. With several prompts per step, group g is scored
     on a background thread while group g+1 is sampled (`rollout_and_score`; the same samples and rewards);
  3. advantages A = (r - group mean) / (group std + 1e-4), clipped to +-adv_clip;
  4. for every window step and micro-batch recompute the policy's SDE mean and log-prob of the recorded
     next latent, ratio = exp(logp - logp_old), loss = mean(max(-A r, -A clip(r, 1-eps, 1+eps)))
     + kl_beta * mean((mu - mu_ref)^2 / (2 s^2)) with mu_ref from the model with its LoRA disabled.
On the first inner epoch the recomputation equals the rollout exactly (same chunks, same code path), so
the ratio is exactly 1 (a unit test holds this).
"""
from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .config import TrainerConfig, latent_frames, resolve_path
from .flow import gaussian_logprob, ode_step, sampling_sigmas, sde_step_mean
from .model import make_decoder
from .reward_fns import build_reward, score_batch
from .text_embeddings import TextEmbeddings, pad_batch, read_prompt_list
from .trainer import Trainer


@dataclass
class Rollout:
    prompts: list[str]
    context: torch.Tensor          # [N, L, D]
    window: list[int]              # step indices with SDE + log-probs
    xs: torch.Tensor               # [W, N, C, T, h, w] latents entering each window step
    xs_next: torch.Tensor          # [W, N, ...] sampled next latents
    logp: torch.Tensor             # [W, N] fp32 log-probs at sampling time
    final: torch.Tensor            # [N, C, T, h, w]

    @staticmethod
    def cat(parts: list["Rollout"]) -> "Rollout":
        """Rollouts of consecutive groups as one (samples in order)."""
        first = parts[0]
        return Rollout([p for r in parts for p in r.prompts], torch.cat([r.context for r in parts]), first.window,
                       torch.cat([r.xs for r in parts], dim=1), torch.cat([r.xs_next for r in parts], dim=1),
                       torch.cat([r.logp for r in parts], dim=1), torch.cat([r.final for r in parts]))


def group_advantages(rewards: torch.Tensor, group_size: int, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (advantages, per-group std); rewards ordered group by group."""
    r = rewards.view(-1, group_size).float()
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, unbiased=False, keepdim=True)
    adv = ((r - mean) / (std + 1e-4)).clamp(-clip, clip)
    return adv.view(-1), std.view(-1)


class GRPOTrainer(Trainer):
    method = "grpo"
    overlap_rewards = True  # score group g while group g+1 samples (rollout_and_score); off only to compare

    def setup(self) -> None:
        cfg, g = self.cfg, self.cfg.grpo
        self.g = g
        self.prompts = read_prompt_list(resolve_path(cfg, g.prompts))
        self.embeddings = TextEmbeddings.load(resolve_path(cfg, g.text_embeddings))
        self.embeddings.require(self.prompts, "GRPO prompt list")
        if g.guidance_scale > 1:
            self.embeddings.require([g.negative_prompt], "negative prompt (guidance_scale > 1)")
        self.model = self.build_model()
        tcfg = self.transformer.config
        self.text_dim, self.text_len = tcfg.text_dim, cfg.model.text_len
        self.latent_shape = (tcfg.in_channels, latent_frames(g.frames), g.height // 8, g.width // 8)
        self.decoder = make_decoder(cfg, self.device, g.decoder)
        self.reward_fn = build_reward(g.reward, self.device)  # on the training device unless its params say
        self.gold_fn = build_reward(g.gold_reward, self.device)
        self._reward_stream = None
        self.sigmas = sampling_sigmas(g.sampling_steps, cfg.model.flow_shift).to(self.device)
        self.window = list(range(g.window_start, g.window_start + g.window_size))
        self.micro = g.micro_batch or g.group_size
        self.generators = {"noise": self.rt.generator(0), "prompts": torch.Generator().manual_seed(0)}
        self._neg = None

    # ------------------------------------------------------------------ sampling
    def contexts(self, prompts: list[str]) -> torch.Tensor:
        return pad_batch([self.embeddings.get(p) for p in prompts], self.text_len, self.text_dim).to(self.device)

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Policy velocity for a micro-batch, with classifier-free guidance when guidance_scale > 1."""
        s = sigma.expand(x.shape[0])
        if self.g.guidance_scale <= 1:
            return self.forward(x, s, ctx)
        if self._neg is None:
            self._neg = self.contexts([self.g.negative_prompt])
        neg = self._neg.expand_as(ctx)
        v = self.forward(torch.cat([x, x]), torch.cat([s, s]), torch.cat([ctx, neg]))
        cond, uncond = v.chunk(2)
        return uncond + self.g.guidance_scale * (cond - uncond)

    def _chunks(self, n: int) -> list[slice]:
        return [slice(i, min(n, i + self.micro)) for i in range(0, n, self.micro)]

    def _sigma_cap(self) -> float:
        if not hasattr(self, "_cap"):  # read once: a device-to-host read in every SDE step would stall the GPU queue
            self._cap = float(self.sigmas[1])
        return self._cap

    def draw_noise(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The rollout's random numbers for n samples: the starting latents, then the SDE noise of each window step,
        drawn in that order (so rolling the samples out together or group by group gives the same samples)."""
        shape = (n, *self.latent_shape)
        x = torch.randn(shape, generator=gen, device=self.device)
        return x, [torch.randn(shape, generator=gen, device=self.device) for _ in self.window]

    @torch.no_grad()
    def rollout(self, prompts: list[str], gen: torch.Generator | None = None,
                noise: tuple[torch.Tensor, list[torch.Tensor]] | None = None) -> Rollout:
        """prompts: one entry per sample (a group repeats its prompt); the random numbers come from `gen`
        (draw_noise) or are given (`noise`)."""
        g, sigmas = self.g, self.sigmas
        n = len(prompts)
        ctx = self.contexts(prompts)
        x, eps = noise if noise is not None else self.draw_noise(n, gen)
        xs, xs_next, logps = [], [], []
        chunks = self._chunks(n)
        for k in range(len(sigmas) - 1):
            self.rt.check_cancel()
            sig, sig_next = sigmas[k], sigmas[k + 1]
            v = torch.cat([self.velocity(x[c], sig, ctx[c]) for c in chunks])
            if k in self.window:
                mu, _, std = sde_step_mean(x, v, sig.expand(n), sig_next.expand(n), self._sigma_cap(), g.noise_level)
                x_next = mu + std * eps[len(xs)]
                xs.append(x)
                xs_next.append(x_next)
                logps.append(gaussian_logprob(x_next, mu, std))
            else:
                x_next = ode_step(x, v, sig.expand(n), sig_next.expand(n))
            x = x_next
        return Rollout(prompts, ctx, self.window, torch.stack(xs), torch.stack(xs_next), torch.stack(logps), x)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.decoder.decode(latents[c]).cpu() for c in self._chunks(latents.shape[0])])

    # ------------------------------------------------------------------ rewards
    def score(self, frames: torch.Tensor, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(rewards, gold rewards or None) of decoded clips [N,T,H,W,C], each a whole batch in one call."""
        rewards = score_batch(self.reward_fn, frames, prompts)
        gold = score_batch(self.gold_fn, frames, prompts) if self.gold_fn is not None else None
        return rewards, gold

    def _score_beside(self, frames: torch.Tensor, prompts: list[str]):
        """`score` on the reward thread: on a GPU on its own CUDA stream, so its kernels can run beside the next
        group's sampling."""
        if self.device.type != "cuda":
            return self.score(frames, prompts)
        if self._reward_stream is None:
            self._reward_stream = torch.cuda.Stream(self.device)
        with torch.cuda.device(self.device), torch.cuda.stream(self._reward_stream):
            out = self.score(frames, prompts)
            self._reward_stream.synchronize()
        return out

    def overlaps_rewards(self) -> bool:
        """Whether a step rolls its groups out one at a time and scores group g while group g+1 samples: with
        several groups per step, when every micro-batch lies inside one group (then the samples are the same as
        rolled out together: the same forwards on the same inputs and random numbers)."""
        return self.overlap_rewards and self.g.prompts_per_step > 1 and self.g.group_size % self.micro == 0

    def rollout_and_score(self, prompts: list[str], gen: torch.Generator):
        """(Rollout, rewards, gold rewards or None) of one step's samples. Where `overlaps_rewards`, group g's decoded
        clips are scored on a background thread while group g+1 is sampled: the reward's CPU work (optical flow, face
        detection, Python) and, on a GPU, its kernels on a second stream hide behind the sampler's."""
        if not self.overlaps_rewards():
            ro = self.rollout(prompts, gen)
            return (ro, *self.score(self.decode(ro.final), prompts))
        G = self.g.group_size
        x, eps = self.draw_noise(len(prompts), gen)
        parts, pending = [], []
        # One reward thread per step: it ends with the step (a cancel or an error waits for the groups already
        # handed to it), so no thread outlives a training job.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardloop-grpo-reward") as worker:
            for start in range(0, len(prompts), G):
                sl = slice(start, start + G)
                part = self.rollout(prompts[sl], noise=(x[sl], [e[sl] for e in eps]))
                frames = self.decode(part.final)  # before the next group: the reward thread gets finished clips
                pending.append(worker.submit(self._score_beside, frames, prompts[sl]))
                parts.append(part)
            scored = [p.result() for p in pending]
        rewards = torch.cat([r for r, _ in scored])
        gold = None if self.gold_fn is None else torch.cat([g for _, g in scored])
        return Rollout.cat(parts), rewards, gold

    # ------------------------------------------------------------------ policy log-probs
    def step_logprob(self, ro: Rollout, w: int, c: slice, with_ref: bool):
        """Policy SDE mean and log-prob of the recorded next latent at window position w for chunk c."""
        k = ro.window[w]
        sig, sig_next = self.sigmas[k], self.sigmas[k + 1]
        x = ro.xs[w][c]
        m = x.shape[0]
        v = self.velocity(x, sig, ro.context[c])
        mu, s, std = sde_step_mean(x, v, sig.expand(m), sig_next.expand(m), self._sigma_cap(), self.g.noise_level)
        lp = gaussian_logprob(ro.xs_next[w][c], mu, std)
        mu_ref = None
        if with_ref:
            with torch.no_grad(), self.reference():
                v_ref = self.velocity(x, sig, ro.context[c])
                mu_ref, _, _ = sde_step_mean(x, v_ref, sig.expand(m), sig_next.expand(m), self._sigma_cap(),
                                             self.g.noise_level)
        return lp, mu, mu_ref, s

    # ------------------------------------------------------------------ step
    def _sample_prompts(self) -> list[str]:
        idx = torch.randint(len(self.prompts), (self.g.prompts_per_step,), generator=self.generators["prompts"])
        return [self.prompts[i] for i in idx.tolist() for _ in range(self.g.group_size)]

    def train_step(self, step: int) -> dict:
        g = self.g
        prompts = self._sample_prompts()
        ro, rewards, gold = self.rollout_and_score(prompts, self.generators["noise"])
        adv, group_std = group_advantages(rewards, g.group_size, g.adv_clip)
        adv_dev = adv.to(self.device)
        metrics = {
            "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std(unbiased=False)),
            "reward_min": float(rewards.min()), "reward_max": float(rewards.max()),
            "adv_abs_mean": float(adv.abs().mean()), "zero_std_groups": float((group_std < 1e-6).float().mean()),
        }
        if gold is not None:
            metrics.update(gold_mean=float(gold.mean()), gold_std=float(gold.std(unbiased=False)))
        chunks = self._chunks(len(prompts))
        n_terms = len(ro.window) * len(chunks)
        acc = self.rt.accelerator
        for epoch in range(g.inner_epochs):
            sums = {"ratio": 0.0, "clipfrac": 0.0, "approx_kl": 0.0, "pg_loss": 0.0, "kl": 0.0}
            dev_max = 0.0
            for w in range(len(ro.window)):
                for ci, c in enumerate(chunks):
                    self.rt.check_cancel()
                    last = w == len(ro.window) - 1 and ci == len(chunks) - 1
                    sync = contextlib.nullcontext() if last or self.rt.world == 1 else acc.no_sync(self.model)
                    with sync:
                        lp, mu, mu_ref, s = self.step_logprob(ro, w, c, with_ref=g.kl_beta > 0)
                        ratio = torch.exp(lp - ro.logp[w][c])
                        a = adv_dev[c]
                        pg = torch.maximum(-a * ratio, -a * ratio.clamp(1 - g.clip_range, 1 + g.clip_range)).mean()
                        loss = pg
                        if mu_ref is not None:
                            kl = ((mu - mu_ref) ** 2).mean(dim=tuple(range(1, mu.dim()))) / (2 * s.view(-1) ** 2)
                            loss = loss + g.kl_beta * kl.mean()
                            sums["kl"] += float(kl.detach().mean())
                        acc.backward(loss / n_terms)
                    with torch.no_grad():
                        ratio = ratio.detach()
                        sums["ratio"] += float(ratio.mean())
                        dev_max = max(dev_max, float((ratio - 1).abs().max()))
                        sums["clipfrac"] += float(((ratio - 1).abs() > g.clip_range).float().mean())
                        sums["approx_kl"] += float(0.5 * ((lp.detach() - ro.logp[w][c]) ** 2).mean())
                        sums["pg_loss"] += float(pg.detach())
            stats = {k: v / n_terms for k, v in sums.items()}
            stats["ratio_dev_max"] = dev_max
            stats["grad_norm"] = self.optimizer_step()
            stats["loss"] = stats["pg_loss"] + g.kl_beta * stats["kl"]
            metrics.update(stats if epoch == 0 else {f"{k}_epoch{epoch}": v for k, v in stats.items()})
        return metrics


def run_grpo(cfg: TrainerConfig, rt, run_dir=None, stage: str = "") -> dict:
    return GRPOTrainer(cfg, rt, run_dir, stage).run()
