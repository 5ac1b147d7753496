"""Job manager: trainer subprocesses whose state lives on disk. Cancel (SIGTERM -> checkpoint -> exit before
the 10 s grace ends), resume to completion, a restarted manager (new object, no process handle) still sees
and controls the job, dead pids are detected, failures surface their error, and a "finished" without its
LoRA file is reported as failed."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from rewardloop.trainers.checkpoint import checkpoint_dirs
from rewardloop.trainers.jobs import JobManager, pid_alive
from rewardloop.trainers.reporting import write_json_atomic
from trainer_toys import dpo_config, grpo_config, write_dpo_toy


def _wait(predicate, timeout=120.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def test_cancel_resume_and_manager_restart(tmp_path):
    cfg = grpo_config(tmp_path / "data", "", max_steps=24, checkpoint_every=100)
    cfg["grpo"]["sampling_steps"] = 10
    manager = JobManager(tmp_path / "jobs", python=sys.executable)
    job = manager.launch("grpo", cfg, label="toy")
    assert job["status"] == "running" and job["pid"] and Path(job["config_path"]).is_file()
    _wait(lambda: (manager.status(job["id"])["progress"].get("step") or 0) >= 2)

    # The server restarts: a new manager with no process handle reads the job from disk.
    restarted = JobManager(tmp_path / "jobs", python=sys.executable)
    assert [j["id"] for j in restarted.list_jobs()] == [job["id"]]
    seen = restarted.status(job["id"])
    assert seen["status"] == "running" and seen["last_metrics"]["reward_mean"] > 0

    state = restarted.cancel(job["id"], grace_s=10.0)
    assert state["status"] == "cancelled", state
    assert state["stop_reason"] == "graceful"  # exited on SIGTERM before the 10 s grace ran out
    assert not pid_alive(state["pid"], state.get("pid_create_time"))
    run_dir = Path(state["run_dir"])
    saved = [s for s, _ in checkpoint_dirs(run_dir)]
    assert saved and 2 <= saved[-1] < 24  # checkpointed on cancel although checkpoint_every is 100

    state = restarted.resume(job["id"])
    assert state["status"] == "running" and state["launches"] == 2
    final = _wait(lambda: (s := restarted.status(job["id"]))["status"] in ("finished", "failed") and s, timeout=180)
    assert final["status"] == "finished", final.get("error")
    assert Path(final["lora_path"]).is_file() and final["progress"]["step"] == 24
    log = (tmp_path / "jobs" / job["id"] / "log.txt").read_text()
    assert "Resumed from" in log and log.count("=== launch") == 2


def test_killed_trainer_is_detected_as_failed_with_log_tail(tmp_path):
    cfg = grpo_config(tmp_path / "data", "", max_steps=500)
    manager = JobManager(tmp_path / "jobs")
    job = manager.launch("grpo", cfg)
    os.killpg(job["pid"], signal.SIGKILL)  # e.g. the OOM killer
    _wait(lambda: not pid_alive(job["pid"], job.get("pid_create_time")), timeout=20)
    state = JobManager(tmp_path / "jobs").status(job["id"])
    assert state["status"] == "failed"
    assert "exited" in state["error"] and "without reporting a result" in state["error"]


def test_failing_trainer_surfaces_its_error(tmp_path):
    write_dpo_toy(tmp_path / "data", n_pairs=2)
    cfg = dpo_config(tmp_path / "data", "")
    cfg["dpo"]["text_embeddings"] = str(tmp_path / "data" / "no_such_cache.safetensors")
    manager = JobManager(tmp_path / "jobs")
    job = manager.launch("dpo", cfg)
    final = _wait(lambda: (s := manager.status(job["id"]))["status"] != "running" and s, timeout=120)
    assert final["status"] == "failed"
    assert "no_such_cache.safetensors does not exist" in final["error"]
    assert final["lora_path"] is None


def test_invalid_config_is_rejected_before_launch(tmp_path):
    cfg = grpo_config(tmp_path / "data", "")
    cfg["grpo"]["frames"] = 64
    manager = JobManager(tmp_path / "jobs")
    with pytest.raises(ValueError, match="4k\\+1"):
        manager.launch("grpo", cfg)
    assert manager.list_jobs() == []


def test_success_without_lora_file_is_a_failure(tmp_path):
    manager = JobManager(tmp_path / "jobs")
    run_dir = tmp_path / "jobs" / "grpo-x" / "run"
    job = {"id": "grpo-x", "method": "grpo", "status": "running", "run_dir": str(run_dir), "pid": 2 ** 22 + 7,  # above Linux's pid_max
           "pid_create_time": 0.0, "started": time.time() - 5, "launches": 1, "progress": {}, "last_metrics": {}}
    write_json_atomic(tmp_path / "jobs" / "grpo-x" / "job.json", job)
    write_json_atomic(run_dir / "result.json", {"status": "finished", "time": time.time(),
                                                "lora_path": str(run_dir / "missing.safetensors")})
    state = manager.status("grpo-x")
    assert state["status"] == "failed" and "missing.safetensors is missing" in state["error"]
    with pytest.raises(ValueError, match="No training job"):
        manager.status("nope")
    with pytest.raises(ValueError, match="Invalid job id"):
        manager.status("../etc")
    assert json.loads((tmp_path / "jobs" / "grpo-x" / "job.json").read_text())["status"] == "failed"
