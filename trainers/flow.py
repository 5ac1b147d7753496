"""Flow-matching math shared by the trainers (rectified flow, velocity target, Wan's timestep convention).

x_sigma = (1 - sigma) * x0 + sigma * noise, velocity target v = noise - x0, and the transformer gets
timestep = 1000 * sigma. Everything here runs in fp32 whatever the model's autocast dtype: the SDE mean has
terms ~1/sigma that overflow bf16 and log-probs are differences of near-equal numbers.
"""
from __future__ import annotations

import math

import torch

TIMESTEP_SCALE = 1000.0


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan's schedule shift: more steps at high noise for larger shift (sampler `shift`, 3.0 at 480p)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sampling_sigmas(steps: int, shift: float) -> torch.Tensor:
    """steps+1 decreasing sigmas from 1 to 0 (float64 for an exact, device-independent schedule)."""
    return shift_sigma(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift).float()


def noisy_and_target(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-matching interpolation and its velocity target; sigma has one value per batch item."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise, noise - x0


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred.float() - target.float()).pow(2).mean(dim=tuple(range(1, pred.dim())))


def sde_std(sigma: torch.Tensor, sigma_cap: float, noise_level: float) -> torch.Tensor:
    """s = a * sqrt(sigma / (1 - sigma)); at sigma == 1 the denominator uses the next sigma of the schedule
    (as Flow-GRPO does) instead of dividing by zero."""
    denom = 1 - torch.where(sigma >= 1, torch.as_tensor(sigma_cap, dtype=sigma.dtype, device=sigma.device), sigma)
    return noise_level * torch.sqrt(sigma / denom)


def sde_step_mean(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
                  sigma_cap: float, noise_level: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flow-GRPO's reverse SDE step (Liu et al. 2025), fp32:
        mu = x (1 + s^2 dt / (2 sigma)) + v (1 + s^2 (1 - sigma) / (2 sigma)) dt,  x' = mu + s sqrt(-dt) eps.
    Returns (mu, s, step std s*sqrt(-dt)); sigma / sigma_next broadcast as [B,1,...]."""
    x, v = x.float(), v.float()
    shape = (-1, *([1] * (x.dim() - 1)))
    sigma = sigma.float().view(shape)
    sigma_next = sigma_next.float().view(shape)
    dt = sigma_next - sigma
    s = sde_std(sigma, sigma_cap, noise_level)
    mu = x * (1 + s ** 2 / (2 * sigma) * dt) + v * (1 + s ** 2 * (1 - sigma) / (2 * sigma)) * dt
    return mu, s, s * torch.sqrt(-dt)


def gaussian_logprob(x_next: torch.Tensor, mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Mean over all but the batch dim of log N(x_next; mu, std^2) (a per-dim average, as Flow-GRPO)."""
    lp = (-((x_next.detach().float() - mu) ** 2) / (2 * std ** 2) - torch.log(std)
          - 0.5 * math.log(2 * math.pi))
    return lp.mean(dim=tuple(range(1, lp.dim())))


def ode_step(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    shape = (-1, *([1] * (x.dim() - 1)))
    return x.float() + v.float() * (sigma_next.float().view(shape) - sigma.float().view(shape))
