"""Training nodes: launch DPO / GRPO / curriculum jobs as separate processes (never inside the executor),
show a job's status, cancel or resume it. Launch nodes return a job id at once; a background watcher pushes
`rewardloop.training` websocket events (status, step, metrics) to every open tab while jobs run. Job state
lives under ComfyUI's user directory (user/rewardloop/jobs), so jobs outlive a closed tab and a server
restart. The trained LoRA is written into models/loras in ComfyUI's Wan LoRA key format.

Everything a workflow sends is data (trust/): the trainer config is loaded with the workflow policy, so every
path must lie in ComfyUI's folders for its kind, datasets and prompt lists are picked by name from the input
folder (or models/rewardloop/datasets), and no reward may name code unless the machine's owner allows it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading

from comfy_api.latest import io

from .. import modelfiles
from ..trainers import job_configs as jc
from ..trainers.dpo_data import dataset_prompts
from ..trainers.jobs import JobManager, JobWatcher
from ..trainers.reward_fns import reward_names
from ..trainers.text_embeddings import read_prompt_list, save_text_embeddings
from ..trust import PathRefused, Policy, check_text_size, looks_like_path, plain_name, publish, resolve_inside
from ..trust.policy import DATASETS, KINDS, LORAS, MODELS, PROMPTS, RUNS, TEXT_EMBEDDINGS
from . import routes, runtime

log = logging.getLogger("rewardloop.training")

CATEGORY = "RewardLoop/Training"
EVENT = "rewardloop.training"
MAX_PROMPT_TEXT = 1024 * 1024  # prompts typed into a node (a longer list belongs in a file in input/)


class TrainingJobs:
    """The pack's training jobs: one JobManager over user/rewardloop/jobs and the watcher thread that turns job
    changes into `rewardloop.training` events, both created on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._manager: JobManager | None = None
        self._watcher: JobWatcher | None = None

    def manager(self) -> JobManager:
        import folder_paths

        with self._lock:
            if self._manager is None:
                jobs_dir = os.path.join(folder_paths.get_user_directory(), "rewardloop", "jobs")
                self._manager = JobManager(jobs_dir, python=sys.executable)
                self._watcher = JobWatcher(self._manager, _emit, interval=2.0).start()
            return self._manager

    @property
    def watcher(self) -> JobWatcher | None:
        return self._watcher

    def close(self) -> None:
        """Stop the watcher and forget the manager (the next use starts them again, e.g. after a folder change)."""
        with self._lock:
            if self._watcher is not None:
                self._watcher.stop()
            self._manager = self._watcher = None


def training_jobs() -> TrainingJobs:
    """The pack's training jobs, held by the pack runtime."""
    return runtime.get().part("jobs", TrainingJobs)


def _emit(job: dict) -> None:
    try:
        from server import PromptServer

        srv = PromptServer.instance
    except (ImportError, AttributeError):
        return
    progress = job.get("progress") or {}
    data = {"job_id": job["id"], "node_id": (job.get("meta") or {}).get("node_id"), "method": job.get("method"),
            "status": job.get("status"), "step": progress.get("step"), "max_steps": job.get("max_steps"),
            "stage": progress.get("stage"), "metrics": job.get("last_metrics") or {}, "error": job.get("error"),
            "lora_path": job.get("lora_path")}
    try:
        # Broadcast: a job outlives the tab that started it. No progress text on node_id: other tabs show other
        # graphs, where that id is an unrelated node; the Training Job node's widget follows its job id instead.
        srv.send_sync(EVENT, data, None)
    except Exception:
        log.exception("RewardLoop: could not send training event")


def _summary(job: dict) -> str:
    p = job.get("progress") or {}
    text = f"{job['id']}: {job.get('status')}"
    if p.get("step") is not None:
        text += f" (step {p['step']}/{job.get('max_steps')}{', ' + p['stage'] if p.get('stage') else ''})"
    if job.get("error"):
        text += f"\n{job['error'][:600]}"
    elif job.get("lora_path") and job.get("status") == "finished":
        text += f"\nLoRA: {os.path.basename(job['lora_path'])}"
    for note in (p.get("note"), job.get("lora_note")):
        if note:
            text += f"\n{note[:600]}"
    return text


# ---------------------------------------------------------------------------------------- trust boundary
def _folders() -> dict[str, list[str]]:
    """The ComfyUI folders a workflow's paths may name, per kind (trust/policy.py)."""
    import folder_paths

    try:
        ours = folder_paths.get_folder_paths(modelfiles.FOLDER_KEY)
    except KeyError:  # the pack's folder is registered at start-up; tolerate a bare folder_paths
        ours = []
    datasets = [folder_paths.get_input_directory(), *(os.path.join(r, "datasets") for r in ours)]
    user = folder_paths.get_user_directory()
    models = [p for key, (paths, _) in folder_paths.folder_names_and_paths.items() if key != "custom_nodes"
              for p in paths]
    return {
        DATASETS: datasets,
        PROMPTS: [*datasets, os.path.join(user, "rewardloop", "prompts")],
        TEXT_EMBEDDINGS: [os.path.join(folder_paths.get_output_directory(), "rewardloop", "text_embeddings"),
                          *datasets],
        MODELS: models,
        LORAS: folder_paths.get_folder_paths("loras"),
        RUNS: [folder_paths.get_output_directory(), user],
    }


def workflow_policy(picked=()) -> Policy:
    """The policy for settings from the canvas; `picked`: files the user chose from ComfyUI's own lists."""
    return Policy.workflow(_folders(), picked=picked)


def _find(value: str, where: str, kind: str) -> str:
    """A file or folder a workflow names: its name inside the folders of `kind` (or a path inside them)."""
    text = (value or "").strip()
    if not text:
        raise ValueError(f"{where} is empty: give the name of a file in {KINDS[kind]}.")
    try:
        return str(resolve_inside(text, where, _folders()[kind], what=KINDS[kind], must_exist=True))
    except PathRefused as exc:
        raise PathRefused(f"{exc} Old workflows that named a path elsewhere: move the file into "
                          f"{_folders()[kind][0]} and give just its name.") from None


def _named_file(text: str, where: str, kind: str) -> str | None:
    """The file a one-line value names in the folders of `kind`, None when the value is text (prompts); a value
    that looks like a path but is not such a file is an error rather than a prompt."""
    line = text.strip()
    if not line or "\n" in line:
        return None
    folders = _folders()[kind]
    try:
        return str(resolve_inside(line, where, folders, what=KINDS[kind], must_exist=True))
    except PathRefused as exc:
        if looks_like_path(line):
            raise PathRefused(f"{where}: {line[:120]!r} looks like a file path but does not exist in {KINDS[kind]} "
                              f"({', '.join(folders)}); a workflow reads prompt lists and datasets only from there. "
                              "Put the file there and give its name, or type the prompts, one per line. "
                              f"({exc})") from None
        return None


# ---------------------------------------------------------------------------------------- launching
def _paths(model_file: str, vae_file: str) -> tuple[str, str, str]:
    import folder_paths

    model = folder_paths.get_full_path_or_raise("diffusion_models", model_file)
    vae = "" if vae_file in ("", "none") else folder_paths.get_full_path_or_raise("vae", vae_file)
    loras = folder_paths.get_folder_paths("loras")[0]
    return model, vae, loras


def _prompt_file(prompts: str, where: str = "prompts") -> str:
    """A prompt list named by the value (a file in the input folder...), or the typed prompts (one a line)
    stored once by content under user/rewardloop/prompts."""
    text = prompts.strip()
    if not text:
        raise ValueError(f"{where} is empty: give one prompt per line or the name of a prompt list file.")
    named = _named_file(text, where, PROMPTS)
    if named:
        return named
    check_text_size(text, where, MAX_PROMPT_TEXT)
    import folder_paths

    folder = os.path.join(folder_paths.get_user_directory(), "rewardloop", "prompts")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha1(text.encode()).hexdigest()[:16] + ".txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return path


def _free_vram() -> None:
    import comfy.model_management as mm

    mm.unload_all_models()
    mm.soft_empty_cache()


def _config_hash(method: str, cfg: dict, gpus: int) -> str:
    return hashlib.sha1(json.dumps([method, gpus, cfg], sort_keys=True).encode()).hexdigest()[:16]


def _same_job(manager: JobManager, config_hash: str) -> dict | None:
    """The job these exact settings already started, unless it failed (then a new launch is a retry)."""
    for job in reversed(manager.list_jobs()):
        if (job.get("meta") or {}).get("config_hash") == config_hash and job.get("status") != "failed":
            return job
    return None


def _launch(method: str, cfg: dict, gpus: int, free_vram: bool, unique_id: str, picked=()) -> io.NodeOutput:
    # On the canvas the Training Job node is queued together with its Launch node (status, cancel and resume
    # all re-run the graph), so queueing the same settings again must address the same job, not start a
    # second training run on the same GPU. A changed setting (seed, LoRA name, ...) starts a new job.
    manager = training_jobs().manager()
    config_hash = _config_hash(method, cfg, gpus)
    job = _same_job(manager, config_hash)
    if job is not None:
        _emit(job)
        note = "\n(already launched with these settings: change a setting, e.g. seed or lora_name, for a new job)"
        return io.NodeOutput(job["id"], ui=_job_ui(job, _summary(job) + note))
    import folder_paths

    # The job process has no folder_paths: hand it the reward model folders (extra_model_paths.yaml included).
    reward_dirs = folder_paths.get_folder_paths(modelfiles.FOLDER_KEY) \
        if modelfiles.FOLDER_KEY in folder_paths.folder_names_and_paths else []
    env = {"REWARDLOOP_MODELS_DIR": os.pathsep.join(reward_dirs)} if reward_dirs else {}
    job = manager.launch(method, cfg, nproc=gpus, meta={"node_id": unique_id, "config_hash": config_hash}, env=env,
                         policy=workflow_policy(picked), before_start=_free_vram if free_vram else None)
    _emit(job)
    return io.NodeOutput(job["id"], ui=_job_ui(job, _summary(job)))


def _job_ui(job: dict, text: str) -> dict:
    """The status text, and the job as the Training Job node's status widget and the sidebar read it."""
    return {"text": [text], "rewardloop_job": [routes.job_view(job)]}


def _common_inputs(default_lora: str, default_steps: int) -> list:
    import folder_paths

    return [
        io.Combo.Input("model_file", options=folder_paths.get_filename_list("diffusion_models"),
                       tooltip="Wan 2.1 text-to-video transformer (bf16/fp16 file from models/diffusion_models)."),
        io.Combo.Input("vae_file", options=["none", *folder_paths.get_filename_list("vae")],
                       tooltip="Wan 2.1 VAE: encodes dataset clips (DPO) and decodes samples for rewards (GRPO)."),
        io.String.Input("lora_name", default=default_lora,
                        tooltip="File name of the trained LoRA in models/loras (ComfyUI's Wan LoRA format)."),
        io.Int.Input("steps", default=default_steps, min=1, max=1_000_000,
                     tooltip="Training steps (optimizer updates) of the whole job."),
        io.Float.Input("learning_rate", default=1e-4, min=1e-7, max=1.0, step=1e-5,
                       tooltip="LoRA learning rate (AdamW); lower is safer, higher learns faster."),
        io.Int.Input("lora_rank", default=32, min=1, max=256,
                     tooltip="LoRA rank: higher = more capacity and a bigger file (16-64 is typical)."),
        io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                     tooltip="Training seed. Fixed on purpose: the same settings address the same job."),
        io.Int.Input("checkpoint_every", default=100, min=0, max=1_000_000,
                     tooltip="Steps between checkpoints (LoRA + optimizer + RNG + data position); 0 = only at "
                             "the end and on cancel. Resume continues from the newest one."),
        io.Boolean.Input("gradient_checkpointing", default=True, tooltip="Less VRAM, ~30% slower steps."),
        io.Int.Input("gpus", default=1, min=1, max=16, tooltip=">1 runs torchrun with DDP (FSDP via extra settings)."),
        io.Boolean.Input("free_vram", default=True,
                         tooltip="Unload ComfyUI's models first so the training process gets the GPU memory."),
        io.String.Input("extra_settings", default="", multiline=True,
                        tooltip="YAML merged over the generated trainer config, e.g. 'optim: {warmup_steps: 50}'."),
        io.Boolean.Input("overwrite", default=False, optional=True,
                         tooltip="Replace a LoRA file of the same name in models/loras. Off: an existing file is "
                                 "kept and the new LoRA gets a numbered name (name_00001.safetensors)."),
    ]


def _common_cfg(kw: dict) -> dict:
    model, vae, loras = _paths(kw["model_file"], kw["vae_file"])
    return jc.common(model_path=model, vae_path=vae, lora_dir=loras, lora_name=kw["lora_name"], steps=kw["steps"],
                     lr=kw["learning_rate"], rank=kw["lora_rank"], seed=kw["seed"],
                     checkpoint_every=kw["checkpoint_every"], gradient_checkpointing=kw["gradient_checkpointing"],
                     overwrite=bool(kw.get("overwrite", False)))


def _check_frames(frames) -> bool | str:
    if frames is not None and (frames - 1) % 4:
        return f"frames={frames} is not 4k+1 (Wan's VAE compresses time 4x): use {frames - (frames - 1) % 4} or {frames - (frames - 1) % 4 + 4}."
    return True


class _RunsEveryQueue(io.ComfyNode):
    """Job nodes report live state: an identical re-queued graph must run them again, not replay ComfyUI's
    cached output (not_idempotent alone only keeps two such nodes from sharing a cache entry)."""

    @classmethod
    def fingerprint_inputs(cls, **_):
        return float("nan")  # NaN never equals the previous fingerprint


class _LaunchNode(_RunsEveryQueue):
    """A Launch node: inputs in, a background job started, its id out at once."""

    @staticmethod
    def launch_schema(node_id: str, display_name: str, description: str, inputs: list) -> io.Schema:
        return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY, description=description,
                         inputs=inputs, hidden=[io.Hidden.unique_id],
                         outputs=[io.String.Output("job_id", display_name="job id",
                                                   tooltip="Id of the started job: connect it to a Training Job node.")],
                         is_output_node=True, not_idempotent=True)

    @classmethod
    def validate_inputs(cls, frames=None):  # no **kwargs: ComfyUI would flag every input with the message
        return _check_frames(frames)

    @classmethod
    def start(cls, method: str, cfg: dict, kw: dict) -> io.NodeOutput:
        """The user's extra settings over the generated config, then the job (the config is checked with the
        workflow policy whichever key a value came through; the model files picked from ComfyUI's lists are the
        user's own)."""
        picked = [p for p in (cfg["model"]["weights"], cfg["model"].get("vae")) if p]
        cfg = jc.deep_merge(cfg, jc.parse_extra(kw["extra_settings"]))
        return _launch(method, cfg, kw["gpus"], kw["free_vram"], cls.hidden.unique_id, picked)


class RewardLoopLaunchDPO(_LaunchNode):
    @classmethod
    def define_schema(cls):
        return cls.launch_schema(
            "RewardLoopLaunchDPO", "Launch DPO Training",
            "Starts Flow-DPO LoRA training of a Wan 2.1 model on preference pairs as a background job and returns "
            "its id at once. Data: a JSONL of {prompt, chosen, rejected} or a VideoDPO folder (metadata.json + "
            "pair.json).",
            inputs=[
                io.String.Input("dataset", default="",
                                tooltip="Name of the pairs JSONL file or VideoDPO folder in ComfyUI's input folder "
                                        "(or models/rewardloop/datasets), e.g. pairs.jsonl."),
                io.String.Input("text_embeddings", default="",
                                tooltip="Text-embedding cache holding every prompt (Text Embedding Cache node)."),
                io.Int.Input("frames", default=33, min=1, max=1025, step=4, tooltip="Clip length, 4k+1."),
                io.Int.Input("height", default=480, min=0, max=2048, step=16, tooltip="0 with precomputed latents."),
                io.Int.Input("width", default=832, min=0, max=2048, step=16, tooltip="0 with precomputed latents."),
                io.Float.Input("beta", default=0.0, min=0.0, max=1e6, step=10.0,
                               tooltip="DPO beta; 0 = 1000 (flow-matching default; useful range ~100-2000)."),
                io.Combo.Input("on_bad_sample", options=["error", "skip"], default="error",
                               tooltip="A missing/corrupt clip stops the job (error) or is skipped and counted."),
                *_common_inputs("rewardloop_dpo", 1000),
            ])

    @classmethod
    def execute(cls, dataset, text_embeddings, frames, height, width, beta, on_bad_sample, **kw) -> io.NodeOutput:
        cfg = _common_cfg(kw)
        cfg["dpo"] = {"data": _find(dataset, "dataset", DATASETS),
                      "text_embeddings": _find(text_embeddings, "text_embeddings", TEXT_EMBEDDINGS), "frames": frames, "height": height, "width": width, "beta": beta, "on_bad_sample": on_bad_sample}
        return cls.start("dpo", cfg, kw)


def _grpo_inputs() -> list:
    return [
        io.String.Input("prompts", default="", multiline=True,
                        tooltip="One prompt per line, or the name of a prompt list file in ComfyUI's input folder."),
        io.String.Input("text_embeddings", default="", tooltip="Text-embedding cache holding every prompt."),
        io.Combo.Input("reward", options=reward_names(), default="composite",
                       tooltip="Reward optimised by GRPO (composite = the pack's reward suite)."),
        io.String.Input("reward_settings", default="", multiline=True,
                        tooltip="YAML: weights for composite (e.g. 'clip_score: 1.0'), params for the others."),
        io.Combo.Input("gold_reward", options=["none", *reward_names()], default="none",
                       tooltip="Held-out reward, logged but never optimised: a rising reward with a falling gold "
                               "reward means reward hacking."),
        io.Int.Input("group_size", default=4, min=2, max=64,
                     tooltip="Samples generated per prompt and compared with each other (4-8 is typical; too small "
                             "a group gives flat rewards)."),
        io.Int.Input("sampling_steps", default=20, min=2, max=200, tooltip="Denoising steps per training sample."),
        io.Int.Input("train_window", default=4, min=1, max=200,
                     tooltip="Number of high-noise sampling steps that are SDE steps and trained on."),
        io.Float.Input("kl_beta", default=0.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Pull towards the untrained model (0 = off; 0.01-0.04 slows reward hacking)."),
        io.Int.Input("frames", default=33, min=1, max=1025, step=4, tooltip="Frames per training sample, 4k+1."),
        io.Int.Input("height", default=240, min=16, max=2048, step=16, tooltip="Training sample height in pixels."),
        io.Int.Input("width", default=416, min=16, max=2048, step=16, tooltip="Training sample width in pixels."),
    ]


def _grpo_section(kw: dict) -> dict:
    sec = {"prompts": _prompt_file(kw["prompts"]),
           "text_embeddings": _find(kw["text_embeddings"], "text_embeddings", TEXT_EMBEDDINGS),
           "reward": jc.reward_spec(kw["reward"], kw["reward_settings"]), "group_size": kw["group_size"],
           "sampling_steps": kw["sampling_steps"], "window_size": kw["train_window"], "kl_beta": kw["kl_beta"],
           "frames": kw["frames"], "height": kw["height"], "width": kw["width"]}
    if kw["gold_reward"] != "none":
        sec["gold_reward"] = {"name": kw["gold_reward"]}
    return sec


class RewardLoopLaunchGRPO(_LaunchNode):
    @classmethod
    def define_schema(cls):
        return cls.launch_schema(
            "RewardLoopLaunchGRPO", "Launch GRPO Training",
            "Starts Flow-GRPO LoRA training (online RL with a reward on decoded samples) as a background job and "
            "returns its id at once.",
            [*_grpo_inputs(), *_common_inputs("rewardloop_grpo", 500)])

    @classmethod
    def execute(cls, **kw) -> io.NodeOutput:
        cfg = _common_cfg(kw)
        cfg["grpo"] = _grpo_section(kw)
        return cls.start("grpo", cfg, kw)


class RewardLoopLaunchCurriculum(_LaunchNode):
    @classmethod
    def define_schema(cls):
        return cls.launch_schema(
            "RewardLoopLaunchCurriculum", "Launch Length Curriculum",
            "Trains with GRPO stage by stage on longer clips (e.g. 33 -> 49 -> 65 -> 97 frames). The next stage "
            "starts only when the gates pass on the validation prompts; otherwise the job stops with a report.",
            inputs=[
                io.String.Input("stages", default="33, 49, 65, 97", tooltip="Frame counts (4k+1), in order."),
                io.Int.Input("steps_per_stage", default=200, min=1, max=1_000_000,
                             tooltip="Training steps in each stage."),
                io.String.Input("gates", default="temporal_smoothness >= -0.05", multiline=True,
                                tooltip="One gate per line: '<metric> <op> <value>' (all must pass to advance)."),
                io.String.Input("validation_prompts", default="", multiline=True,
                                tooltip="Prompts for the gate metrics (one a line or a file); empty = training prompts."),
                *[i for i in _grpo_inputs() if i.id != "frames"],
                *[i for i in _common_inputs("rewardloop_curriculum", 200) if i.id != "steps"],
            ])

    @classmethod
    def validate_inputs(cls, stages=None):
        if stages is not None:
            try:
                jc.parse_stages(stages, 1)
            except ValueError as exc:
                return str(exc)
        return True

    @classmethod
    def execute(cls, stages, steps_per_stage, gates, validation_prompts, **kw) -> io.NodeOutput:
        kw = {**kw, "steps": steps_per_stage, "frames": jc.parse_stages(stages, 1)[0]["frames"]}
        cfg = _common_cfg(kw)
        cfg["grpo"] = _grpo_section(kw)
        cfg["curriculum"] = {"method": "grpo", "stages": jc.parse_stages(stages, steps_per_stage),
                             "gates": jc.parse_gates(gates)}
        if validation_prompts.strip():
            cfg["curriculum"]["validation_prompts"] = _prompt_file(validation_prompts, "validation_prompts")
        return cls.start("curriculum", cfg, kw)


class RewardLoopTrainingJob(_RunsEveryQueue):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopTrainingJob", display_name="Training Job", category=CATEGORY,
            description="Status of a training job (queue again to refresh; live numbers arrive by themselves), "
                        "or cancel / resume it. Lists the known jobs when job_id is empty.",
            inputs=[
                io.String.Input("job_id", default="", tooltip="Id returned by a Launch node (or typed in)."),
                io.Combo.Input("action", options=["status", "cancel", "resume"], default="status",
                               tooltip="cancel: the trainer checkpoints and stops; resume: continues from the newest "
                                       "checkpoint."),
            ],
            outputs=[io.String.Output("status", display_name="status",
                                      tooltip="The job's state, e.g. running, finished, failed or cancelled."),
                     io.String.Output("lora_name", display_name="LoRA name",
                                      tooltip="File name of the trained LoRA in models/loras, once finished."),
                     io.Int.Output("step", display_name="step", tooltip="Training steps done so far."),
                     io.String.Output("metrics", display_name="metrics", tooltip="Latest metrics as JSON.")],
            hidden=[io.Hidden.unique_id], is_output_node=True, not_idempotent=True,
        )

    @classmethod
    def execute(cls, job_id, action) -> io.NodeOutput:
        manager = training_jobs().manager()
        job_id = job_id.strip()
        if not job_id:
            jobs = manager.list_jobs()
            text = "\n".join(_summary(j).splitlines()[0] for j in jobs) or "no training jobs yet"
            return io.NodeOutput("", "", 0, json.dumps([j["id"] for j in jobs]),
                                 ui={"text": [text], "rewardloop_job": [{"jobs": [routes.job_view(j) for j in jobs]}]})
        if action == "cancel":
            job = manager.cancel(job_id, wait=False)
        elif action == "resume":
            job = manager.resume(job_id)
        else:
            job = manager.status(job_id)
        _emit(job)
        lora = os.path.basename(job["lora_path"]) if job.get("status") == "finished" and job.get("lora_path") else ""
        step = int((job.get("progress") or {}).get("step") or 0)
        return io.NodeOutput(job["status"], lora, step, json.dumps(job.get("last_metrics") or {}),
                             ui=_job_ui(job, _summary(job)))


def _cache_prompts(prompts: str) -> list[str]:
    """Prompt lines, or every prompt of a file (prompt list, pairs JSONL) or a VideoDPO folder named from the input
    folder (or models/rewardloop/datasets), so the cache of a large DPO dataset is one node away."""
    named = _named_file(prompts, "prompts", PROMPTS)
    if named:
        from pathlib import Path

        found = dataset_prompts(Path(named)) if os.path.isdir(named) else read_prompt_list(named)
        return list(dict.fromkeys(p.strip() for p in found if p.strip()))
    check_text_size(prompts, "prompts", MAX_PROMPT_TEXT)
    return list(dict.fromkeys(p.strip() for p in prompts.splitlines() if p.strip()))


def _real_tokens(cond):
    """[1, tokens, dim] or [tokens, dim] encoder output -> [tokens, dim] without the zero padding Wan's
    encoder appends (up to 512 tokens); the trainers pad again to model.text_len."""
    import torch

    e = cond[0] if cond.dim() == 3 else cond
    nonzero = (e.abs().sum(dim=-1) > 0).nonzero()
    return e[: int(nonzero.max()) + 1 if len(nonzero) else 1].to(torch.bfloat16)


class RewardLoopTextEmbeddingCache(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopTextEmbeddingCache", display_name="Text Embedding Cache (training)", category=CATEGORY,
            description="Encodes your training prompts once with the graph's text encoder (umt5 for Wan) and saves "
                        "them for the trainers, so training never loads the text encoder.",
            inputs=[
                io.String.Input("prompts", default="", multiline=True,
                                tooltip="One prompt per line, or the name of a prompt list (.txt/.json/.jsonl), a DPO "
                                        "pairs JSONL or a VideoDPO folder in ComfyUI's input folder (or "
                                        "models/rewardloop/datasets): every prompt in it is cached."),
                io.String.Input("negative_prompt", default="", multiline=True,
                                tooltip="Also cached (used by GRPO with guidance_scale > 1)."),
                io.String.Input("cache_name", default="prompts", tooltip="File name under output/rewardloop/text_embeddings."),
                io.Clip.Input("clip", optional=True, tooltip="Text encoder (CLIPLoader type wan for Wan 2.1)."),
                io.Conditioning.Input("conditioning", optional=True,
                                      tooltip="Already encoded prompts instead of a clip: one entry per prompt line."),
                io.Boolean.Input("overwrite", default=False, optional=True,
                                 tooltip="Replace a different cache of the same name. Off: it is kept and the new cache "
                                         "gets a numbered name (an identical cache is reused as it is)."),
            ],
            outputs=[io.String.Output("text_embeddings", display_name="text embeddings",
                                      tooltip="Path of the cache file: connect it to a Launch node.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, prompts, negative_prompt, cache_name, clip=None, conditioning=None,
                overwrite=False) -> io.NodeOutput:
        import folder_paths

        name = plain_name(cache_name, "cache_name", ".safetensors")
        lines = _cache_prompts(prompts)
        if not lines:
            raise ValueError("prompts is empty: give one prompt per line (or the path of a prompt list file).")
        texts = lines + ([negative_prompt.strip()] if negative_prompt.strip() not in lines else [])
        if (clip is None) == (conditioning is None):
            raise ValueError("Connect either clip (the text encoder) or conditioning (encoded prompts), not both "
                             "and not neither.")
        if clip is not None:
            import comfy.utils

            bar = comfy.utils.ProgressBar(len(texts))  # a dataset's prompts take minutes; the bar also cancels
            embs = []
            for text in texts:  # ComfyUI's CLIP API encodes one text at a time
                embs.append(_real_tokens(clip.encode_from_tokens(clip.tokenize(text))))
                bar.update(1)
        else:
            if not negative_prompt.strip() and len(conditioning) == len(lines):
                texts = lines  # no entry for the empty negative prompt: it is only needed with guidance
            if len(conditioning) != len(texts):
                raise ValueError(f"conditioning has {len(conditioning)} entries but there are {len(texts)} prompts "
                                 f"(prompt lines{' + negative prompt' if len(texts) > len(lines) else ''}): give one "
                                 "entry per prompt, in order (Conditioning (Combine) joins encoded prompts).")
            embs = [_real_tokens(c[0]) for c in conditioning]
        target = os.path.join(folder_paths.get_output_directory(), "rewardloop", "text_embeddings", name)
        tmp = save_text_embeddings(os.path.join(os.path.dirname(target), f".{name}.{os.getpid()}.tmp"), texts, embs,
                                   encoder="comfyui-clip" if clip is not None else "comfyui-conditioning")
        path = str(publish(tmp, target, overwrite=bool(overwrite)))
        note = "" if path == target else f" ({name} holds another cache, which was kept)"
        return io.NodeOutput(path, ui={"text": [f"{len(texts)} prompts -> {path}{note}"]})


NODES = [RewardLoopLaunchDPO, RewardLoopLaunchGRPO, RewardLoopLaunchCurriculum, RewardLoopTrainingJob,
         RewardLoopTextEmbeddingCache]
