"""The multi-process path on CPU (torchrun, gloo): 2 GRPO processes under DDP and with `distributed: fsdp`
(checkpointing through accelerate's save_state every step) end with the same LoRA and the same metrics, and in
a DDP run resumed from its step-2 checkpoint reproduces step 3 exactly. (On CPUs accelerate has no FSDP and runs
`distributed: fsdp` as DDP; the sharded FSDP2 path needs GPUs.)"""
from __future__ import annotations

import json
import shutil
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

    # Resume: drop the step-3 checkpoint, run again: it resumes from step 2 and redoes step 3 with the restored
    # LoRA, optimizer, RNG and generators of both processes, logging the same numbers and exporting the same LoRA
    # (identical content, so the existing file is kept rather than a numbered copy written beside it).
    for mode in ("ddp",):
        run = tmp_path / mode
        shutil.rmtree(run / "checkpoints" / "step_0000003")
        before = read_metrics(run / "metrics.jsonl")
        proc = _torchrun(outs[mode])
        assert proc.returncode == 0 and "Resumed from" in proc.stderr, proc.stderr[-3000:]
        strip = lambda rows: [{k: v for k, v in r.items() if k != "step_time_s"} for r in rows]  # noqa: E731
        assert strip(read_metrics(run / "metrics.jsonl")) == strip(before), mode
        again = json.loads((run / "result.json").read_text())
        assert again["lora_path"] == results[mode]["lora_path"], (mode, again)
