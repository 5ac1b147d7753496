"""Trainer configuration: typed sections (pydantic) loaded from JSON or YAML, checked before any model is touched.

Every method config has the same common sections (`run`, `model`, `lora`, `optim`) plus its own (`dpo`, `grpo`,
`curriculum`, `pairs`) and an optional `validation`. Unknown keys, wrong types, out-of-range values and invalid
frame counts are ValueErrors that name the key and say how to fix it, so a typo fails in a second instead of
after the model has loaded. Nothing heavy is imported (no torch): the CLI validates first.

Loading applies a trust policy (trust/policy.py): `Policy.owner()` for a config file run through the CLI,
`Policy.workflow(...)` for settings from the canvas, where every path must lie in ComfyUI's folders for its kind
(each section's PATHS table says which kind a field holds) and no reward may name code to import.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from ..trust import PathRefused, Policy, plain_name, read_settings_file
from ..trust.policy import DATASETS, LORAS, MODELS, PROMPTS, RUNS, TEXT_EMBEDDINGS

METHODS = ("dpo", "grpo", "curriculum", "pairs")
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"

# Flow-matching (velocity) and epsilon targets need very different DPO betas: the squared-error gap between
# winner and loser is orders of magnitude smaller for eps targets.
DEFAULT_DPO_BETA = {"flow": 1000.0, "eps": 5000.0}
# A reward that imports a Python callable by name (trainers/reward_fns.py).
CODE_REWARD = "python"


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


def shipped_config_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.json"))


def _policy(info: ValidationInfo) -> Policy:
    return (info.context or {}).get("policy") or Policy.owner()


class _Section(BaseModel):
    """A config section: unknown keys and wrong types are errors; path fields (PATHS: field -> kind) go through
    the loading policy, which returns them unchanged for the owner and as real paths inside ComfyUI's folders
    for a workflow."""
    model_config = ConfigDict(extra="forbid", strict=True)
    SECTION: ClassVar[str] = ""
    PATHS: ClassVar[dict[str, str]] = {}
    READS: ClassVar[tuple[str, ...]] = (MODELS, DATASETS, PROMPTS, TEXT_EMBEDDINGS)

    @model_validator(mode="after")
    def _validate(self, info: ValidationInfo):
        policy = _policy(info)
        for name, kind in self.PATHS.items():
            value = getattr(self, name)
            if value:
                setattr(self, name, policy.path(value, f"{self.SECTION}.{name}", kind, must_exist=kind in self.READS))
        self.check(policy)
        return self

    def check(self, policy: Policy) -> None:
        """Rules across the section's values (after its paths passed the policy)."""


class RewardSpec(BaseModel):
    """A reward or metric function by name (see trainers/reward_fns.py for the registry)."""
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = "brightness"
    params: dict = Field(default_factory=dict)
    weights: dict = Field(default_factory=dict)  # for name="composite": metric name -> weight


class RunSettings(_Section):
    SECTION = "run"
    PATHS = {"output_dir": RUNS, "lora_dir": LORAS}
    output_dir: str = ""
    seed: int = 0
    max_steps: int = Field(100, ge=0)
    checkpoint_every: int = Field(50, ge=0)
    keep_checkpoints: int = Field(2, ge=0)   # 0 keeps every checkpoint
    log_every: int = Field(1, ge=1)
    device: str = "auto"                # auto | cpu | cuda | cuda:N (ROCm builds use the cuda names too)
    mixed_precision: Literal["auto", "bf16", "no"] = "auto"  # auto: bf16 on GPU, off on CPU
    distributed: Literal["ddp", "fsdp"] = "ddp"  # only used when launched with world size > 1
    resume: bool = True                 # continue from the newest intact checkpoint in output_dir if there is one
    lora_name: str = ""                 # file name of the exported LoRA; default rewardloop_<method>.safetensors
    lora_dir: str = ""                  # where the exported LoRA goes (ComfyUI models/loras); default output_dir
    overwrite: bool = False             # replace a LoRA file of the same name (else a numbered name is used)
    data_roots: list[str] = Field(default_factory=list)  # folders a dataset's clips must lie in (set for
                                        #   jobs from the canvas); empty: anywhere
    tensorboard: bool = True            # also write TensorBoard events when tensorboard is installed
    num_threads: int = Field(0, ge=0)   # torch CPU threads; 0 = torch default
    compile: Literal[False, True, "default", "max-autotune-no-cudagraphs"] = False
                                        # torch.compile the transformer blocks (true = default mode; autotuning
                                        #   takes minutes). The first steps include compile time; 1 GPU or DDP
    attention: Literal["auto", "cudnn", "flash", "efficient", "math"] = "auto"
                                        # SDPA backend first tried: auto = cuDNN on NVIDIA, torch's order elsewhere

    def check(self, policy: Policy) -> None:
        if not policy.untrusted:
            return
        if self.lora_name:
            self.lora_name = plain_name(self.lora_name, "run.lora_name", ".safetensors")
        if self.output_dir and Path(self.output_dir).exists() and any(Path(self.output_dir).iterdir()):
            raise PathRefused(f"run.output_dir: {self.output_dir} already holds files; a job from a workflow writes "
                              "only into a new or empty folder (its files are never replaced). Leave run.output_dir "
                              "unset (each job gets its own folder) and continue a job with the Training Job node.")
        if self.data_roots:
            raise PathRefused("run.data_roots is set by the pack for jobs from the canvas (the folders a dataset's "
                              "clips may lie in); remove it from the settings.")
        self.data_roots = [str(p) for p in policy.roots.get(DATASETS, ())]


class ModelSettings(_Section):
    SECTION = "model"
    PATHS = {"weights": MODELS, "vae": MODELS}
    config: Any = "auto"                # auto (infer from weights) | shipped name | path to JSON | inline mapping
    weights: str = ""                   # ComfyUI diffusion_models .safetensors file or a diffusers folder
    random_init: bool = False           # tests/benchmarks only: no weights, random transformer
    prediction: Literal["flow", "eps"] = "flow"  # flow: velocity target (Wan)
    flow_shift: float = 3.0             # sigma' = s*sigma / (1 + (s-1)*sigma), as Wan's sampler uses
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # frozen base weights; auto: bf16 on GPU, fp32 on CPU
    gradient_checkpointing: Any = False  # true (all blocks) | false | fraction of blocks in (0, 1]
    checkpoint_keep_attention: bool = False  # checkpointed blocks keep attention outputs: no quadratic recompute,
                                        #   but eager mode pays a Python hook per op (worth it only at long clips)
    text_len: int = Field(512, ge=1)    # text embeddings are zero-padded to this many tokens (as Wan/ComfyUI do)
    vae: str = ""                       # Wan 2.1 VAE: ComfyUI models/vae file or diffusers folder
    vae_config: Any = "auto"            # auto (widths read from the VAE file) | shipped name | path | mapping

    def check(self, policy: Policy) -> None:
        gc = self.gradient_checkpointing
        if not isinstance(gc, bool) and not (isinstance(gc, (int, float)) and 0 < gc <= 1):
            raise ValueError(f"model.gradient_checkpointing={gc!r}: use true, false or the fraction of blocks to "
                             "checkpoint in (0, 1] (e.g. 0.5 checkpoints every other block: half the activation "
                             "memory saving, half the recompute).")
        for name in ("config", "vae_config"):
            value = getattr(self, name)
            if not isinstance(value, (str, dict)):
                raise ValueError(f"model.{name}: expected 'auto', a shipped config name, a path or a mapping, got "
                                 f"{value!r}.")
            if policy.untrusted and isinstance(value, str) and value != "auto" and value not in shipped_config_names():
                raise PathRefused(f"model.{name}={value!r}: from a workflow give 'auto', a shipped config name "
                                  f"({shipped_config_names()}) or the settings as a mapping, not a file path.")


class LoraSettings(_Section):
    SECTION = "lora"
    PATHS = {"init_from": MODELS}
    rank: int = Field(32, ge=1)
    alpha: float = Field(0.0, ge=0)      # 0 = same as rank (scale 1)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[Literal["self_attn", "cross_attn", "ffn"]] = Field(
        default_factory=lambda: ["self_attn", "cross_attn", "ffn"], min_length=1)
    init_from: str = ""                 # continue from a LoRA file (ours or a ComfyUI-format Wan LoRA)
    save_dtype: Literal["bf16", "fp16", "fp32"] = "bf16"


class OptimSettings(_Section):
    SECTION = "optim"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0)  # 0 disables; gradient-norm spikes are a known failure mode
    warmup_steps: int = Field(0, ge=0)


class DPOSettings(_Section):
    SECTION = "dpo"
    PATHS = {"data": DATASETS, "text_embeddings": TEXT_EMBEDDINGS}
    data: str = ""                      # JSONL file (prompt, chosen, rejected) or a VideoDPO root folder
    format: Literal["auto", "jsonl", "videodpo"] = "auto"
    text_embeddings: str = ""           # cache file (trainers/text_embeddings.py)
    frames: int = 33                    # clips are cut to this many frames (4k+1)
    height: int = 0                     # pixel size clips are resized/cropped to before VAE encoding
    width: int = 0                      #   (0: use precomputed latents as they are)
    beta: float = Field(0.0, ge=0)      # 0 = default for model.prediction (flow 1000, eps 5000)
    pairs_per_step: int = Field(1, ge=1)  # per process; pairs in one step must share a latent shape
    on_bad_sample: Literal["error", "skip"] = "error"  # skip: skipped rows are counted and logged
    eval_pairs: int = Field(0, ge=0)    # held-out pairs scored with fixed noise every eval_every steps
    eval_every: int = Field(0, ge=0)

    def check(self, policy: Policy) -> None:
        check_frames(self.frames, "dpo.frames")
        if (self.height == 0) != (self.width == 0):
            raise ValueError("dpo.height and dpo.width must both be set (or both 0 for precomputed latents).")
        if self.height:
            check_size(self.height, "dpo.height")
            check_size(self.width, "dpo.width")


class GRPOSettings(_Section):
    SECTION = "grpo"
    PATHS = {"prompts": PROMPTS, "text_embeddings": TEXT_EMBEDDINGS}
    prompts: str = ""                   # text file (one prompt a line), JSON list or JSONL with "prompt"
    text_embeddings: str = ""
    negative_prompt: str = ""           # used when guidance_scale > 1; must be in the embedding cache
    frames: int = 33
    height: int = 240
    width: int = 416
    group_size: int = 4
    prompts_per_step: int = Field(1, ge=1)  # per process
    sampling_steps: int = Field(20, ge=1)
    noise_level: float = 0.7            # a in s = a*sqrt(sigma/(1-sigma))
    guidance_scale: float = 1.0
    window_start: int = 0               # SDE + training on steps [start, start+size): the high-noise end
    window_size: int = 4
    clip_range: float = Field(1e-4, gt=0)
    kl_beta: float = Field(0.0, ge=0)
    adv_clip: float = Field(5.0, gt=0)
    micro_batch: int = Field(0, ge=0)   # samples per forward; 0 = group_size
    inner_epochs: int = Field(1, ge=1)  # optimizer updates per rollout; epochs after the first are off-policy
    reward: RewardSpec = Field(default_factory=RewardSpec)
    gold_reward: RewardSpec | None = None  # logged, never optimised: exposes reward hacking
    decoder: Literal["auto", "vae", "preview"] = "auto"  # auto: vae if model.vae else error; preview: tests/toys

    def check(self, policy: Policy) -> None:
        check_frames(self.frames, "grpo.frames")
        check_size(self.height, "grpo.height")
        check_size(self.width, "grpo.width")
        if self.group_size < 2:
            raise ValueError(f"grpo.group_size={self.group_size}: advantages are normalised within a group, so a "
                             "group needs at least 2 samples (4 is the default; small groups give flat rewards).")
        if not 0 <= self.window_start < self.sampling_steps:
            raise ValueError("grpo.window_start must lie in [0, grpo.sampling_steps).")
        if self.window_size < 1 or self.window_start + self.window_size > self.sampling_steps:
            raise ValueError(f"grpo train window [{self.window_start}, {self.window_start + self.window_size}) "
                             f"must fit in the {self.sampling_steps} sampling steps.")
        if not 0 < self.noise_level <= 2:
            raise ValueError("grpo.noise_level (a) must lie in (0, 2]; Flow-GRPO uses 0.7.")


class StageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    frames: int = 33
    steps: int = Field(100, ge=1)
    overrides: dict = Field(default_factory=dict)   # per-stage values for the config's sections


class GateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    metric: str = Field("", min_length=1)
    op: Literal["<", "<=", ">", ">="] = ">="
    value: float = 0.0
    params: dict = Field(default_factory=dict)


class CurriculumSettings(_Section):
    SECTION = "curriculum"
    PATHS = {"validation_prompts": PROMPTS}
    method: Literal["grpo", "dpo"] = "grpo"  # the trainer each stage runs
    stages: list[StageSettings] = Field(default_factory=list)
    gates: list[GateSettings] = Field(default_factory=list)  # all must pass to advance
    validation_prompts: str = ""        # default: the method's prompts
    validation_seeds: list[int] = Field(default_factory=lambda: [0])
    validation_steps: int = Field(0, ge=0)  # sampling steps for validation; 0 = the method's sampling_steps

    def check(self, policy: Policy) -> None:
        if not self.stages:
            raise ValueError("curriculum.stages is empty: give stages such as [{frames: 33, steps: 200}, "
                             "{frames: 49, steps: 200}, {frames: 65, steps: 200}, {frames: 97, steps: 200}].")
        for i, stage in enumerate(self.stages):
            check_frames(stage.frames, f"curriculum.stages[{i}].frames")


class ValidationSettings(_Section):
    SECTION = "validation"
    PATHS = {"prompts": PROMPTS}
    every: int = Field(0, ge=0)         # steps between validations (0 = off); logged as val_<metric>
    prompts: str = ""                   # prompt list; default: grpo.prompts
    seeds: list[int] = Field(default_factory=lambda: [0])
    sampling_steps: int = Field(0, ge=0)  # 0 = grpo.sampling_steps (20 for DPO)
    metrics: list[Any] = Field(default_factory=list)  # names or {name, params}: temporal_lpips, flow_smoothness ...

    def check(self, policy: Policy) -> None:
        for i, item in enumerate(self.metrics):
            if isinstance(item, dict):
                try:
                    self.metrics[i] = RewardSpec.model_validate(item)
                except ValidationError as exc:
                    raise ValueError(_format(exc, RewardSpec, f"validation.metrics[{i}]")) from None
            elif not isinstance(item, (str, RewardSpec)):
                raise ValueError(f"validation.metrics[{i}]: expected a metric name or {{name, params}}, got {item!r}.")
        if self.every and not self.metrics:
            raise ValueError("validation.every > 0 needs validation.metrics (e.g. [temporal_lpips, flow_smoothness]).")


class PairsSettings(_Section):
    SECTION = "pairs"
    clips: str = ""                     # folder (one sub-folder per prompt with prompt.txt) or JSONL (prompt, clip)
    out: str = ""                       # output JSONL (prompt, chosen, rejected, scores)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    strategy: Literal["best_worst", "all_pairs"] = "best_worst"
    min_margin: float = 0.0
    max_pairs_per_prompt: int = Field(0, ge=0)  # 0 = no cap
    frames: int = Field(0, ge=0)        # 0 = whole clip; else first N frames (4k+1)
    on_bad_sample: Literal["error", "skip"] = "skip"

    def check(self, policy: Policy) -> None:
        if policy.untrusted:
            raise PathRefused("pairs: the pair builder reads and writes free paths, so it runs from the command line "
                              "only (trainers/launch.py pairs --config ...), not from a workflow.")
        if self.frames:
            check_frames(self.frames, "pairs.frames")


_SECTION_TYPES: dict[str, type[_Section]] = {
    "run": RunSettings, "model": ModelSettings, "lora": LoraSettings, "optim": OptimSettings, "dpo": DPOSettings,
    "grpo": GRPOSettings, "curriculum": CurriculumSettings, "pairs": PairsSettings, "validation": ValidationSettings}


class TrainerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    method: str = ""
    run: RunSettings = Field(default_factory=RunSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    optim: OptimSettings = Field(default_factory=OptimSettings)
    dpo: DPOSettings | None = None
    grpo: GRPOSettings | None = None
    curriculum: CurriculumSettings | None = None
    pairs: PairsSettings | None = None
    validation: ValidationSettings | None = None
    source: str = ""                    # the file this config came from (relative paths resolve against it)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def reward_specs(self) -> list[tuple[str, RewardSpec]]:
        """Every reward or metric the config names, with where it is set: GRPO's reward and gold reward, the
        curriculum's gate metrics, periodic validation metrics, the pair builder's reward."""
        specs: list[tuple[str, RewardSpec]] = []
        if self.grpo is not None:
            specs.append(("grpo.reward", self.grpo.reward))
            if self.grpo.gold_reward is not None:
                specs.append(("grpo.gold_reward", self.grpo.gold_reward))
        if self.curriculum is not None:
            specs += [(f"curriculum.gates[{i}]", RewardSpec(name=g.metric, params=g.params))
                      for i, g in enumerate(self.curriculum.gates)]
        if self.validation is not None:
            specs += [(f"validation.metrics[{i}]", RewardSpec(name=m) if isinstance(m, str) else m)
                      for i, m in enumerate(self.validation.metrics)]
        if self.pairs is not None:
            specs.append(("pairs.reward", self.pairs.reward))
        return specs

    @model_validator(mode="after")
    def _stage_overrides(self, info: ValidationInfo):
        """A curriculum stage's overrides replace values of whole sections for that stage: checked (and, from a
        workflow, their paths resolved) now, merged over the sections they change, not when the stage starts."""
        for i, stage in enumerate(self.curriculum.stages if self.curriculum is not None else []):
            checked = {}
            for section, values in stage.overrides.items():
                cls = _SECTION_TYPES.get(section) if section not in ("run", "curriculum") else None
                if cls is None or not isinstance(values, dict):
                    raise ValueError(f"curriculum.stages[{i}].overrides: {section!r} must name a config section "
                                     "other than run and curriculum, with a mapping of values, e.g. "
                                     "{grpo: {group_size: 8}, optim: {lr: 5e-5}}.")
                base = getattr(self, section)
                merged = {**(base.model_dump() if base is not None else {}), **values}
                try:
                    valid = cls.model_validate(merged, context=info.context)
                except ValidationError as exc:
                    raise ValueError(_format(exc, cls, f"curriculum.stages[{i}].overrides.{section}")) from None
                checked[section] = valid.model_dump(include=set(values))
            stage.overrides = checked
        return self

    @model_validator(mode="after")
    def _rewards_are_data(self, info: ValidationInfo):
        """From a workflow a reward is a name plus plain options: no code by name, no file paths in options."""
        policy = _policy(info)
        if not policy.untrusted:
            return self
        for where, spec in self.reward_specs():
            if spec.name == CODE_REWARD:
                policy.code(where, f"reward {CODE_REWARD!r}")
            for key, value in _strings({"params": spec.params, "weights": spec.weights}):
                if "/" in value or "\\" in value or ".." in value or "\x00" in value or value.startswith("~"):
                    raise PathRefused(f"{where}.{key}: {value[:80]!r} looks like a file path; from a workflow, reward "
                                      "options name model files by their plain name (looked up in models/rewardloop).")
        return self


def _strings(value, key: str = ""):
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{key}.{k}" if key else str(k))
            if isinstance(k, str):
                yield from _strings(k, key)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}[{i}]")


_TYPE_NAMES = {"int_type": "int", "float_type": "float", "string_type": "str", "bool_type": "bool",
               "list_type": "list", "dict_type": "a mapping", "model_type": "a mapping of settings",
               "model_attributes_type": "a mapping of settings", "int_from_float": "int", "literal_error": None}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


def _where(loc, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(root: type[BaseModel], loc) -> type[BaseModel] | None:
    cls = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        nested = [a for c in candidates for a in (c, *getattr(c, "__args__", ()))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return None
        cls = nested[0]
    return cls


def _format(exc: ValidationError, root: type[BaseModel] | None = None, prefix: str = "") -> str:
    """One line per problem, each naming the key (`dpo.frames`, `curriculum.stages[1].frames`); `prefix`: where
    `root` sits in the whole config."""
    root = root or TrainerConfig
    lines, unknown = [], {}
    for err in exc.errors(include_url=False):
        loc, kind, value = err["loc"], err["type"], err.get("input")
        where = _where(loc, prefix)
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            unknown.setdefault(tuple(loc[:-1]), []).append(str(loc[-1]))
        elif kind == "value_error":
            message = str(ctx.get("error", err["msg"]))
            lines.append(f"{prefix}: {message}" if prefix else message)
        elif kind == "literal_error":
            lines.append(f"{where}={value!r} is not one of: {ctx.get('expected')}.")
        elif kind in _BOUNDS:
            op, key = _BOUNDS[kind]
            lines.append(f"{where}={value!r} must be {op} {ctx.get(key)}.")
        elif kind in ("too_short", "too_long"):
            lines.append(f"{where} must hold {'at least ' + str(ctx.get('min_length')) if kind == 'too_short' else 'at most ' + str(ctx.get('max_length'))} item(s), got {value!r}.")
        elif kind in _TYPE_NAMES:
            lines.append(f"{where}: expected {_TYPE_NAMES[kind]}, got {value!r}.")
        else:
            lines.append(f"{where}: {err['msg']} (got {value!r}).")
    for parent, keys in unknown.items():
        model = _model_at(root, parent)
        valid = [k for k in model.model_fields if k != "source"] if model else []
        lines.insert(0, f"{_where(parent, prefix) or 'top level'}: unknown setting(s) {sorted(keys)}. Valid keys: {valid}.")
    return "\n".join(dict.fromkeys(lines))


def _check_method(cfg: TrainerConfig) -> None:
    """What a config needs for its method (sections check their own values while loading)."""
    if cfg.method not in METHODS:
        raise ValueError(f"method {cfg.method!r} is not one of {list(METHODS)}.")
    training = cfg.method in ("dpo", "grpo", "curriculum")
    if training and not cfg.run.output_dir:
        raise ValueError("run.output_dir is required: checkpoints, metrics and the LoRA are written there.")
    if training and not (cfg.model.weights or cfg.model.random_init):
        raise ValueError("model.weights is required: a ComfyUI models/diffusion_models .safetensors file or a "
                         "diffusers WanTransformer3DModel folder (model.random_init: true is for tests only).")
    if getattr(cfg, cfg.method) is None:
        raise ValueError(f"method {cfg.method!r} needs a `{cfg.method}:` section in the config.")
    if cfg.method == "curriculum" and getattr(cfg, cfg.curriculum.method) is None:
        raise ValueError(f"curriculum.method={cfg.curriculum.method!r} needs a `{cfg.curriculum.method}:` section "
                         "with its settings.")
    if cfg.method == "dpo" and not cfg.dpo.data:
        raise ValueError("dpo.data is required: a JSONL file of {prompt, chosen, rejected} rows or a VideoDPO folder "
                         "with metadata.json and pair.json.")
    if cfg.method == "grpo" and not cfg.grpo.prompts:
        raise ValueError("grpo.prompts is required: a text file with one prompt a line.")
    if cfg.method == "dpo" and cfg.validation is not None and cfg.validation.every and \
            not (cfg.validation.prompts and cfg.dpo.height):
        raise ValueError("DPO validation needs validation.prompts and dpo.height/width (the clip size).")
    if cfg.method == "pairs" and not (cfg.pairs.clips and cfg.pairs.out):
        raise ValueError("pairs.clips (folder or JSONL of clips) and pairs.out (output JSONL) are required.")


def config_from_dict(data: dict, method: str | None = None, source: str = "",
                     policy: Policy | None = None) -> TrainerConfig:
    """The typed config of `data` (a parsed config file or generated settings), checked for `method`.
    `policy`: Policy.owner() (default) for the owner's config files, Policy.workflow(...) for the canvas."""
    if not isinstance(data, dict):
        raise ValueError("The config must hold a mapping (sections run, model, lora, optim, ...).")
    data = {k: v for k, v in data.items() if k != "source"}
    if method is not None:
        if data.get("method") not in (None, method):
            raise ValueError(f"The config says method {data.get('method')!r} but the command asked for {method!r}.")
        data["method"] = method
    try:
        cfg = TrainerConfig.model_validate(data, context={"policy": policy or Policy.owner()})
    except ValidationError as exc:
        raise ValueError(_format(exc)) from None
    cfg.source = source
    _check_method(cfg)
    return cfg


def read_config_file(path: str | os.PathLike) -> dict:
    """A JSON or YAML config file through the pack's one bounded settings parser."""
    return read_settings_file(path) or {}


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
