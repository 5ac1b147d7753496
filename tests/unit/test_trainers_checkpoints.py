"""Checkpoint corruption matrix: whatever is wrong with the newest checkpoint (truncated, zero bytes, garbage,
missing tensors, a missing key, the wrong step, a missing file, a hostile pickle, an older format, an unfinished
save), resuming names the file, falls back to the newest intact checkpoint and continues exactly as an
uninterrupted run; when no checkpoint is intact the run stops with an error naming every file, never a raw
KeyError or SafetensorError."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from rewardloop.trainers import checkpoint as ckpt
from rewardloop.trainers.grpo import GRPOTrainer
from rewardloop.trainers.reporting import read_metrics
from rewardloop.trainers.runtime import Runtime
from trainer_toys import build, grpo_config, run_inprocess, run_subprocess, write_config

MARKER = "/tmp/rewardloop_hostile_checkpoint_marker"


def _config(root, out, steps):
    cfg = grpo_config(root / "data", out, max_steps=steps, checkpoint_every=1, keep_checkpoints=0)
    cfg["grpo"]["sampling_steps"] = 4
    return cfg


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "step_time_s"} for r in rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-step run with checkpoints after steps 1 and 2, and the same run trained to 3 steps uninterrupted."""
    root = tmp_path_factory.mktemp("ckpt")
    assert run_inprocess(_config(root, root / "two", 2), "grpo")["status"] == "finished"
    assert run_inprocess(_config(root, root / "ref", 3), "grpo")["status"] == "finished"
    return root


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _torch_save_without(path, key=None, **changes):
    from accelerate.utils import load

    state = load(path, weights_only=True)
    state.pop(key, None)
    state.update(changes)
    torch.save(state, path)


def _corrupt(kind: str, step_dir):
    acc = step_dir / "accelerate"
    model, opt, rng, own = (acc / n for n in ("model.safetensors", "optimizer.bin", "random_states_0.pkl",
                                              "custom_checkpoint_0.pkl"))
    if kind == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
        return model
    if kind == "zero bytes":
        opt.write_bytes(b"")
        return opt
    if kind == "garbage":
        rng.write_bytes(os.urandom(3000))
        return rng
    if kind == "missing tensors":
        tensors = load_file(str(model))
        save_file({k: v for i, (k, v) in enumerate(sorted(tensors.items())) if i % 2}, str(model))
        return model
    if kind == "missing key":
        _torch_save_without(own, "step")
        return own
    if kind == "wrong step":
        _torch_save_without(own, step=7)
        return own
    if kind == "missing file":
        opt.unlink()
        return opt
    if kind == "hostile pickle":
        own.write_bytes(pickle.dumps({"format": ckpt.FORMAT, "step": _Evil()}))
        return own
    if kind == "older format":
        shutil.rmtree(acc)
        (step_dir / "state.json").write_text(json.dumps({"step": 2}))
        return step_dir
    raise AssertionError(kind)


MATRIX = ["truncated", "zero bytes", "garbage", "missing tensors", "missing key", "wrong step", "missing file",
          "hostile pickle", "older format"]


@pytest.mark.parametrize("kind", MATRIX)
def test_corrupt_newest_checkpoint_is_named_and_skipped(runs, tmp_path, kind):
    run = tmp_path / "run"
    shutil.copytree(runs / "two", run)
    bad = _corrupt(kind, run / "checkpoints" / "step_0000002")
    trainer = GRPOTrainer(build(_config(runs, run, 3), "grpo"), Runtime(build(_config(runs, run, 3), "grpo").run, run))
    trainer.prepare()
    assert ckpt.restore(trainer) == 1
    assert str(bad) in trainer.resume_note and "step_0000001" in trainer.resume_note, trainer.resume_note
    assert not os.path.exists(MARKER)


def test_fallback_resume_continues_exactly_and_says_so(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "two", run)
    bad = _corrupt("truncated", run / "checkpoints" / "step_0000002")
    # an unfinished save of step 3 (killed mid-write) is never taken for a checkpoint
    (run / "checkpoints" / "step_0000003.tmp" / "accelerate").mkdir(parents=True)
    result = run_inprocess(_config(runs, run, 3), "grpo")
    assert result["status"] == "finished" and str(bad) in result["resume_note"]
    assert _strip(read_metrics(run / "metrics.jsonl")) == _strip(read_metrics(runs / "ref" / "metrics.jsonl"))
    progress = json.loads((run / "progress.json").read_text())
    assert str(bad) in progress["note"]


def test_no_intact_checkpoint_stops_with_an_error_naming_the_files(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "two", run)
    bad = [_corrupt("missing key", run / "checkpoints" / "step_0000002"),
           _corrupt("zero bytes", run / "checkpoints" / "step_0000001")]
    config = write_config(tmp_path / "grpo.json", _config(runs, run, 3))
    proc = run_subprocess("grpo", config)
    assert proc.returncode == 1, proc.stderr[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "failed" and result["error_type"] == "CheckpointError", result
    assert all(str(p) in result["error"] for p in bad), result["error"]
    assert "KeyError" not in result["error"] and "SafetensorError" not in result["error"]
