"""Training nodes driven through a real ComfyUI server (POST /prompt + websocket), on the tiny Wan 2.1 files:
a launch returns a job id while the job still runs, the Training Job node reports it, `rewardloop.training`
events arrive, the finished LoRA lands in models/loras and core LoraLoaderModelOnly loads it into the same
model and changes what it samples; cancel and resume from the canvas; bad settings surface on the node and
leave the server running."""
from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.server

DIT, VAE = "rl_tiny_wan21.safetensors", "rl_tiny_wan21_vae.safetensors"
PROMPT = "a red fox runs across the snow"
# The job process gets one thread: the server (and a second job) share this machine's cores with it.
EXTRA = "model: {text_len: 8}\nrun: {device: cpu, num_threads: 1, tensorboard: false}"
STATUS_RE = re.compile(r"^(\S+): (\w+)(?: \(step (\d+)/(\d+))?")


def unique() -> int:
    return time.time_ns() // 1000 % 10**9  # fresh values per run: identical prompts would come from cache


def embedding_nodes(tag: int) -> dict:
    """The cache every job reads, made by the pack's node from conditioning (Wan's real text encoder is a
    UMT5-XXL; the test pack's node stands in for CLIPTextEncode)."""
    return {
        "cond": {"class_type": "RLTestTextConditioning", "inputs": {"text": PROMPT, "tokens": 8}},
        "emb": {"class_type": "RewardLoopTextEmbeddingCache",
                "inputs": {"prompts": PROMPT, "negative_prompt": "", "cache_name": f"rl_srv_{tag}",
                           "conditioning": ["cond", 0]}},
    }


def launch_graph(tag: int, *, steps: int, action: str = "status", prompts: str = PROMPT, frames: int = 5,
                 extra: str = EXTRA, lr: float = 0.05) -> dict:
    """Launch GRPO -> Training Job, as on the canvas (queued again for status, cancel and resume)."""
    return embedding_nodes(tag) | {
        "launch": {"class_type": "RewardLoopLaunchGRPO", "inputs": {
            "prompts": prompts, "text_embeddings": ["emb", 0], "reward": "brightness", "reward_settings": "",
            "gold_reward": "none", "group_size": 2, "sampling_steps": 3, "train_window": 2, "kl_beta": 0.0,
            "frames": frames, "height": 32, "width": 32, "model_file": DIT, "vae_file": VAE,
            "lora_name": f"rl_srv_{tag}", "steps": steps, "learning_rate": lr, "lora_rank": 4, "seed": tag % 1000,
            "checkpoint_every": 0, "gradient_checkpointing": False, "gpus": 1, "free_vram": True,
            "extra_settings": extra}},
        "job": {"class_type": "RewardLoopTrainingJob", "inputs": {"job_id": ["launch", 0], "action": action}},
    }


def job_graph(job_id: str, action: str = "status") -> dict:
    return {"job": {"class_type": "RewardLoopTrainingJob", "inputs": {"job_id": job_id, "action": action}}}


def node_state(result, node: str = "job") -> dict:
    """What the node shows: '<job id>: <status> (step k/N)' and, for failures, the error below."""
    assert result.status == "success", result.error
    text = result.outputs[node]["text"][0]
    m = STATUS_RE.match(text)
    assert m, text
    return {"id": m[1], "status": m[2], "step": int(m[3] or 0), "text": text}


def poll(comfy, graph: dict, until, timeout: float, every: float = 0.5) -> tuple[dict, float]:
    t0 = time.monotonic()
    while True:
        state = node_state(comfy.run(graph))
        if until(state) or time.monotonic() - t0 > timeout:
            return state, time.monotonic() - t0
        time.sleep(every)


def sample_graph(tag: int, lora: str | None) -> dict:
    """The core t2v graph on the tiny Wan, with and without the trained LoRA, same seed, saved as PNGs."""
    nodes = {
        "m": {"class_type": "UNETLoader", "inputs": {"unet_name": DIT, "weight_dtype": "default"}},
        "v": {"class_type": "VAELoader", "inputs": {"vae_name": VAE}},
        "p": {"class_type": "RLTestTextConditioning", "inputs": {"text": PROMPT, "tokens": 8}},
        "n": {"class_type": "RLTestTextConditioning", "inputs": {"text": "", "tokens": 8}},
        "lat": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9,
                                                                    "batch_size": 1}},
    }
    for branch, model in (("base", ["m", 0]), ("lora", ["l", 0])):
        if branch == "lora":
            nodes["l"] = {"class_type": "LoraLoaderModelOnly",
                          "inputs": {"model": ["m", 0], "lora_name": lora, "strength_model": 1.0}}
        nodes[f"k_{branch}"] = {"class_type": "KSampler", "inputs": {
            "model": model, "positive": ["p", 0], "negative": ["n", 0], "latent_image": ["lat", 0], "seed": tag,
            "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}
        nodes[f"d_{branch}"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"k_{branch}", 0], "vae": ["v", 0]}}
        nodes[f"s_{branch}"] = {"class_type": "SaveImage", "inputs": {"images": [f"d_{branch}", 0],
                                                                       "filename_prefix": f"rl_test/lora_{branch}_{tag}"}}
    return nodes


def saved_frames(comfy, result, node: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(comfy.output_path(i)), dtype=np.int16) for i in result.outputs[node]["images"]])


def job_dir(comfy, job_id: str):
    return comfy.base_dir / "user" / "rewardloop" / "jobs" / job_id


@pytest.fixture(scope="module", autouse=True)
def no_job_left_running(comfy):
    """Jobs run in their own sessions and outlive the server: whatever a failed test left running is cancelled."""
    yield
    listing = comfy.run(job_graph(""))
    for line in listing.outputs["job"]["text"][0].splitlines():
        m = STATUS_RE.match(line)
        if m and m[2] in ("running", "starting"):
            comfy.run(job_graph(m[1], "cancel"))


def test_launch_returns_at_once_then_the_lora_changes_core_sampling(comfy):
    tag = unique()
    first_msg = comfy.message_count()
    t0 = time.monotonic()
    started = comfy.run(launch_graph(tag, steps=2))
    queued_s = time.monotonic() - t0
    launched = node_state(started, "launch")
    job_id = launched["id"]
    assert job_id.startswith("grpo-"), launched
    # the prompt finished while the job still runs (a job process takes seconds to import torch alone)
    assert node_state(started)["status"] == "running" and node_state(started)["id"] == job_id
    assert queued_s < 20, queued_s

    state, waited = poll(comfy, job_graph(job_id), lambda s: s["status"] not in ("running", "starting"), 240)
    assert state["status"] == "finished", (state["text"], (job_dir(comfy, job_id) / "log.txt").read_text()[-3000:])
    assert state["step"] == 2 and f"rl_srv_{tag}.safetensors" in state["text"]
    lora = comfy.base_dir / "models" / "loras" / f"rl_srv_{tag}.safetensors"
    assert lora.is_file()

    time.sleep(2.5)  # one more watcher period: its "finished" event
    events = [m["data"] for m in comfy.messages_since(first_msg) if m.get("type") == "rewardloop.training"]
    ours = [e for e in events if e["job_id"] == job_id]
    assert ours and all(e["node_id"] == "launch" and e["method"] == "grpo" for e in ours)
    assert any(e["status"] == "running" for e in ours)
    assert any(e["status"] == "finished" and e["lora_path"] == str(lora) and e["step"] == 2 for e in ours)
    assert any("reward_mean" in e["metrics"] for e in ours), ours[-1]

    log_before = len(comfy.log_text())
    result = comfy.run(sample_graph(tag, lora.name))
    assert result.status == "success", result.error
    base, tuned = saved_frames(comfy, result, "s_base"), saved_frames(comfy, result, "s_lora")
    assert base.shape == tuned.shape == (9, 64, 64, 3)
    diff = np.abs(base - tuned).mean()
    assert diff > 1.0, diff  # 8-bit levels: the LoRA visibly changes the sampled frames
    server_log = comfy.log_text()[log_before:]
    assert "lora key not loaded" not in server_log.lower(), server_log[-3000:]


def test_cancel_and_resume_from_the_canvas(comfy):
    tag = unique()
    graph = launch_graph(tag, steps=400)
    first = node_state(comfy.run(graph))
    job_id = first["id"]
    # queueing the same graph again addresses the same job (no second training run)
    state, _ = poll(comfy, graph, lambda s: s["step"] >= 1, 120)
    assert state["id"] == job_id and state["status"] == "running", state["text"]

    t0 = time.monotonic()
    cancelling = node_state(comfy.run(launch_graph(tag, steps=400, action="cancel")))
    assert cancelling["id"] == job_id and cancelling["status"] in ("cancelling", "cancelled"), cancelling["text"]
    state, _ = poll(comfy, job_graph(job_id), lambda s: s["status"] != "cancelling", 15, every=0.2)
    stopped_s = time.monotonic() - t0
    assert state["status"] == "cancelled", state["text"]
    assert stopped_s < 10, stopped_s
    stopped_at = state["step"]
    result = json.loads((job_dir(comfy, job_id) / "run" / "result.json").read_text())
    assert result["status"] == "cancelled" and result["step"] >= stopped_at >= 1

    resumed = node_state(comfy.run(launch_graph(tag, steps=400, action="resume")))
    assert resumed["id"] == job_id and resumed["status"] == "running", resumed["text"]
    state, _ = poll(comfy, job_graph(job_id), lambda s: s["step"] > result["step"], 120)
    assert state["status"] == "running" and state["id"] == job_id, state["text"]
    log = (job_dir(comfy, job_id) / "log.txt").read_text()
    assert f"(step {result['step']})" in log and "Resumed from" in log, log[-2000:]
    rows = [json.loads(line) for line in (job_dir(comfy, job_id) / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == list(range(1, len(steps) + 1)), steps  # continued, not restarted

    state = node_state(comfy.run(job_graph(job_id, "cancel")))  # leave nothing running
    state, _ = poll(comfy, job_graph(job_id), lambda s: s["status"] != "cancelling", 15, every=0.2)
    assert state["status"] == "cancelled", state["text"]


def test_bad_settings_surface_on_the_node_and_the_server_keeps_running(comfy):
    tag = unique()
    # 1. frames 32 (not 4k+1): refused at queue time, on the launch node's frames input (the valid part of
    #    the graph, the embedding cache output node, may still run: ComfyUI queues what validates)
    first = comfy.message_count()
    status, answer = comfy.post_json("/prompt", {"prompt": launch_graph(tag, steps=2, frames=32),
                                                 "client_id": comfy.client_id})
    errors = answer["node_errors"]
    assert list(errors) == ["launch"], answer
    assert [e["extra_info"]["input_name"] for e in errors["launch"]["errors"]] == ["frames"], errors
    assert "4k+1" in errors["launch"]["errors"][0]["details"] and "33" in errors["launch"]["errors"][0]["details"]
    if status == 200:
        ran = comfy.wait(answer["prompt_id"], first)
        assert "launch" not in ran.executed_nodes() and "job" not in ran.executed_nodes()
    else:
        assert status == 400, answer

    # 2. a trainer setting that only the full config can check: execution_error on the launch node
    bad = launch_graph(tag, steps=2, extra=EXTRA + "\ngrpo: {window_size: 9}")
    result = comfy.run(bad)
    assert result.status == "error"
    assert result.error["node_id"] == "launch" and "train window" in result.error["exception_message"], result.error

    # 3. the job starts but fails in the trainer (a prompt missing from the embedding cache): the Training
    #    Job node shows "failed" with the trainer's message, never "finished"
    result = comfy.run(launch_graph(tag, steps=2, prompts="a prompt nobody encoded"))
    job_id = node_state(result, "launch")["id"]
    state, _ = poll(comfy, job_graph(job_id), lambda s: s["status"] not in ("running", "starting"), 120)
    assert state["status"] == "failed", state["text"]
    assert "missing from the text embedding cache" in state["text"], state["text"]

    assert comfy.get_json("/system_stats")["system"]["comfyui_version"]
    listing = comfy.run(job_graph(""))
    assert listing.status == "success" and job_id in listing.outputs["job"]["text"][0]


@pytest.mark.parametrize("name", ["train_dpo", "train_grpo", "train_curriculum", "compare_lora"])
def test_training_workflows_validate_except_the_users_model_files(comfy, name):
    """The shared workflows name the user's real Wan 2.1 files, absent here: posting them must fail only on
    those file names (links, types and every other widget value validate)."""
    from workflow_specs import template_path
    from workflows import load, ui_to_api

    prompt = ui_to_api(load(template_path(name)), comfy.object_info())
    status, answer = comfy.post_json("/prompt", {"prompt": prompt, "client_id": comfy.client_id})
    assert status == 400, answer
    user_files = {"wan2.1_t2v_1.3B_fp16.safetensors", "wan_2.1_vae.safetensors",
                  "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan13b_grpo.safetensors"}
    problems = []
    for node_id, entry in answer["node_errors"].items():
        for err in entry["errors"]:
            if not (err["type"] == "value_not_in_list" and err["extra_info"]["received_value"] in user_files):
                problems.append((node_id, entry["class_type"], err))
    assert answer["node_errors"] and not problems, problems
