"""Training nodes in-process with ComfyUI's modules: Launch GRPO on the harness's tiny Wan 2.1 files (ComfyUI
format, resolved through folder_paths) returns a job id at once, the job runs as a subprocess, the watcher
pushes `rewardloop.training` events, the Training Job node reports the finished LoRA in models/loras, and the
text-embedding cache node keeps only real tokens."""
from __future__ import annotations

import importlib
import sys
import time
from types import SimpleNamespace

import pytest
import torch



class FakeServer:
    def __init__(self):
        self.events, self.texts = [], []

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data, sid))

    def send_progress_text(self, text, node_id, sid=None):
        self.texts.append((node_id, text))


@pytest.fixture
def training(comfy_inprocess, tmp_path, monkeypatch):
    import tiny_models  # tests/harness: ComfyUI-format tiny Wan 2.1 DiT + VAE

    fp = comfy_inprocess
    paths = tiny_models.write_tiny_wan(tmp_path / "models")
    added = {"diffusion_models": paths["dit"].parent, "vae": paths["vae"].parent, "loras": tmp_path / "loras"}
    (tmp_path / "loras").mkdir()
    for kind, folder in added.items():
        fp.add_model_folder_path(kind, str(folder), is_default=True)
    old = fp.get_user_directory(), fp.get_input_directory(), fp.get_output_directory()
    for name in ("user", "input", "output"):
        (tmp_path / name).mkdir()
    fp.set_user_directory(str(tmp_path / "user"))
    fp.set_input_directory(str(tmp_path / "input"))  # workflows name datasets and caches inside ComfyUI's folders
    fp.set_output_directory(str(tmp_path / "output"))
    server = FakeServer()
    monkeypatch.setitem(sys.modules, "server", SimpleNamespace(PromptServer=SimpleNamespace(instance=server)))
    module = importlib.import_module("rewardloop.nodes.training")
    module.training_jobs().close()
    yield SimpleNamespace(module=module, server=server, tmp=tmp_path, input=tmp_path / "input", dit=paths["dit"].name,
                          vae=paths["vae"].name)
    module.training_jobs().close()
    fp.set_user_directory(old[0])
    fp.set_input_directory(old[1])
    fp.set_output_directory(old[2])
    for kind, folder in added.items():
        fp.folder_names_and_paths[kind][0].remove(str(folder))


def _clone(node, unique_id="7"):
    from comfy_api.latest import io

    return node.PREPARE_CLASS_CLONE({io.Hidden.unique_id: unique_id})


def test_launch_grpo_node_runs_a_job_to_a_comfyui_lora(training):
    m = training.module
    from rewardloop.trainers.text_embeddings import save_text_embeddings

    g = torch.Generator().manual_seed(0)  # the tiny files use text_dim 4096 (UMT5's width)
    emb = save_text_embeddings(training.input / "emb.safetensors", ["a red fox", "a blue lake", ""],
                               [torch.randn(4, 4096, generator=g) for _ in range(3)])
    out = _clone(m.RewardLoopLaunchGRPO).execute(
        prompts="a red fox\na blue lake", text_embeddings=str(emb), reward="brightness", reward_settings="",
        gold_reward="temporal_smoothness", group_size=2, sampling_steps=3, train_window=2, kl_beta=0.01, frames=5,
        height=32, width=32, model_file=training.dit, vae_file=training.vae, lora_name="rl test lora", steps=2,
        learning_rate=1e-3, lora_rank=4, seed=0, checkpoint_every=0, gradient_checkpointing=True, gpus=1,
        free_vram=False,
        extra_settings="model: {text_len: 8}\nrun: {device: cpu, num_threads: 1, tensorboard: false}")
    job_id = out.args[0]
    assert job_id.startswith("grpo-")
    job_node = _clone(m.RewardLoopTrainingJob)
    assert job_node.execute(job_id=job_id, action="status").args[0] == "running"  # launch did not wait
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status, lora_name, step, metrics = job_node.execute(job_id=job_id, action="status").args
        if status not in ("running", "starting"):
            break
        time.sleep(0.5)
    assert status == "finished", job_node.execute(job_id=job_id, action="status").ui
    assert lora_name == "rl test lora.safetensors" and step == 2
    lora = training.tmp / "loras" / lora_name
    from safetensors.torch import load_file

    keys = load_file(str(lora))
    assert keys and all(k.startswith("diffusion_model.blocks.") for k in keys)
    assert '"reward_mean"' in metrics

    m.training_jobs().watcher.poll_once()
    events = [d for e, d, sid in training.server.events if e == "rewardloop.training"]
    assert events and all(d["job_id"] == job_id and d["node_id"] == "7" for d in events)
    assert events[-1]["status"] == "finished" and events[-1]["lora_path"].endswith(lora_name)
    assert all(sid is None for _, _, sid in training.server.events)  # broadcast: jobs outlive the tab

    listing = job_node.execute(job_id="", action="status")
    assert job_id in listing.args[3]


def test_launch_nodes_validate_before_starting(training):
    m = training.module
    from rewardloop.rewards import SCORERS

    reward = next(i for i in m.RewardLoopLaunchGRPO.GET_SCHEMA().inputs if i.id == "reward")
    assert reward.options == ["composite", *SCORERS, "brightness", "target", "temporal_smoothness", "python"]
    assert "4k+1" in m.RewardLoopLaunchGRPO.validate_inputs(frames=32)
    assert m.RewardLoopLaunchDPO.validate_inputs(frames=33) is True
    assert "4k+1" in m.RewardLoopLaunchCurriculum.validate_inputs(stages="33, 48")
    with pytest.raises(ValueError, match="prompts is empty"):
        m._prompt_file("  ")
    with pytest.raises(ValueError, match="no folders"):
        from rewardloop.trainers.job_configs import lora_file_name

        lora_file_name("../evil")


def test_text_embedding_cache_node_drops_padding(training):
    from rewardloop.trainers.text_embeddings import TextEmbeddings

    class FakeClip:
        def tokenize(self, text):
            return text

        def encode_from_tokens(self, tokens):
            out = torch.zeros(1, 512, 4096)  # Wan's encoder output: real tokens, then zeros
            out[0, : len(tokens.split()) + 1] = 1.0
            return out

    out = training.module.RewardLoopTextEmbeddingCache.execute(
        clip=FakeClip(), prompts="a red fox\n\na blue lake\na red fox", negative_prompt="", cache_name="t")
    cache = TextEmbeddings.load(out.args[0])
    assert cache.prompts == ["a red fox", "a blue lake", ""]
    assert cache.get("a red fox").shape == (4, 4096) and cache.get("").shape == (1, 4096)


def test_text_embedding_cache_node_from_conditioning(training):
    """Encoded prompts (e.g. CLIPTextEncode outputs joined by Conditioning (Combine)) instead of a clip: one
    entry per prompt line, in order; a count mismatch or both/neither source is a clear error."""
    from rewardloop.trainers.text_embeddings import TextEmbeddings

    node = training.module.RewardLoopTextEmbeddingCache
    fox, lake = torch.randn(1, 6, 4096), torch.zeros(1, 512, 4096)
    lake[0, :3] = 1.0
    out = node.execute(prompts="a red fox\na blue lake", negative_prompt="", cache_name="c",
                       conditioning=[[fox, {}], [lake, {}]])
    cache = TextEmbeddings.load(out.args[0])
    assert cache.prompts == ["a red fox", "a blue lake"]
    assert torch.allclose(cache.get("a red fox").float(), fox[0].bfloat16().float())
    assert cache.get("a blue lake").shape == (3, 4096)
    with pytest.raises(ValueError, match="conditioning has 2 entries but there are 3 prompts"):
        node.execute(prompts="a red fox\na blue lake", negative_prompt="blurry", cache_name="c",
                     conditioning=[[fox, {}], [lake, {}]])
    with pytest.raises(ValueError, match="either clip"):
        node.execute(prompts="a red fox", negative_prompt="", cache_name="c")


def test_text_embedding_cache_reads_prompts_from_a_dataset_path(training):
    """The prompts input may be the DPO dataset itself (pairs JSONL or VideoDPO folder): every prompt is cached."""
    import json

    m = training.module
    pairs = training.input / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"prompt": p, "chosen": "a.mp4", "rejected": "b.mp4"})
                               for p in ["a red fox", "a blue lake", "a red fox"]) + "\n")
    assert m._cache_prompts(str(pairs)) == ["a red fox", "a blue lake"]
    folder = training.input / "videodpo"
    folder.mkdir()
    meta = [{"basic": {"clip_path": f"{i}.mp4"}, "misc": {"frame_caption": c}} for i, c in enumerate(["x", "y"])]
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "pair.json").write_text(json.dumps([{"video1": 0, "video2": 1, "frame_caption": "a cat"},
                                                  {"video1": 1, "video2": 0}]))
    assert m._cache_prompts(str(folder)) == ["a cat", "y"]
    assert m._cache_prompts("a red fox\n\na blue lake") == ["a red fox", "a blue lake"]
    with pytest.raises(ValueError, match="looks like a file path but does not exist"):
        m._cache_prompts(str(training.tmp / "missing" / "pairs.jsonl"))
    with pytest.raises(ValueError, match="looks like a file path"):
        m._prompt_file("~/no/such/prompts.txt")
