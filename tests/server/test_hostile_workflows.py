"""Hostile workflows through a real ComfyUI server: a shared workflow must be as safe to queue as an image is to
open. Every case of the audit (code by every route, paths outside ComfyUI's folders in every spelling, YAML
tricks, huge settings, replacing each kind of user file) is a row of a table. A refused case must fail on the
node with an error naming the input and the rule, change nothing outside ComfyUI's folders (tree hash of a canary
folder outside the base directory) and none of the user's files (tree hash), start no job, run no code (no marker
file), echo no file content, and leave the server answering. Where a job must start (a LoRA name that is already
taken), it runs on the tiny Wan files and writes a numbered file beside the user's."""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

DIT, VAE = "rl_tiny_wan21.safetensors", "rl_tiny_wan21_vae.safetensors"
PROMPT = "a red fox runs across the snow"
EXTRA = "model: {text_len: 8}\nrun: {device: cpu, num_threads: 1, tensorboard: false}"
SECRET = "TOP-SECRET-LINE do not echo me"
STATUS_RE = re.compile(r"^(\S+): (\w+)(?: \(step (\d+)/(\d+))?")
# The ~420-byte YAML alias bomb of the audit (~10^9 strings once expanded).
ALIAS_BOMB = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def tree_hash(*roots: Path) -> str:
    """Names, link targets and contents of everything under `roots`."""
    h = hashlib.sha256()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                p = Path(dirpath) / name
                h.update(str(p.relative_to(root.parent)).encode())
                if p.is_symlink():
                    h.update(os.readlink(p).encode())
                elif p.is_file():
                    h.update(p.read_bytes())
    return h.hexdigest()


@dataclass
class World:
    base: Path
    canary: Path
    marker: Path
    user_files: list = field(default_factory=list)
    cache: str = ""      # a legitimate text-embedding cache made by the pack's node

    @property
    def loras(self) -> Path:
        return self.base / "models" / "loras"

    def state(self) -> tuple:
        return tree_hash(self.canary), tree_hash(*self.user_files), sorted(os.listdir(self.jobs_dir()))

    def jobs_dir(self) -> Path:
        path = self.base / "user" / "rewardloop" / "jobs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def up_to_canary(self, start: Path) -> str:
        """A relative path from `start` to the canary folder (`../../..`)."""
        return os.path.relpath(self.canary, start)


def embedding_nodes(cache_name: str) -> dict:
    return {
        "cond": {"class_type": "RLTestTextConditioning", "inputs": {"text": PROMPT, "tokens": 8}},
        "emb": {"class_type": "RewardLoopTextEmbeddingCache",
                "inputs": {"prompts": PROMPT, "negative_prompt": "", "cache_name": cache_name,
                           "conditioning": ["cond", 0]}},
    }


def common(tag: str, **over) -> dict:
    inputs = {"model_file": DIT, "vae_file": VAE, "lora_name": f"rl_hostile_{tag}", "steps": 1,
              "learning_rate": 0.01, "lora_rank": 4, "seed": 0, "checkpoint_every": 0,
              "gradient_checkpointing": False, "gpus": 1, "free_vram": False, "extra_settings": EXTRA}
    inputs.update(over)
    return inputs


def grpo_graph(world: World, tag: str, **over) -> dict:
    inputs = {"prompts": PROMPT, "text_embeddings": world.cache, "reward": "brightness", "reward_settings": "",
              "gold_reward": "none", "group_size": 2, "sampling_steps": 3, "train_window": 2, "kl_beta": 0.0,
              "frames": 5, "height": 32, "width": 32, **common(tag)}
    inputs.update(over)
    return {"launch": {"class_type": "RewardLoopLaunchGRPO", "inputs": inputs},
            "job": {"class_type": "RewardLoopTrainingJob", "inputs": {"job_id": ["launch", 0], "action": "status"}}}


def curriculum_graph(world: World, tag: str, **over) -> dict:
    inputs = {"stages": "5", "steps_per_stage": 1, "gates": "brightness >= 0", "validation_prompts": "",
              "prompts": PROMPT, "text_embeddings": world.cache, "reward": "brightness", "reward_settings": "",
              "gold_reward": "none", "group_size": 2, "sampling_steps": 3, "train_window": 2, "kl_beta": 0.0,
              "height": 32, "width": 32, **common(tag)}
    inputs.pop("steps")
    inputs.update(over)
    return {"launch": {"class_type": "RewardLoopLaunchCurriculum", "inputs": inputs}}


def dpo_graph(world: World, tag: str, **over) -> dict:
    inputs = {"dataset": "rl_hostile_pairs.jsonl", "text_embeddings": world.cache, "frames": 5, "height": 0,
              "width": 0, "beta": 0.0, "on_bad_sample": "error", **common(tag)}
    inputs.update(over)
    return {"launch": {"class_type": "RewardLoopLaunchDPO", "inputs": inputs}}


def cache_graph(tag: str, **over) -> dict:
    graph = embedding_nodes(f"rl_hostile_cache_{tag}")
    graph["emb"]["inputs"].update(over)
    return graph


def job_graph(job_id: str, action: str = "status") -> dict:
    return {"job": {"class_type": "RewardLoopTrainingJob", "inputs": {"job_id": job_id, "action": action}}}


@pytest.fixture(scope="module")
def world(comfy, tmp_path_factory) -> World:
    canary = tmp_path_factory.mktemp("canary")  # outside the server's base directory
    assert not str(canary).startswith(str(comfy.base_dir))
    w = World(base=comfy.base_dir, canary=canary, marker=canary / "marker")
    (canary / "secret.txt").write_text(SECRET + "\n")
    (canary / "victim").mkdir()
    (canary / "victim" / "config.json").write_text('{"mine": true}')
    (canary / "victim" / "metrics.jsonl").write_text('{"step": 1}\n')
    (canary / "evil.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (canary / "pairs.jsonl").write_text(json.dumps({"prompt": SECRET, "chosen": "a.mp4", "rejected": "b.mp4"}) + "\n")
    inp = w.base / "input"
    for link in (inp / "rl_hostile_link", w.loras / "rl_hostile_link"):
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(canary, target_is_directory=True)
    (inp / "rl_hostile_pairs.jsonl").write_text(json.dumps({"prompt": PROMPT, "chosen": "a.mp4",
                                                            "rejected": "b.mp4"}) + "\n")
    # The user's own files, which no workflow may replace.
    user_lora = w.loras / "rl_user_lora.safetensors"
    user_lora.write_bytes(b"the user's own LoRA")
    user_cache = w.base / "output" / "rewardloop" / "text_embeddings" / "rl_user_cache.safetensors"
    user_cache.parent.mkdir(parents=True, exist_ok=True)
    user_cache.write_bytes(b"the user's own cache")
    user_run = w.base / "output" / "rl_user_run"
    user_run.mkdir(exist_ok=True)
    (user_run / "config.json").write_text('{"mine": true}')
    (user_run / "metrics.jsonl").write_text('{"step": 1}\n')
    w.user_files = [user_lora, user_cache, user_run]
    made = comfy.run(embedding_nodes("rl_hostile_prompts"))
    assert made.status == "success", made.error
    w.cache = made.outputs["emb"]["text"][0].split(" -> ")[1]
    return w


CODE = f"callable: 'pydoc:pipepager'\ncmd: 'touch {{marker}}'"
PY_SPEC = "{{name: python, params: {{callable: 'pydoc:pipepager', cmd: 'touch {marker}'}}}}"


@dataclass
class Case:
    name: str
    graph: object            # (world, tag) -> prompt
    node: str                # the node that must refuse
    needles: tuple           # what the error must say: the input (and the rule)


def _extra(more: str):
    """A GRPO launch whose extra_settings add `more` ({marker}, {canary}, {base}, {loras}, {up} = ../.. from
    models/loras to the canary folder)."""
    def graph(w: World, t: str) -> dict:
        values = dict(marker=w.marker, canary=w.canary, base=w.base, loras=w.loras, up=w.up_to_canary(w.loras))
        return grpo_graph(w, t, extra_settings=f"{EXTRA}\n{more.format(**values)}")
    return graph


CASES = [
    # ---- code by every route
    Case("reward python (combo + reward_settings)",
         lambda w, t: grpo_graph(w, t, reward="python", reward_settings=CODE.format(marker=w.marker)),
         "launch", ("grpo.reward", "Python code", "REWARDLOOP_ALLOW_CODE_REWARDS")),
    Case("gold_reward python (combo)", lambda w, t: grpo_graph(w, t, gold_reward="python"),
         "launch", ("grpo.gold_reward", "Python code")),
    Case("curriculum gate python (gates)",
         lambda w, t: curriculum_graph(w, t, gates="- {metric: python, op: '>=', value: 0, params: {callable: "
                                                   f"'pydoc:pipepager', cmd: 'touch {w.marker}'}}}}"),
         "launch", ("curriculum.gates[0]", "Python code")),
    Case("YAML python tag (extra_settings)",
         lambda w, t: grpo_graph(w, t, extra_settings=f"grpo: {{reward: !!python/object/apply:os.system ['touch {w.marker}']}}"),
         "launch", ("extra_settings", "tags")),
    Case("YAML python tag (reward_settings)",
         lambda w, t: grpo_graph(w, t, reward="composite", reward_settings=f"x: !!python/object/apply:os.system ['touch {w.marker}']"),
         "launch", ("reward_settings", "tags")),
    # ---- denial of service
    Case("YAML alias bomb (extra_settings)", lambda w, t: grpo_graph(w, t, extra_settings=ALIAS_BOMB),
         "launch", ("extra_settings", "anchors and aliases")),
    Case("huge extra_settings", lambda w, t: grpo_graph(w, t, extra_settings="x: '" + "y" * 200_000 + "'"),
         "launch", ("extra_settings", "at most")),
    Case("huge gates", lambda w, t: curriculum_graph(w, t, gates="brightness >= 0\n" * 20_000),
         "launch", ("gates", "at most")),
    # ---- writes outside ComfyUI's folders / over the user's files
    *(Case(name, _extra(more), "launch", needles) for name, more, needles in [
        ("gold_reward python (extra_settings)", "grpo: {{gold_reward: " + PY_SPEC + "}}", ("grpo.gold_reward", "Python code")),
        ("validation metric python (extra_settings)", "validation: {{every: 1, metrics: [" + PY_SPEC + "]}}",
         ("validation.metrics[0]", "Python code")),
        ("run.output_dir absolute", "run: {{output_dir: '{canary}/victim'}}", ("run.output_dir", "outside")),
        ("run.output_dir existing user folder", "run: {{output_dir: '{base}/output/rl_user_run'}}",
         ("run.output_dir", "already holds files")),
        ("run.lora_name ../ (extra_settings)", "run: {{lora_name: '{up}/escape'}}", ("run.lora_name", "not a plain file name")),
        ("run.lora_dir absolute", "run: {{lora_dir: '{canary}'}}", ("run.lora_dir", "outside")),
        ("run.lora_dir ../", "run: {{lora_dir: '{up}'}}", ("run.lora_dir", "'..'")),
        ("run.lora_dir symlink out of models/loras", "run: {{lora_dir: '{loras}/rl_hostile_link'}}", ("run.lora_dir", "outside")),
        ("run.lora_dir drive letter", "run: {{lora_dir: 'C:/loras'}}", ("run.lora_dir", "drive")),
        ("run.data_roots", "run: {{data_roots: ['{canary}']}}", ("run.data_roots", "set by the pack")),
        ("pairs section", "pairs: {{clips: '{canary}', out: '{canary}/o.jsonl'}}", ("pairs", "command line")),
        ("grpo.prompts (extra_settings)", "grpo: {{prompts: '{canary}/secret.txt'}}", ("grpo.prompts", "outside")),
        ("model.weights (extra_settings)", "model: {{weights: '{canary}/evil.safetensors'}}", ("model.weights", "outside")),
        ("model.config file", "model: {{config: '{canary}/secret.txt'}}", ("model.config", "shipped config name")),
        ("lora.init_from", "lora: {{init_from: '{canary}/evil.safetensors'}}", ("lora.init_from", "outside")),
    ]),
    Case("stage override path", lambda w, t: curriculum_graph(w, t, extra_settings=f"{EXTRA}\ncurriculum: {{stages: "
                                   f"[{{frames: 5, steps: 1, overrides: {{grpo: {{prompts: '{w.canary}/secret.txt'}}}}}}]}}"),
         "launch", ("grpo.prompts", "outside")),
    Case("text_embeddings absolute", lambda w, t: grpo_graph(w, t, text_embeddings=str(w.canary / "evil.safetensors")),
         "launch", ("text_embeddings", "outside")),
    Case("reward option path", lambda w, t: grpo_graph(w, t, reward="clip_score", reward_settings=f"weights: '{w.canary}/evil.safetensors'"),
         "launch", ("grpo.reward.params.weights", "looks like a file path")),
    Case("cache_name ../", lambda w, t: cache_graph(t, cache_name=f"{w.up_to_canary(w.base / 'output')}/escape"),
         "emb", ("cache_name", "no folders")),
    Case("job id ../", lambda w, t: job_graph("../../../etc"), "job", ("job id",)),
    Case("job id absolute", lambda w, t: job_graph(str(w.canary)), "job", ("job id",)),
]

def composite_graph(t: str, options_json: str) -> dict:
    """A Composite whose options name a model file (the scorers load weights by the names they are given)."""
    from rewardloop.rewards import SCORERS

    return {"gen": {"class_type": "RewardLoopProceduralScene",
                    "inputs": {"width": 64, "height": 64, "length": 9, "seed": int(t) % 100_000, "motion": "pan",
                               "keyframe_every": 0}},
            "comp": {"class_type": "RewardLoopRewardComposite",
                     "inputs": {"frames": ["gen", 0], "prompt": PROMPT, "options_json": options_json,
                                "flow_method": "dis_fast", "analysis_size": 64, "device": "cpu",
                                **{f"w_{name}": 0.0 for name in SCORERS}, "w_clip_score": 1.0}},
            "out": {"class_type": "PreviewAny", "inputs": {"source": ["comp", 2]}}}


CASES += [
    Case("Composite options_json model file absolute",
         lambda w, t: composite_graph(t, json.dumps({"clip_score": {"weights": str(w.canary / "evil.safetensors")}})),
         "comp", ("model file for 'clip'", "not a file name inside its folder")),
    Case("Composite options_json model file ../",
         lambda w, t: composite_graph(t, json.dumps({"clip_score": {"weights": "../../../evil.safetensors"}})),
         "comp", ("model file for 'clip'", "'..'")),
]


# Every spelling of "somewhere else" (value template, the rule the error must state), for every input that names a
# file: {leaf} is a file in the canary folder outside ComfyUI, rl_hostile_link a symlink from input/ to that folder.
SPELLINGS = [
    ("absolute", "{canary}/{leaf}", "outside"),
    ("..", "../../{leaf}", "'..'"),
    ("URL-encoded", "%2e%2e/%2e%2e/{leaf}", "URL-encoded"),
    ("Windows separators", "..\\..\\{leaf}", "Windows separators"),
    ("drive letter", "C:/Users/x/{leaf}", "drive"),
    ("NUL byte", "{leaf}\x00.txt", "NUL"),
    ("~", "~/{leaf}", "home"),
    ("symlink out of input", "rl_hostile_link/{leaf}", "symbolic link"),
]
FILE_INPUTS = [  # (what, graph builder taking the value, refusing node, file in the canary, needles)
    ("Launch GRPO prompts", lambda w, t, v: grpo_graph(w, t, prompts=v), "launch", "secret.txt",
     ("prompts", "looks like a file path")),
    ("Launch Curriculum validation_prompts", lambda w, t, v: curriculum_graph(w, t, validation_prompts=v), "launch",
     "secret.txt", ("validation_prompts", "looks like a file path")),
    ("Launch DPO dataset", lambda w, t, v: dpo_graph(w, t, dataset=v), "launch", "pairs.jsonl",
     ("dataset", "move the file into")),
    ("Text Embedding Cache prompts", lambda w, t, v: cache_graph(t, prompts=v), "emb", "secret.txt",
     ("prompts", "looks like a file path")),
    ("Launch GRPO lora_name", lambda w, t, v: grpo_graph(w, t, lora_name=v), "launch", "escape", ("lora_name", "no folders")),
]


def _spelled(build, leaf, template):
    return lambda w, t: build(w, t, template.format(canary=w.canary, leaf=leaf))


CASES += [Case(f"{what}: {spelling}", _spelled(build, leaf, template), node,
               needles + (() if what.endswith("lora_name") else (rule,)))
          for what, build, node, leaf, needles in FILE_INPUTS for spelling, template, rule in SPELLINGS]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_workflow_is_refused(comfy, world, case):
    before = world.state()
    tag = f"{time.time_ns() % 10**12}"
    result = comfy.run(case.graph(world, tag))
    assert result.status == "error", (case.name, result.status, result.outputs)
    assert result.error["node_id"] == case.node, result.error
    message = result.error["exception_message"]
    for needle in case.needles:
        assert needle in message, (case.name, message)
    assert "/" not in result.error["exception_type"], result.error["exception_type"]  # a type name, not a path
    assert world.state() == before, case.name  # canary, the user's files and the jobs folder untouched
    assert not world.marker.exists()
    assert SECRET not in json.dumps(result.messages) + json.dumps(result.history), case.name  # nothing echoed
    assert comfy.get_json("/system_stats")["system"]["comfyui_version"]


def _poll_job(comfy, job_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = comfy.run(job_graph(job_id))
        assert result.status == "success", result.error
        text = result.outputs["job"]["text"][0]
        if STATUS_RE.match(text)[2] not in ("running", "starting") or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_taken_names_get_numbered_files_and_the_users_files_stay(comfy, world):
    """A LoRA name and a cache name that are taken by the user's own files: the job and the cache node write
    numbered files beside them, say so, and the user's files stay as they were."""
    before = tree_hash(*world.user_files), tree_hash(world.canary)
    made = comfy.run(embedding_nodes("rl_user_cache"))
    assert made.status == "success", made.error
    assert made.outputs["emb"]["text"][0].split(" -> ")[1].startswith(
        str(world.base / "output" / "rewardloop" / "text_embeddings" / "rl_user_cache_00001.safetensors"))
    started = comfy.run(grpo_graph(world, "taken", lora_name="rl_user_lora", seed=int(time.time()) % 1000))
    assert started.status == "success", started.error
    job_id = STATUS_RE.match(started.outputs["launch"]["text"][0])[1]
    text = _poll_job(comfy, job_id)
    assert STATUS_RE.match(text)[2] == "finished", text
    assert "rl_user_lora_00001.safetensors" in text and "already holds another file" in text, text
    assert (world.loras / "rl_user_lora_00001.safetensors").stat().st_size > 1000
    assert (tree_hash(*world.user_files), tree_hash(world.canary)) == before
    assert not world.marker.exists()
    job = json.loads((world.jobs_dir() / job_id / "job.json").read_text())
    assert job["lora_path"] == str(world.loras / "rl_user_lora_00001.safetensors")  # the record says which file
