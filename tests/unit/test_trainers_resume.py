"""Checkpoint/resume: a GRPO trainer killed with SIGKILL mid-run and started again continues from its last
checkpoint and produces exactly the metrics of an uninterrupted run with the same seed (LoRA, optimizer,
RNG and data position all restored). The trainer runs as a real subprocess through trainers/launch.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from rewardloop.trainers.checkpoint import checkpoint_dirs
from rewardloop.trainers.reporting import read_metrics
from trainer_toys import env, grpo_config, launch_cmd, run_inprocess, run_subprocess, write_config

TIMING_KEYS = {"step_time_s"}


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL semantics")
def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path):
    steps = 12

    def config(out):
        cfg = grpo_config(tmp_path / "data", out, max_steps=steps, checkpoint_every=3, keep_checkpoints=2)
        cfg["grpo"]["sampling_steps"] = 10
        return cfg

    reference = run_inprocess(config(tmp_path / "ref"), "grpo")
    assert reference["status"] == "finished"
    ref_rows = _strip(read_metrics(tmp_path / "ref" / "metrics.jsonl"))
    assert [r["step"] for r in ref_rows] == list(range(1, steps + 1))

    out = tmp_path / "killed"
    path = write_config(tmp_path / "grpo.json", config(out))
    proc = subprocess.Popen(launch_cmd("grpo", path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r.get("step", 0) >= 5 for r in read_metrics(out / "metrics.jsonl")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"trainer ended before it could be killed: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "result.json").exists()  # killed: no result was written
    done = [s for s, _ in checkpoint_dirs(out)]
    assert done and max(done) < steps and max(done) % 3 == 0

    resumed = run_subprocess("grpo", path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "finished" and result["step"] == steps
    assert _strip(read_metrics(out / "metrics.jsonl")) == ref_rows
    assert len(checkpoint_dirs(out)) <= 2  # keep_checkpoints
