"""The multi-process path on CPU (torchrun, gloo): 2 GRPO processes under DDP and under FSDP2 (checkpointing
through accelerate's sharded state every step) end with the same LoRA and the same metrics."""
from __future__ import annotations

import json
import subprocess
import sys

from rewardloop.trainers.reporting import read_metrics
from trainer_toys import LAUNCHER, env, grpo_config, write_config


def _torchrun(config_path, *extra):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(LAUNCHER),
           "grpo", "--config", str(config_path), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env())


def test_ddp_and_fsdp_agree(tmp_path):
    from safetensors.torch import load_file

    outs = {}
    for mode in ("ddp", "fsdp"):
        cfg = grpo_config(tmp_path / "data", tmp_path / mode, max_steps=3, checkpoint_every=1)
        cfg["run"]["distributed"] = mode
        outs[mode] = write_config(tmp_path / f"{mode}.json", cfg)
    for mode in outs:
        proc = _torchrun(outs[mode])
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "fsdp" / "checkpoints" / "step_0000003" / "accelerate").is_dir()

    results = {m: json.loads((tmp_path / m / "result.json").read_text()) for m in outs}
    assert all(r["status"] == "finished" and r["step"] == 3 for r in results.values())
    ddp_rows, fsdp_rows = (read_metrics(tmp_path / m / "metrics.jsonl") for m in ("ddp", "fsdp"))
    assert [r["step"] for r in fsdp_rows] == [1, 2, 3]
    for a, b in zip(ddp_rows, fsdp_rows):  # 8 samples per step: 2 processes x 2 prompts x group of 4
        assert a["reward_mean"] == b["reward_mean"] and a["ratio"] == b["ratio"] == 1.0
    lora = {m: load_file(results[m]["lora_path"]) for m in outs}
    assert set(lora["ddp"]) == set(lora["fsdp"])
    for k in lora["ddp"]:
        assert (lora["ddp"][k].float() - lora["fsdp"][k].float()).abs().max() <= 1e-2 * max(
            1.0, float(lora["ddp"][k].float().abs().max())), k
