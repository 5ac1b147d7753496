"""Trainer configuration: dataclasses loaded from JSON or YAML, checked before any model is touched.

Every method config has the same common sections (`run`, `model`, `lora`, `optim`) plus its own
(`dpo`, `grpo`, `curriculum`, `pairs`). Unknown keys, wrong types and invalid frame counts are
ValueErrors that name the key and say how to fix it, so a typo fails in a second instead of after the
model has loaded. This module imports nothing heavy (no torch): the CLI validates first.
"""
from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("dpo", "grpo", "curriculum", "pairs")

# Flow-matching (velocity) and epsilon targets need very different DPO betas: the squared-error gap
# between winner and loser is orders of magnitude smaller for eps targets (DESIGN.md section 6).
DEFAULT_DPO_BETA = {"flow": 1000.0, "eps": 5000.0}


def check_frames(frames: int, where: str = "frames") -> int:
    """Wan / Hunyuan video VAEs compress time 4x causally: a clip has 4k+1 frames (33, 49, 65, 97...)."""
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise ValueError(f"{where}: expected a positive integer frame count, got {frames!r}.")
    if (frames - 1) % 4 != 0:
        lower, upper = frames - ((frames - 1) % 4), frames - ((frames - 1) % 4) + 4
        raise ValueError(
            f"{where}={frames} is not a valid Wan frame count: it must be 4k+1 (the video VAE compresses "
            f"time 4x after the first frame). Use {lower} or {upper} (e.g. 33, 49, 65, 97 instead of "
            f"32, 48, 64, 96).")
    return frames


def latent_frames(frames: int) -> int:
    return (check_frames(frames) - 1) // 4 + 1


def check_size(value: int, where: str) -> int:
    """Pixels -> latents is /8 and the transformer patchifies latents 2x2, so sides are multiples of 16."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 16 or value % 16:
        raise ValueError(f"{where}={value!r} must be a positive multiple of 16 (VAE /8, then 2x2 patches).")
    return value


@dataclass
class RewardSpec:
    """A reward or metric function by name (see trainers/reward_fns.py for the registry)."""
    name: str = "brightness"
    params: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)  # for name="composite": metric name -> weight


@dataclass
class RunSettings:
    output_dir: str = ""
    seed: int = 0
    max_steps: int = 100
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 1
    device: str = "auto"                # auto | cpu | cuda | cuda:N (ROCm builds use the cuda names too)
    mixed_precision: str = "auto"       # auto (bf16 on GPU, off on CPU) | bf16 | no
    distributed: str = "ddp"            # ddp | fsdp  (only used when launched with world size > 1)
    resume: bool = True                 # continue from the newest checkpoint in output_dir if there is one
    lora_name: str = ""                 # file name of the exported LoRA; default rewardloop_<method>.safetensors
    lora_dir: str = ""                  # where the exported LoRA goes (ComfyUI models/loras); default output_dir
    tensorboard: bool = True            # also write TensorBoard events when tensorboard is installed
    num_threads: int = 0                # torch CPU threads; 0 = torch default
    compile: bool | str = False         # torch.compile the transformer blocks: false | true (= default) | default |
                                        #   max-autotune-no-cudagraphs (GEMM autotuning: minutes). The first steps
                                        #   include compile time (~30 s per clip size on an H200); 1 GPU or DDP
    attention: str = "auto"             # SDPA backend first tried: auto (cuDNN on NVIDIA, torch's order elsewhere)
                                        #   | cudnn | flash | efficient | math


@dataclass
class ModelSettings:
    config: Any = "auto"                # auto (infer from weights) | shipped name | path to JSON | inline dict
    weights: str = ""                   # ComfyUI diffusion_models .safetensors file or a diffusers folder
    random_init: bool = False           # tests/benchmarks only: no weights, random transformer
    prediction: str = "flow"            # flow (velocity target, Wan) | eps
    flow_shift: float = 3.0             # sigma' = s*sigma / (1 + (s-1)*sigma), as Wan's sampler uses
    dtype: str = "auto"                 # frozen base weights: auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | fp32
    gradient_checkpointing: bool | float = False  # true (all blocks) | false | fraction of blocks in (0, 1]
    checkpoint_keep_attention: bool = False  # checkpointed blocks keep attention outputs: no quadratic recompute,
                                        #   but eager mode pays a Python hook per op (worth it only at long clips)
    text_len: int = 512                 # text embeddings are zero-padded to this many tokens (as Wan/ComfyUI do)
    vae: str = ""                       # Wan 2.1 VAE: ComfyUI models/vae file or diffusers folder
    vae_config: Any = "auto"            # auto (widths read from the VAE file) | shipped name | path | dict


@dataclass
class LoraSettings:
    rank: int = 32
    alpha: float = 0.0                  # 0 = same as rank (scale 1)
    dropout: float = 0.0
    targets: list = field(default_factory=lambda: ["self_attn", "cross_attn", "ffn"])
    init_from: str = ""                 # continue from a LoRA file (ours or a ComfyUI-format Wan LoRA)
    save_dtype: str = "bf16"            # bf16 | fp16 | fp32


@dataclass
class OptimSettings:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float = 1.0              # 0 disables; gradient-norm spikes are a known failure mode
    warmup_steps: int = 0


@dataclass
class DPOSettings:
    data: str = ""                      # JSONL file (prompt, chosen, rejected) or a VideoDPO root folder
    format: str = "auto"                # auto | jsonl | videodpo
    text_embeddings: str = ""           # cache file (trainers/text_embeddings.py)
    frames: int = 33                    # clips are cut to this many frames (4k+1)
    height: int = 0                     # pixel size clips are resized/cropped to before VAE encoding
    width: int = 0                      #   (0: use precomputed latents as they are)
    beta: float = 0.0                   # 0 = default for model.prediction (flow 1000, eps 5000)
    pairs_per_step: int = 1             # per process; pairs in one step must share a latent shape
    on_bad_sample: str = "error"        # error | skip (skipped rows are counted and logged)
    eval_pairs: int = 0                 # held-out pairs scored with fixed noise every eval_every steps
    eval_every: int = 0


@dataclass
class GRPOSettings:
    prompts: str = ""                   # text file (one prompt a line), JSON list or JSONL with "prompt"
    text_embeddings: str = ""
    negative_prompt: str = ""           # used when guidance_scale > 1; must be in the embedding cache
    frames: int = 33
    height: int = 240
    width: int = 416
    group_size: int = 4
    prompts_per_step: int = 1           # per process
    sampling_steps: int = 20
    noise_level: float = 0.7            # a in s = a*sqrt(sigma/(1-sigma))
    guidance_scale: float = 1.0
    window_start: int = 0               # SDE + training on steps [start, start+size): the high-noise end
    window_size: int = 4
    clip_range: float = 1e-4
    kl_beta: float = 0.0
    adv_clip: float = 5.0
    micro_batch: int = 0                # samples per forward; 0 = group_size
    inner_epochs: int = 1               # optimizer updates per rollout; epochs after the first are off-policy
    reward: RewardSpec = field(default_factory=RewardSpec)
    gold_reward: RewardSpec | None = None  # logged, never optimised: exposes reward hacking
    decoder: str = "auto"               # auto (vae if model.vae else error) | vae | preview (tests/toys)


@dataclass
class StageSettings:
    frames: int = 33
    steps: int = 100
    overrides: dict = field(default_factory=dict)   # per-stage values for the method section


@dataclass
class GateSettings:
    metric: str = ""
    op: str = ">="                      # one of <, <=, >, >=
    value: float = 0.0
    params: dict = field(default_factory=dict)


@dataclass
class CurriculumSettings:
    method: str = "grpo"                # the trainer each stage runs: grpo | dpo
    stages: list = field(default_factory=list)      # list of StageSettings
    gates: list = field(default_factory=list)       # list of GateSettings; all must pass to advance
    validation_prompts: str = ""        # default: the method's prompts
    validation_seeds: list = field(default_factory=lambda: [0])
    validation_steps: int = 0           # sampling steps for validation; 0 = the method's sampling_steps


@dataclass
class ValidationSettings:
    every: int = 0                      # steps between validations (0 = off); logged as val_<metric>
    prompts: str = ""                   # prompt list; default: grpo.prompts
    seeds: list = field(default_factory=lambda: [0])
    sampling_steps: int = 0             # 0 = grpo.sampling_steps (20 for DPO)
    metrics: list = field(default_factory=list)  # names or {name, params}: temporal_lpips, flow_smoothness ...


@dataclass
class PairsSettings:
    clips: str = ""                     # folder (one sub-folder per prompt with prompt.txt) or JSONL (prompt, clip)
    out: str = ""                       # output JSONL (prompt, chosen, rejected, scores)
    reward: RewardSpec = field(default_factory=RewardSpec)
    strategy: str = "best_worst"        # best_worst | all_pairs
    min_margin: float = 0.0
    max_pairs_per_prompt: int = 0       # 0 = no cap
    frames: int = 0                     # 0 = whole clip; else first N frames (4k+1)
    on_bad_sample: str = "skip"


@dataclass
class TrainerConfig:
    method: str = ""
    run: RunSettings = field(default_factory=RunSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    dpo: DPOSettings | None = None
    grpo: GRPOSettings | None = None
    curriculum: CurriculumSettings | None = None
    pairs: PairsSettings | None = None
    validation: ValidationSettings | None = None
    source: str = ""                    # the file this config came from (relative paths resolve against it)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHOICES = {
    ("run", "device"): None,  # free-form (cuda:1 ...), checked at run time
    ("run", "mixed_precision"): ("auto", "bf16", "no"),
    ("run", "distributed"): ("ddp", "fsdp"),
    ("run", "compile"): (False, True, "default", "max-autotune-no-cudagraphs"),
    ("run", "attention"): ("auto", "cudnn", "flash", "efficient", "math"),
    ("model", "prediction"): ("flow", "eps"),
    ("model", "dtype"): ("auto", "bf16", "fp16", "fp32"),
    ("lora", "save_dtype"): ("bf16", "fp16", "fp32"),
    ("dpo", "format"): ("auto", "jsonl", "videodpo"),
    ("dpo", "on_bad_sample"): ("error", "skip"),
    ("pairs", "on_bad_sample"): ("error", "skip"),
    ("pairs", "strategy"): ("best_worst", "all_pairs"),
    ("grpo", "decoder"): ("auto", "vae", "preview"),
    ("curriculum", "method"): ("grpo", "dpo"),
}
_SECTIONS = {"dpo": DPOSettings, "grpo": GRPOSettings, "curriculum": CurriculumSettings, "pairs": PairsSettings}
_LIST_ITEM = {("curriculum", "stages"): StageSettings, ("curriculum", "gates"): GateSettings}


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (list, dict, str, bool):
        return isinstance(value, annotation)
    if dataclasses.is_dataclass(annotation):
        return isinstance(value, (dict, annotation))
    return True


def _build(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}. Valid keys: {names}.")
    kwargs = {}
    for name, value in data.items():
        ann = hints[name]
        key = f"{where}.{name}" if where else name
        if not _type_ok(value, ann):
            raise ValueError(f"{key}: expected {getattr(ann, '__name__', ann)}, got {value!r}.")
        nested = [a for a in (typing.get_args(ann) or (ann,)) if dataclasses.is_dataclass(a)]
        if nested and isinstance(value, dict):
            value = _build(nested[0], value, key)
        if isinstance(value, int) and not isinstance(value, bool) and ann is float:
            value = float(value)
        kwargs[name] = value
    return cls(**kwargs)


def _check_choice(section: str, name: str, value: Any) -> None:
    choices = _CHOICES.get((section, name))
    if choices and value not in choices:
        raise ValueError(f"{section}.{name}={value!r} is not one of {list(choices)}.")


def _validate(cfg: TrainerConfig) -> None:
    for section in ("run", "model", "lora", "optim", *_SECTIONS):
        obj = getattr(cfg, section)
        if obj is None:
            continue
        for f in dataclasses.fields(obj):
            _check_choice(section, f.name, getattr(obj, f.name))
    if cfg.method not in METHODS:
        raise ValueError(f"method {cfg.method!r} is not one of {list(METHODS)}.")
    if cfg.method in ("dpo", "grpo", "curriculum") and not cfg.run.output_dir:
        raise ValueError("run.output_dir is required: checkpoints, metrics and the LoRA are written there.")
    if cfg.run.max_steps < 0 or cfg.run.checkpoint_every < 0 or cfg.run.log_every < 1:
        raise ValueError("run.max_steps and run.checkpoint_every must be >= 0 and run.log_every >= 1.")
    gc = cfg.model.gradient_checkpointing
    if not isinstance(gc, bool) and not (0 < gc <= 1):
        raise ValueError(f"model.gradient_checkpointing={gc!r}: use true, false or the fraction of blocks to "
                         "checkpoint in (0, 1] (e.g. 0.5 checkpoints every other block: half the activation memory "
                         "saving, half the recompute).")
    if cfg.lora.rank < 1:
        raise ValueError(f"lora.rank={cfg.lora.rank} must be >= 1.")
    bad_targets = set(cfg.lora.targets) - {"self_attn", "cross_attn", "ffn"}
    if bad_targets or not cfg.lora.targets:
        raise ValueError(f"lora.targets={cfg.lora.targets}: choose from ['self_attn', 'cross_attn', 'ffn'].")
    if cfg.method in ("dpo", "grpo", "curriculum") and not (cfg.model.weights or cfg.model.random_init):
        raise ValueError("model.weights is required: a ComfyUI models/diffusion_models .safetensors file or a "
                         "diffusers WanTransformer3DModel folder (model.random_init: true is for tests only).")
    needs = {"dpo": ("dpo",), "grpo": ("grpo",), "pairs": ("pairs",), "curriculum": ("curriculum",)}[cfg.method]
    for section in needs:
        if getattr(cfg, section) is None:
            raise ValueError(f"method {cfg.method!r} needs a `{section}:` section in the config.")
    if cfg.method == "curriculum":
        cur = cfg.curriculum
        if getattr(cfg, cur.method) is None:
            raise ValueError(f"curriculum.method={cur.method!r} needs a `{cur.method}:` section with its settings.")
        if not cur.stages:
            raise ValueError("curriculum.stages is empty: give stages such as [{frames: 33, steps: 200}, "
                             "{frames: 49, steps: 200}, {frames: 65, steps: 200}, {frames: 97, steps: 200}].")
        cur.stages = [_build(StageSettings, s, f"curriculum.stages[{i}]") for i, s in enumerate(cur.stages)]
        cur.gates = [_build(GateSettings, g, f"curriculum.gates[{i}]") for i, g in enumerate(cur.gates)]
        for i, stage in enumerate(cur.stages):
            check_frames(stage.frames, f"curriculum.stages[{i}].frames")
            if stage.steps < 1:
                raise ValueError(f"curriculum.stages[{i}].steps must be >= 1.")
        for i, gate in enumerate(cur.gates):
            if gate.op not in ("<", "<=", ">", ">="):
                raise ValueError(f"curriculum.gates[{i}].op={gate.op!r} must be one of <, <=, >, >=.")
            if not gate.metric:
                raise ValueError(f"curriculum.gates[{i}].metric is empty.")
    if cfg.dpo is not None:
        check_frames(cfg.dpo.frames, "dpo.frames")
        if (cfg.dpo.height == 0) != (cfg.dpo.width == 0):
            raise ValueError("dpo.height and dpo.width must both be set (or both 0 for precomputed latents).")
        if cfg.dpo.height:
            check_size(cfg.dpo.height, "dpo.height")
            check_size(cfg.dpo.width, "dpo.width")
        if cfg.method == "dpo" and not cfg.dpo.data:
            raise ValueError("dpo.data is required: a JSONL file of {prompt, chosen, rejected} rows or a "
                             "VideoDPO folder with metadata.json and pair.json.")
        if cfg.dpo.pairs_per_step < 1:
            raise ValueError("dpo.pairs_per_step must be >= 1.")
    if cfg.grpo is not None:
        g = cfg.grpo
        check_frames(g.frames, "grpo.frames")
        check_size(g.height, "grpo.height")
        check_size(g.width, "grpo.width")
        if g.group_size < 2:
            raise ValueError(f"grpo.group_size={g.group_size}: advantages are normalised within a group, "
                             "so a group needs at least 2 samples (4 is the default; small groups give flat rewards).")
        if g.sampling_steps < 1 or not (0 <= g.window_start < g.sampling_steps):
            raise ValueError("grpo.window_start must lie in [0, grpo.sampling_steps).")
        if g.window_size < 1 or g.window_start + g.window_size > g.sampling_steps:
            raise ValueError(f"grpo train window [{g.window_start}, {g.window_start + g.window_size}) must fit "
                             f"in the {g.sampling_steps} sampling steps.")
        if g.micro_batch < 0 or g.inner_epochs < 1 or g.prompts_per_step < 1:
            raise ValueError("grpo.micro_batch must be >= 0, grpo.inner_epochs and grpo.prompts_per_step >= 1.")
        if not (0 < g.noise_level <= 2):
            raise ValueError("grpo.noise_level (a) must lie in (0, 2]; Flow-GRPO uses 0.7.")
        for name in ("reward", "gold_reward"):
            spec = getattr(g, name)
            if isinstance(spec, dict):
                setattr(g, name, _build(RewardSpec, spec, f"grpo.{name}"))
        if cfg.method == "grpo" and not g.prompts:
            raise ValueError("grpo.prompts is required: a text file with one prompt a line.")
    if cfg.validation is not None and cfg.validation.every:
        if cfg.validation.every < 0 or not cfg.validation.metrics:
            raise ValueError("validation.every > 0 needs validation.metrics (e.g. [temporal_lpips, flow_smoothness]).")
        if cfg.method == "dpo" and not (cfg.validation.prompts and cfg.dpo.height):
            raise ValueError("DPO validation needs validation.prompts and dpo.height/width (the clip size).")
    if cfg.pairs is not None and cfg.method == "pairs":
        p = cfg.pairs
        if not p.clips or not p.out:
            raise ValueError("pairs.clips (folder or JSONL of clips) and pairs.out (output JSONL) are required.")
        if p.frames:
            check_frames(p.frames, "pairs.frames")


def config_from_dict(data: dict, method: str | None = None, source: str = "") -> TrainerConfig:
    if not isinstance(data, dict):
        raise ValueError("The config file must hold a mapping (sections run, model, lora, optim, ...).")
    data = dict(data)
    if method is not None:
        if data.get("method") not in (None, method):
            raise ValueError(f"The config says method {data.get('method')!r} but the command asked for {method!r}.")
        data["method"] = method
    if "source" in data:
        data.pop("source")
    cfg = _build(TrainerConfig, data, "")
    cfg.source = source
    _validate(cfg)
    return cfg


def read_config_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Config file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); YAML files need a .yaml/.yml suffix.") from exc
    return data or {}


def load_config(path: str | os.PathLike, method: str | None = None) -> TrainerConfig:
    path = Path(path).resolve()
    try:
        return config_from_dict(read_config_file(path), method=method, source=str(path))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def resolve_path(cfg: TrainerConfig, value: str) -> Path:
    """Relative paths in a config are relative to the config file (or the working directory without one)."""
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and cfg.source:
        p = Path(cfg.source).parent / p
    return p


def save_config(cfg: TrainerConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2), encoding="utf-8")
