"""Exact resume under torchrun, in a given distributed mode: a GRPO run of 3 steps (checkpoint every step), then the
step-3 checkpoint is deleted and the same config run again; the resumed run must log the same metrics and export
the same LoRA. Prints a RESULTS.md row with the checkpoint layout, its size and the save/resume wall times.

The unit tests do this on CPU, where accelerate has no FSDP (`distributed: fsdp` runs as DDP); this script is how
the sharded FSDP2 checkpoint path is checked on GPUs:

    python benchmarks/resume_check.py --device cpu --nproc 2 --distributed ddp              # CPU smoke run
    python benchmarks/resume_check.py --device cuda --nproc 2 --distributed fsdp --model wan2.1_t2v_1.3b
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from _pack import ROOT, describe_device, import_pack

TINY = {"patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 16,
        "out_channels": 16, "text_dim": 32, "freq_dim": 32, "ffn_dim": 64, "num_layers": 2, "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads", "eps": 1e-6}


def config(tmp: Path, args) -> dict:
    from rewardloop.trainers.model import shipped_config
    from rewardloop.trainers.text_embeddings import save_text_embeddings

    model = TINY if args.model == "tiny" else args.model
    text_dim = TINY["text_dim"] if args.model == "tiny" else shipped_config(args.model)["text_dim"]
    prompts = [f"prompt {i}" for i in range(4)]
    (tmp / "prompts.txt").write_text("\n".join(prompts))
    g = torch.Generator().manual_seed(0)
    save_text_embeddings(tmp / "emb.safetensors", prompts, [torch.randn(6, text_dim, generator=g) * 0.1 for _ in prompts])
    gpu = args.device != "cpu"
    return {
        "run": {"output_dir": str(tmp / "run"), "max_steps": 3, "checkpoint_every": 1, "keep_checkpoints": 0,
                "device": args.device, "distributed": args.distributed, "tensorboard": False,
                "mixed_precision": "bf16" if gpu else "no", "num_threads": 0 if gpu else 1},
        "model": {"config": model, "random_init": True, "text_len": 8},
        "lora": {"rank": 4},
        "optim": {"lr": 3e-2},
        "grpo": {"prompts": str(tmp / "prompts.txt"), "text_embeddings": str(tmp / "emb.safetensors"), "frames": 5,
                 "height": args.size, "width": args.size, "group_size": 4, "sampling_steps": 4, "window_size": 2,
                 "decoder": "preview", "reward": {"name": "brightness"}},
    }


def launch(cfg_path: Path, args) -> float:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           str(ROOT / "trainers" / "launch.py"), "grpo", "--config", str(cfg_path)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"trainer failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--distributed", choices=["ddp", "fsdp"], default="fsdp")
    p.add_argument("--model", default="tiny", help="tiny, or a shipped config name (random weights)")
    p.add_argument("--size", type=int, default=32, help="clip height = width (multiple of 16)")
    args = p.parse_args()
    import_pack()
    from rewardloop.trainers.reporting import read_metrics
    from rewardloop.trust.paths import same_content

    tmp = Path(tempfile.mkdtemp(prefix="rl_resume_"))
    try:
        cfg_path = tmp / "grpo.json"
        cfg_path.write_text(json.dumps(config(tmp, args)))
        run = tmp / "run"
        first = launch(cfg_path, args)
        rows = read_metrics(run / "metrics.jsonl")
        lora = Path(json.loads((run / "result.json").read_text())["lora_path"])
        reference = tmp / "reference.safetensors"
        shutil.copyfile(lora, reference)
        step3 = run / "checkpoints" / "step_0000003"
        layout = sorted(p.name for p in (step3 / "accelerate").iterdir())
        size = sum(f.stat().st_size for f in step3.rglob("*") if f.is_file())
        shutil.rmtree(step3)
        second = launch(cfg_path, args)
        strip = lambda rs: [{k: v for k, v in r.items() if k != "step_time_s"} for r in rs]  # noqa: E731
        exact = strip(read_metrics(run / "metrics.jsonl")) == strip(rows)
        again = Path(json.loads((run / "result.json").read_text())["lora_path"])
        same_lora = again == lora and same_content(reference, again)
        dev = torch.device(args.device if args.device != "cuda" or torch.cuda.is_available() else "cpu")
        print(f"| {date.today()} | {describe_device(dev)} | `resume_check.py --device {args.device} --nproc {args.nproc} "
              f"--distributed {args.distributed} --model {args.model} --size {args.size}` GRPO 3 steps, checkpoint "
              f"every step, step-3 checkpoint deleted, run again | metrics identical after resume: **{exact}**; same "
              f"LoRA exported: **{same_lora}**; checkpoint {', '.join(layout)} ({size / 2**20:.1f} MiB); wall "
              f"{first:.1f} s (3 steps + 3 saves) / {second:.1f} s (resume + 1 step) |")
        if not (exact and same_lora):
            raise SystemExit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
