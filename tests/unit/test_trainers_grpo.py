"""Flow-GRPO: the SDE step and log-prob math (Flow-GRPO, Liu et al. 2025), group advantages, the on-policy ratio
(exactly 1), off-policy drift after an update, and a rising toy reward on a tiny WanTransformer3DModel."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rewardloop.trainers.flow import gaussian_logprob, sampling_sigmas, sde_std, sde_step_mean
from rewardloop.trainers.grpo import GRPOTrainer, group_advantages
from rewardloop.trainers.reporting import read_metrics
from rewardloop.trainers.runtime import Runtime
from trainer_toys import build, grpo_config, run_inprocess


def test_sde_step_matches_flow_grpo_formula():
    x, v = torch.full((1, 2), 0.3), torch.full((1, 2), -0.4)
    sigma, sigma_next, a = torch.tensor([0.6]), torch.tensor([0.5]), 0.7
    mu, s, std = sde_step_mean(x, v, sigma, sigma_next, sigma_cap=0.9, noise_level=a)
    s_ref = a * math.sqrt(0.6 / 0.4)
    dt = -0.1
    mu_ref = 0.3 * (1 + s_ref ** 2 * dt / (2 * 0.6)) + -0.4 * (1 + s_ref ** 2 * 0.4 / (2 * 0.6)) * dt
    assert float(s) == pytest.approx(s_ref, rel=1e-6)
    assert float(mu[0, 0]) == pytest.approx(mu_ref, rel=1e-6)
    assert float(std) == pytest.approx(s_ref * math.sqrt(0.1), rel=1e-6)
    # log-prob of the mean itself is the Gaussian's peak; one std away loses exactly 1/2
    peak = -math.log(float(std)) - 0.5 * math.log(2 * math.pi)
    assert float(gaussian_logprob(mu, mu, std)) == pytest.approx(peak, rel=1e-6)
    assert float(gaussian_logprob(mu + std, mu, std)) == pytest.approx(peak - 0.5, rel=1e-6)


def test_sde_std_is_finite_at_sigma_one():
    sig = sampling_sigmas(20, 3.0)
    assert float(sig[0]) == 1.0 and float(sig[-1]) == 0.0 and bool((sig[1:] < sig[:-1]).all())
    s = sde_std(sig[:1], float(sig[1]), 0.7)
    assert torch.isfinite(s).all() and float(s) == pytest.approx(0.7 * math.sqrt(1 / (1 - float(sig[1]))))


def test_group_advantages_normalise_within_groups_and_clip():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0])
    adv, std = group_advantages(r, 4, clip=5.0)
    assert torch.allclose(adv[:4].mean(), torch.tensor(0.0), atol=1e-6)
    assert float(adv[3]) == pytest.approx(1.5 / (float(r[:4].std(unbiased=False)) + 1e-4), rel=1e-5)
    assert torch.equal(adv[4:], torch.zeros(4)) and float(std[1]) == 0.0  # identical rewards: no signal
    adv, _ = group_advantages(torch.tensor([0.0, 0.0, 0.0, 1.0]), 4, clip=1.0)
    assert float(adv.max()) == 1.0 and float(adv.min()) >= -1.0


def _loop(tmp_path: Path, **grpo) -> GRPOTrainer:
    cfg = grpo_config(tmp_path / "data", tmp_path / "run")
    cfg["grpo"].update(grpo)
    cfg = build(cfg, "grpo")
    rt = Runtime(cfg.run, Path(cfg.run.output_dir))
    loop = GRPOTrainer(cfg, rt)
    loop.prepare()
    return loop


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_on_policy_ratio_is_exactly_one_then_drifts_after_an_update(tmp_path, guidance):
    loop = _loop(tmp_path, micro_batch=2, guidance_scale=guidance)
    with torch.no_grad():  # give the LoRA non-zero B so the adapter actually changes the outputs
        for name, p in loop.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    gen = torch.Generator().manual_seed(3)
    prompts = ["grpo prompt 0"] * 4 + ["grpo prompt 1"] * 4
    ro = loop.rollout(prompts, gen)
    assert ro.xs.shape[:2] == (3, 8) and ro.logp.shape == (3, 8)
    chunks = loop._chunks(8)
    assert len(chunks) == 4
    total = 0
    for w in range(3):
        for c in chunks:
            lp, _, _, _ = loop.step_logprob(ro, w, c, with_ref=False)
            ratio = torch.exp(lp - ro.logp[w][c])
            assert torch.equal(ratio, torch.ones_like(ratio)), (w, c, ratio)
            total = total + lp.sum()
    (-total).backward()
    loop.optimizer.step()
    lp, _, _, _ = loop.step_logprob(ro, 0, chunks[0], with_ref=False)
    assert not torch.equal(lp.detach(), ro.logp[0][chunks[0]])


def test_kl_to_reference_is_zero_at_start_and_positive_after_update(tmp_path):
    loop = _loop(tmp_path, kl_beta=0.04)
    ro = loop.rollout(["grpo prompt 0"] * 4, torch.Generator().manual_seed(0))
    _, mu, mu_ref, _ = loop.step_logprob(ro, 0, slice(0, 4), with_ref=True)
    assert torch.equal(mu.detach(), mu_ref)  # LoRA B starts at zero: policy == reference
    with torch.no_grad():
        for name, p in loop.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    _, mu, mu_ref, _ = loop.step_logprob(ro, 0, slice(0, 4), with_ref=True)
    assert float(((mu.detach() - mu_ref) ** 2).mean()) > 0


def test_grpo_raises_toy_reward_and_logs_gold(tmp_path):
    cfg = grpo_config(tmp_path / "data", tmp_path / "run", max_steps=20, checkpoint_every=0)
    result = run_inprocess(cfg, "grpo")
    assert result["status"] == "finished" and Path(result["lora_path"]).is_file()
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 20
    first = sum(r["reward_mean"] for r in rows[:4]) / 4
    last = sum(r["reward_mean"] for r in rows[-4:]) / 4
    assert last > first + 0.03, [round(r["reward_mean"], 4) for r in rows]
    for r in rows:  # one inner epoch: every update is on-policy
        assert r["ratio"] == 1.0 and r["ratio_dev_max"] == 0.0 and r["clipfrac"] == 0.0
    assert all("gold_mean" in r and "adv_abs_mean" in r and "zero_std_groups" in r for r in rows)


def test_second_inner_epoch_is_off_policy_and_clipped(tmp_path):
    cfg = grpo_config(tmp_path / "data", tmp_path / "run", max_steps=2, checkpoint_every=0)
    cfg["grpo"]["inner_epochs"] = 2
    run_inprocess(cfg, "grpo")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert rows[0]["ratio_dev_max"] == 0.0
    assert rows[0]["ratio_dev_max_epoch1"] > 0.0


def test_periodic_validation_is_logged_and_leaves_training_unchanged(tmp_path):
    runs = {}
    for name, validation in (("plain", None), ("validated", {"every": 2, "metrics": ["brightness", "temporal_smoothness"],
                                                             "seeds": [0, 1], "sampling_steps": 3})):
        cfg = grpo_config(tmp_path / "data", tmp_path / name, max_steps=4, checkpoint_every=0)
        if validation:
            cfg["validation"] = validation
        assert run_inprocess(cfg, "grpo")["status"] == "finished"
        runs[name] = read_metrics(tmp_path / name / "metrics.jsonl")
    val = [r for r in runs["validated"] if "val_brightness" in r]
    assert [r["step"] for r in val] == [2, 4] and all("val_temporal_smoothness" in r for r in val)
    assert [r["reward_mean"] for r in runs["plain"]] == [r["reward_mean"] for r in runs["validated"]]


def test_a_group_is_scored_while_the_next_samples_with_the_same_samples_and_rewards(tmp_path, monkeypatch):
    """prompts_per_step 2: group 0's clips are scored on the reward thread (one batched call per group) while group 1
    is sampled; samples, rewards, losses and gold equal those of rolling both groups out together and scoring after;
    the reward thread ends with its step."""
    import threading

    reward = {"name": "composite", "weights": {"flow_smoothness": 1.0, "framing": 1.0}, "params": {"device": "auto"}}
    runs, threads = {}, []
    real = GRPOTrainer.score

    def score(self, frames, prompts):
        threads.append((threading.current_thread().name, frames.shape[0]))
        return real(self, frames, prompts)

    monkeypatch.setattr(GRPOTrainer, "score", score)
    for overlap in (True, False):
        monkeypatch.setattr(GRPOTrainer, "overlap_rewards", overlap)
        cfg = grpo_config(tmp_path / "data", tmp_path / f"run_{overlap}", max_steps=2, checkpoint_every=0)
        cfg["grpo"].update(reward=reward, height=128, width=128)  # preview-decoded clips of 16x16 px
        assert run_inprocess(cfg, "grpo")["status"] == "finished"
        runs[overlap] = read_metrics(tmp_path / f"run_{overlap}" / "metrics.jsonl")
    overlapped, together = threads[:4], threads[4:]
    assert all(name.startswith("rewardloop-grpo-reward") and n == 4 for name, n in overlapped), overlapped
    assert together == [(threading.main_thread().name, 8)] * 2
    assert not [t for t in threading.enumerate() if t.name.startswith("rewardloop-grpo-reward")]  # none outlives a run
    keys = ("reward_mean", "reward_std", "gold_mean", "loss", "grad_norm", "ratio", "adv_abs_mean")
    assert [[r[k] for k in keys] for r in runs[True]] == [[r[k] for k in keys] for r in runs[False]]
    assert runs[True][0]["reward_std"] > 0
