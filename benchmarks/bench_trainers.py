"""Trainer speed and memory on a full-size, randomly initialised Wan 2.1 1.3B transformer (dim 1536, 30 layers,
12 heads, ffn 8960, text dim 4096; compute does not depend on weight values), LoRA rank 32 on attention and
FFN linears, bf16 autocast, gradient checkpointing. Runs the trainers' own step code (DPOTrainer / GRPOTrainer
step: reference pass with the adapter off, policy pass, backward, AdamW, grad clipping) with the config's
speed settings (trainers/speed.py; --compile for torch.compile, whose time shows in the first step).

    python benchmarks/bench_trainers.py                 # DPO pair step at 33x240x416 and 33x480x832, GRPO at 33x240x416
    python benchmarks/bench_trainers.py --dpo --sizes 33x480x832 --steps 10
    python benchmarks/bench_trainers.py --grpo --prompts-per-step 2          # 1 GPU, 2 groups of 4 per step
    torchrun --nproc_per_node 2 benchmarks/bench_trainers.py --grpo --ddp    # 2 GPUs, 1 group of 4 per GPU
    python benchmarks/bench_trainers.py --tiny          # CPU smoke run (tiny model, tiny shapes)
    python benchmarks/bench_trainers.py --checkpointing 0.5 --compile default
    python benchmarks/bench_trainers.py --grpo --reward composite  # GRPO with the toy reward, then the composite

GRPO iteration = group of 4 samples x 20 sampling steps (SDE on the 4-step train window, ODE elsewhere), VAE
decode of the 4 clips (random-init Wan 2.1 VAE unless --no-vae), reward, then 4 window steps of policy
fwd+bwd and one optimizer step. `--reward composite`: the same iteration twice in one run, with the toy reward
(brightness) and with the pack's composite reward at its default weights (the models of bench_rewards.py: real
where installed, random full-size networks otherwise), each row with the seconds the reward took per iteration and
their share of it. With --compile the warm-up defaults to 10 steps: after a start from a warm inductor cache the
first ~8 steps run a CPU-heavy phase (RESULTS.md, DPO variance) that is not the steady step. The same global batch
on 1 GPU (--prompts-per-step 2) and on 2 GPUs (--ddp, 1 prompt per GPU) makes the loss/reward curves comparable;
--out FILE writes per-step metrics as JSONL.
Prints markdown rows for benchmarks/RESULTS.md (rank 0 only).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from _pack import import_pack

TINY_WAN = {"patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 16,
            "out_channels": 16, "text_dim": 32, "freq_dim": 32, "ffn_dim": 64, "num_layers": 2,
            "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6}


def _parse_size(text: str) -> tuple[int, int, int]:
    f, h, w = (int(x) for x in text.lower().split("x"))
    return f, h, w


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class Bench:
    def __init__(self, args):
        from rewardloop.trainers.config import RunSettings
        from rewardloop.trainers.runtime import Runtime

        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="rl_bench_"))
        run = RunSettings(output_dir=str(self.tmp / "run"), device="cpu" if args.tiny else "auto",
                          mixed_precision="no" if args.tiny else "bf16", num_threads=1 if args.tiny else 0,
                          tensorboard=False)
        self.rt = Runtime(run, self.tmp / "run")
        self.dev = self.rt.device
        self.text_dim = 32 if args.tiny else 4096
        self.model_cfg = TINY_WAN if args.tiny else "wan2.1_t2v_1.3b"
        self.vae = "" if args.no_vae else self._random_vae()

    def _random_vae(self) -> str:
        from diffusers import AutoencoderKLWan

        from rewardloop.trainers.model import shipped_config

        cfg = {k: v for k, v in shipped_config("wan2.1_vae").items() if not k.startswith("_")}
        if self.args.tiny:
            cfg["base_dim"] = 8
        torch.manual_seed(0)
        path = self.tmp / "vae"
        AutoencoderKLWan(**cfg).save_pretrained(str(path))
        return str(path)

    def _embeddings(self, prompts: list[str]) -> str:
        from rewardloop.trainers.text_embeddings import save_text_embeddings

        g = torch.Generator().manual_seed(0)
        return str(save_text_embeddings(self.tmp / "emb.safetensors", prompts,
                                        [torch.randn(8 if self.args.tiny else 64, self.text_dim, generator=g) * 0.1 for _ in prompts]))

    def _base(self, tag: str) -> dict:
        a = self.args
        return {
            "run": {"output_dir": str(self.tmp / tag), "seed": 0, "max_steps": a.steps + a.warmup,
                    "checkpoint_every": 0, "device": "cpu" if a.tiny else "auto",
                    "mixed_precision": "no" if a.tiny else "bf16", "tensorboard": False,
                    "num_threads": 1 if a.tiny else 0, "compile": a.compile or False, "attention": a.attention},
            "model": {"config": self.model_cfg, "random_init": True, "gradient_checkpointing": _ckpt_setting(a),
                      "checkpoint_keep_attention": a.keep_attention,
                      "text_len": 16 if a.tiny else 512, **({"vae": self.vae} if self.vae else {})},
            "lora": {"rank": 4 if a.tiny else 32},
            "optim": {"lr": 1e-4},
        }

    def _measure(self, loop, label: str) -> dict:
        a = self.args
        loop.prepare()
        loop.reseed(0)
        reward_s = [0.0]
        if hasattr(loop, "score"):  # GRPO: time spent in the reward (on the reward thread when groups overlap)
            score = loop.score

            def timed_score(frames, prompts):
                t = time.perf_counter()
                try:
                    return score(frames, prompts)
                finally:
                    reward_s[0] += time.perf_counter() - t
            loop.score = timed_score
        if a.no_gc_freeze:
            loop._gc_frozen = True  # skip Trainer.step's gc.freeze() after the first step (A/B of GC pauses)
        gc_ms = [0.0]
        gc_t0 = [0.0]

        def gc_timer(phase, info):
            if phase == "start":
                gc_t0[0] = time.perf_counter()
            elif gc_t0[0]:
                gc_ms[0] += 1000 * (time.perf_counter() - gc_t0[0])

        gc.callbacks.append(gc_timer)
        times, rows, rewards = [], [], []
        for i in range(a.warmup + a.steps):
            if i == a.warmup:
                gc_ms[0] = 0.0
                if self.dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(self.dev)
            _sync(self.dev)
            reward_s[0] = 0.0
            t0 = time.perf_counter()
            metrics = loop.step(i)
            _sync(self.dev)
            dt = time.perf_counter() - t0
            metrics = self.rt.mean_across(metrics)
            rows.append({"step": i + 1, "time_s": dt, "reward_s": reward_s[0], **metrics})
            if i >= a.warmup:
                times.append(dt)
                rewards.append(reward_s[0])
        gc.callbacks.remove(gc_timer)
        peak = torch.cuda.max_memory_allocated(self.dev) / 2 ** 30 if self.dev.type == "cuda" else float("nan")
        times.sort()
        out = {"label": label, "median_s": times[len(times) // 2], "min_s": times[0], "peak_gib": peak, "rows": rows,
               "first_s": rows[0]["time_s"], "gc_ms_per_step": gc_ms[0] / max(1, a.steps),
               "reward_s": sorted(rewards)[len(rewards) // 2] if rewards else 0.0}
        del loop
        self.rt.accelerator.free_memory()
        gc.collect()
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
        return out

    def dpo(self, frames: int, height: int, width: int) -> dict:
        return self._measure(self.dpo_loop(frames, height, width), f"DPO pair step {frames}x{height}x{width}")

    def dpo_loop(self, frames: int, height: int, width: int):
        from rewardloop.trainers.config import config_from_dict, latent_frames
        from rewardloop.trainers.dpo import DPOTrainer
        from rewardloop.trainers.dpo_data import save_latent

        data = self.tmp / f"dpo_{frames}x{height}x{width}"
        data.mkdir(parents=True, exist_ok=True)
        prompts = [f"bench prompt {i}" for i in range(4)]
        emb = self._embeddings(prompts)
        g = torch.Generator().manual_seed(1)
        shape = (16, latent_frames(frames), height // 8, width // 8)
        rows = []
        for i in range(4):
            save_latent(data / f"w{i}.safetensors", torch.randn(shape, generator=g))
            save_latent(data / f"l{i}.safetensors", torch.randn(shape, generator=g))
            rows.append({"prompt": prompts[i], "chosen": f"w{i}.safetensors", "rejected": f"l{i}.safetensors"})
        (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = self._base(f"dpo_{frames}x{height}x{width}")
        cfg["model"].pop("vae", None)
        cfg["dpo"] = {"data": str(data / "pairs.jsonl"), "text_embeddings": emb, "frames": frames,
                      "height": height, "width": width}
        return DPOTrainer(config_from_dict(cfg, method="dpo"), self.rt)

    def grpo(self, frames: int, height: int, width: int, reward: str = "brightness") -> dict:
        return self._measure(self.grpo_loop(frames, height, width, reward),
                             f"GRPO iteration {frames}x{height}x{width}, reward {reward}")

    def reward_spec(self, reward: str) -> dict:
        """The toy reward, or the pack's composite at its default weights on the models bench_rewards.py prepares
        (real where installed, random full-size networks otherwise)."""
        if reward != "composite":
            return {"name": reward}
        import bench_rewards

        from rewardloop.rewards import default_runtime

        if not getattr(self, "_reward_models", None):
            self._reward_models = bench_rewards.prepare_models(bench_rewards.BENCH_MODELS)
            default_runtime().roots.set([bench_rewards.BENCH_MODELS])
            print(f"[bench] reward models: {json.dumps(self._reward_models)}", flush=True)
        return {"name": "composite", "params": {"options": {"caption_consistency": dict(bench_rewards.TEXT_OPTIONS)}}}

    def grpo_loop(self, frames: int, height: int, width: int, reward: str = "brightness"):
        from rewardloop.trainers.config import config_from_dict
        from rewardloop.trainers.grpo import GRPOTrainer

        a = self.args
        prompts = [f"bench prompt {i}" for i in range(8)]
        emb = self._embeddings(prompts + [""])
        (self.tmp / "prompts.txt").write_text("\n".join(prompts))
        cfg = self._base(f"grpo_{frames}x{height}x{width}")
        cfg["grpo"] = {"prompts": str(self.tmp / "prompts.txt"), "text_embeddings": emb, "frames": frames,
                       "height": height, "width": width, "group_size": 4, "prompts_per_step": a.prompts_per_step,
                       "sampling_steps": 4 if a.tiny else 20, "window_size": 2 if a.tiny else 4,
                       "kl_beta": a.kl_beta, "guidance_scale": a.guidance, "reward": self.reward_spec(reward),
                       "decoder": "vae" if self.vae else "preview"}
        trainer = GRPOTrainer(config_from_dict(cfg, method="grpo"), self.rt)
        trainer.overlap_rewards = not a.no_overlap
        return trainer


def _ckpt_setting(a):
    frac = 0.0 if a.no_checkpointing else a.checkpointing
    return True if frac >= 1 else (False if frac <= 0 else frac)


def _ckpt_text(a) -> str:
    frac = _ckpt_setting(a)
    if frac is False:
        return "checkpointing off"
    keep = ", attention outputs kept" if a.keep_attention else ""
    return f"checkpointing {'all blocks' if frac is True else format(frac, 'g') + ' of blocks'}{keep}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dpo", action="store_true")
    p.add_argument("--grpo", action="store_true")
    p.add_argument("--sizes", default="", help="comma list of FxHxW for DPO (default 33x240x416,33x480x832)")
    p.add_argument("--grpo-size", default="33x240x416")
    p.add_argument("--steps", type=int, default=5, help="measured steps")
    p.add_argument("--warmup", type=int, default=None,
                   help="unmeasured first steps (default 2; 10 with --compile: past the CPU-heavy phase after a start "
                        "from a warm inductor cache)")
    p.add_argument("--no-overlap", action="store_true",
                   help="with --prompts-per-step > 1: score all groups after sampling (no reward thread), to compare")
    p.add_argument("--reward", default="brightness",
                   help="GRPO reward: brightness (toy) or composite (then the toy reward runs first, same run)")
    p.add_argument("--prompts-per-step", type=int, default=1, help="GRPO groups per process per step")
    p.add_argument("--kl-beta", type=float, default=0.0, help="> 0 adds the reference pass for the KL term")
    p.add_argument("--guidance", type=float, default=1.0, help="> 1 samples and trains with CFG (2x forward cost)")
    p.add_argument("--no-vae", action="store_true", help="GRPO without VAE decode (preview decoder)")
    p.add_argument("--no-checkpointing", action="store_true", help="same as --checkpointing 0")
    p.add_argument("--checkpointing", type=float, default=1.0, help="fraction of blocks checkpointed (1 = all)")
    p.add_argument("--no-gc-freeze", action="store_true", help="keep the GC's full passes over the first step's objects")
    p.add_argument("--keep-attention", action="store_true", help="checkpointed blocks keep attention outputs")
    p.add_argument("--compile", default="", help="torch.compile the blocks: default | max-autotune-no-cudagraphs")
    p.add_argument("--attention", default="auto", help="SDPA backend first: auto | cudnn | flash | efficient | math")
    p.add_argument("--ddp", action="store_true", help="expect torchrun (world size > 1), DDP")
    p.add_argument("--tiny", action="store_true", help="CPU smoke run with a tiny model")
    p.add_argument("--out", default="", help="write per-step metrics of every run as JSONL")
    args = p.parse_args()
    if args.warmup is None:
        args.warmup = 10 if args.compile else 2
    if not args.dpo and not args.grpo:  # default: everything; under --ddp only GRPO (the multi-GPU target)
        args.dpo, args.grpo = not args.ddp, True
    if args.ddp and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        p.error("--ddp needs torchrun --nproc_per_node N (N >= 2)")
    if args.tiny:
        sizes = [(5, 32, 32)]
        grpo_size = (5, 32, 32)
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
    else:
        sizes = [_parse_size(s) for s in (args.sizes or "33x240x416,33x480x832").split(",")]
        grpo_size = _parse_size(args.grpo_size)
    import_pack()
    bench = Bench(args)
    results = []
    if args.dpo:
        results += [bench.dpo(*s) for s in sizes]
    if args.grpo:
        for reward in (["brightness"] if args.reward == "brightness" else ["brightness", args.reward]):
            results.append(bench.grpo(*grpo_size, reward))
    if not bench.rt.is_main:
        return
    dev = bench.dev
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU {os.cpu_count()} cores"
    backend = f"ROCm {torch.version.hip}" if getattr(torch.version, "hip", None) else (
        f"CUDA {torch.version.cuda}" if dev.type == "cuda" else "cpu")
    model = "tiny Wan (2 layers, dim 32)" if args.tiny else "Wan2.1-1.3B-shaped random init"
    world = bench.rt.world
    print(f"\n<!-- {platform.node()} torch {torch.__version__} {backend}; world size {world} -->")
    print("| date | machine | benchmark (script, settings) | numbers |\n|---|---|---|---|")
    for r in results:
        extra = ""
        if r["label"].startswith("GRPO"):
            samples = 4 * args.prompts_per_step * world
            toy = next(t for t in results if t["label"].startswith("GRPO") and t["label"].endswith("brightness"))
            extra = (f"; {samples / r['median_s']:.2f} samples/s ({samples} samples/step over {world} process(es)); "
                     f"reward {r['reward_s'] * 1000:.0f} ms/iteration ({100 * r['reward_s'] / r['median_s']:.0f}% of it"
                     f"{', overlapping the next group' if args.prompts_per_step > 1 and not args.no_overlap else ''})"
                     + (f", **{r['median_s'] / toy['median_s']:.2f}x the toy reward's iteration**"
                        if r is not toy else "")
                     + f"; VAE decode {'off' if args.no_vae else 'on'}, KL {'on' if args.kl_beta > 0 else 'off'}, "
                     f"CFG {args.guidance:g}")
        settings = (f"`bench_trainers.py` {r['label']}, {model}, LoRA r{4 if args.tiny else 32}, "
                    f"{'fp32' if args.tiny else 'bf16'}, {_ckpt_text(args)}, attention {args.attention}, "
                    f"compile {args.compile or 'off'}{', DDP x' + str(world) if world > 1 else ''}")
        print(f"| {datetime.date.today()} | {gpu}, torch {torch.__version__} | {settings} | "
              f"{r['median_s'] * 1000:.0f} ms/step median (min {r['min_s'] * 1000:.0f}) over {args.steps} steps "
              f"after {args.warmup} warm-up; "
              f"peak {'n/a' if r['peak_gib'] != r['peak_gib'] else format(r['peak_gib'], '.1f') + ' GiB'}{extra}; "
              f"first step {r['first_s']:.1f} s{' (incl. compile)' if args.compile else ''}; "
              f"GC {r['gc_ms_per_step']:.0f} ms/step |")
    for r in results:
        if r["label"].startswith("GRPO"):
            curve = [(row["step"], row.get("loss"), row.get("reward_mean")) for row in r["rows"]]
            print(f"\n{r['label']} curve (step, loss, reward_mean):",
                  ", ".join(f"({s}, {l:.4g}, {m:.4g})" for s, l, m in curve))
    if args.out:
        with open(args.out, "w") as f:
            for r in results:
                for row in r["rows"]:
                    f.write(json.dumps({"label": r["label"], "world": world, **row}) + "\n")


if __name__ == "__main__":
    main()
