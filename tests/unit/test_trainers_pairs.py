"""Preference-pair builder: clips scored per prompt with a reward function become chosen/rejected rows
that the DPO loader reads; unreadable clips are skipped and counted (or stop the run)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rewardloop.trainers.dpo_data import load_pair_rows
from rewardloop.trainers.pairs import make_pairs
from rewardloop.trainers.video_io import write_clip
from trainer_toys import build, dpo_config, run_inprocess


def _clips(root: Path) -> None:
    for p, prompt in enumerate(["a red fox", "a blue lake"]):
        folder = root / f"p{p}"
        folder.mkdir(parents=True)
        (folder / "prompt.txt").write_text(prompt + "\n")
        for level in (0.2, 0.8, 0.5):
            write_clip(folder / f"clip_{int(level * 10)}.mp4", torch.full((5, 32, 32, 3), level))
    (root / "p0" / "broken.mp4").write_bytes(b"\x00" * 64)


def _config(root: Path, **pairs) -> dict:
    return {"pairs": {"clips": str(root / "clips"), "out": str(root / "pairs.jsonl"), "reward": {"name": "brightness"},
                      **pairs},
            "run": {"device": "cpu", "num_threads": 1}}


def test_best_worst_pairs_from_a_clip_folder(tmp_path):
    _clips(tmp_path / "clips")
    result = run_inprocess(_config(tmp_path), "pairs")
    assert result["status"] == "finished" and result["pairs"] == 2 and result["scored"] == 6
    assert result["skipped"] == 1 and "broken.mp4" in result["skipped_errors"][0]
    rows = [json.loads(l) for l in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert {r["prompt"] for r in rows} == {"a red fox", "a blue lake"}
    for r in rows:
        assert r["chosen"].endswith("clip_8.mp4") and r["rejected"].endswith("clip_2.mp4")
        assert r["chosen_score"] > r["rejected_score"]
    # the DPO loader reads the file as written (paths relative to the JSONL)
    cfg = dpo_config(tmp_path, tmp_path / "out")
    cfg["dpo"]["data"] = str(tmp_path / "pairs.jsonl")
    listed, bad = load_pair_rows(build(cfg, "dpo"))
    assert len(listed) == 2 and not bad and all(r.chosen.is_file() for r in listed)
    scores = (tmp_path / "pairs.jsonl.scores.jsonl").read_text().splitlines()
    assert len(scores) == 6


def test_all_pairs_margin_and_error_mode(tmp_path):
    scored = [{"prompt": "x", "clip": c, "score": s} for c, s in (("a", 0.9), ("b", 0.5), ("c", 0.45))]
    pairs = make_pairs(scored, "all_pairs", min_margin=0.1, cap=0)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("a", "c"), ("a", "b")]
    assert len(make_pairs(scored, "all_pairs", min_margin=0.0, cap=1)) == 1
    _clips(tmp_path / "clips")
    with pytest.raises(ValueError, match="broken.mp4 could not be decoded"):
        run_inprocess(_config(tmp_path, on_bad_sample="error"), "pairs")


def test_a_prompts_clips_are_scored_in_one_call_and_a_clip_the_reward_refuses_is_named(tmp_path, monkeypatch):
    """With a reward of the pack's suite, a prompt's clips go through one batched call; a clip it cannot score (too
    small for the scorer) makes the builder score that batch clip by clip, so only that clip is skipped, by name."""
    from rewardloop import rewards

    root = tmp_path / "clips"
    for p, prompt in enumerate(["a red fox", "a blue lake"]):
        (root / f"p{p}").mkdir(parents=True)
        (root / f"p{p}" / "prompt.txt").write_text(prompt)
        for k in range(3):
            g = torch.Generator().manual_seed(10 * p + k)
            base = torch.rand(1, 32, 32, 3, generator=g)
            write_clip(root / f"p{p}" / f"clip_{k}.mp4", torch.cat([base.roll(i * (k + 1), dims=2) for i in range(6)]))
    write_clip(root / "p1" / "tiny.mp4", torch.rand(6, 8, 8, 3))
    calls = []
    real = rewards.RewardFunction.batch
    monkeypatch.setattr(rewards.RewardFunction, "batch", lambda self, f, i=None: calls.append(len(f)) or real(self, f, i))
    cfg = _config(tmp_path, reward={"name": "flow_smoothness"})
    result = run_inprocess(cfg, "pairs")
    assert result["status"] == "finished" and result["scored"] == 6 and result["skipped"] == 1
    assert "tiny.mp4" in result["skipped_errors"][0] and "16x16" in result["skipped_errors"][0]
    assert calls[:2] == [3, 4] and calls[2:] == [1] * 4  # p1's batch failed on tiny.mp4: then one by one
    scores = [json.loads(line) for line in (tmp_path / "pairs.jsonl.scores.jsonl").read_text().splitlines()]
    assert len({s["score"] for s in scores}) == 6
