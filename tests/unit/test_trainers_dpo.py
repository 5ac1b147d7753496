"""Flow-DPO: the loss terms, learning on a toy preference set (tiny random WanTransformer3DModel),
dataset formats (JSONL, official VideoDPO layout), clip decoding, and bad rows (clear error or skip+count)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from rewardloop.trainers.dpo import dpo_terms
from rewardloop.trainers.dpo_data import load_pair_rows, save_latent
from rewardloop.trainers.reporting import read_metrics
from trainer_toys import build, dpo_config, run_inprocess, write_dpo_toy, write_embeddings


def test_dpo_terms_start_at_log2_and_reward_the_winner():
    err = torch.tensor([0.5, 0.5])  # [winner, loser]
    t = dpo_terms(err, err.clone(), beta=1000.0)
    assert float(t["loss"]) == pytest.approx(math.log(2))
    assert float(t["inside"]) == 0.0
    # the model lowered the winner's error relative to the reference: inside > 0, loss < log 2
    t = dpo_terms(torch.tensor([0.49, 0.5]), torch.tensor([0.5, 0.5]), beta=1000.0)
    assert float(t["inside"]) == pytest.approx(5.0) and float(t["loss"]) < math.log(2)
    # lowering the loser's error is punished
    t = dpo_terms(torch.tensor([0.5, 0.49]), torch.tensor([0.5, 0.5]), beta=1000.0)
    assert float(t["inside"]) < 0 and float(t["loss"]) > math.log(2)


def test_dpo_learns_toy_preferences(tmp_path):
    write_dpo_toy(tmp_path / "data")
    result = run_inprocess(dpo_config(tmp_path / "data", tmp_path / "run"), "dpo")
    assert result["status"] == "finished"
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [0, 4, 8]
    # step 0: LoRA B is zero, so the policy equals the reference: loss log 2, no pair ranked correctly
    assert evals[0]["eval_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert evals[0]["eval_implicit_acc"] == 0.0
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"] - 0.1
    assert evals[-1]["eval_implicit_acc"] > 0.5
    train = [r for r in rows if "loss" in r]
    assert len(train) == 8
    for key in ("implicit_acc", "model_err_w", "model_err_l", "ref_err_w", "ref_err_l", "grad_norm"):
        assert key in train[0]
    assert sum(r["loss"] for r in train[-3:]) / 3 < train[0]["loss"]
    lora = tmp_path / "run" / "rewardloop_dpo.safetensors"
    assert result["lora_path"] == str(lora) and lora.is_file()


def _write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_corrupt_rows_give_clear_errors(tmp_path):
    write_dpo_toy(tmp_path, n_pairs=3)
    good = {"prompt": "toy prompt 0", "chosen": "w0.safetensors", "rejected": "l0.safetensors"}
    cases = [
        ('{"prompt": "toy prompt 0", "chosen": ', r"pairs\.jsonl:2: not valid JSON"),
        ({"prompt": "toy prompt 0", "chosen": "w1.safetensors"}, r"pairs\.jsonl:2: missing or non-string field\(s\) \['rejected'\]"),
        ({**good, "rejected": "nowhere.mp4"}, r"pairs\.jsonl:2: clip .*nowhere\.mp4 does not exist"),
    ]
    for bad, pattern in cases:
        _write_jsonl(tmp_path / "pairs.jsonl", [good, bad])
        with pytest.raises(ValueError, match=pattern):
            load_pair_rows(build(dpo_config(tmp_path, tmp_path / "out"), "dpo"))


def test_bad_clips_are_skipped_and_counted(tmp_path):
    write_dpo_toy(tmp_path, n_pairs=4)
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    save_latent(tmp_path / "short.safetensors", torch.zeros(16, 1, 4, 4))  # 1 latent frame; 9 frames need 3
    rows = [json.loads(l) for l in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    rows += [{"prompt": "toy prompt 0", "chosen": "broken.safetensors", "rejected": "l0.safetensors"},
             {"prompt": "toy prompt 1", "chosen": "w0.safetensors", "rejected": "short.safetensors"},
             {"prompt": "toy prompt 1", "chosen": "w0.safetensors", "rejected": "missing.safetensors"}]
    _write_jsonl(tmp_path / "pairs.jsonl", rows)
    cfg = dpo_config(tmp_path, tmp_path / "run", max_steps=7, checkpoint_every=0)
    cfg["dpo"].update(eval_pairs=0, on_bad_sample="error")
    with pytest.raises(ValueError, match=r"missing\.safetensors does not exist.*on_bad_sample: skip"):
        run_inprocess(cfg, "dpo")
    cfg["dpo"]["on_bad_sample"] = "skip"
    result = run_inprocess(cfg, "dpo")
    assert result["status"] == "finished"
    last = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    # 1 row dropped at listing (missing file) + 2 whose clips fail to load (counted once each)
    assert last["skipped_pairs"] == 3.0


def test_bad_clip_error_names_row_and_reason(tmp_path):
    write_dpo_toy(tmp_path, n_pairs=2)
    save_latent(tmp_path / "short.safetensors", torch.zeros(16, 1, 4, 4))
    _write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "toy prompt 0", "chosen": "w0.safetensors",
                                             "rejected": "short.safetensors"}])
    cfg = dpo_config(tmp_path, tmp_path / "run", max_steps=1, checkpoint_every=0)
    cfg["dpo"]["eval_pairs"] = 0
    with pytest.raises(ValueError, match=r"pairs\.jsonl:1: short\.safetensors is too short: 1 latent frames"):
        run_inprocess(cfg, "dpo")


def test_videodpo_layout(tmp_path):
    write_embeddings(tmp_path / "emb.safetensors", ["a cat", "a dog"])
    (tmp_path / "clips").mkdir()
    for name in ("c0", "c1", "c2"):
        save_latent(tmp_path / "clips" / f"{name}.safetensors", torch.zeros(16, 3, 4, 4))
    meta = [{"basic": {"clip_path": f"clips/c{i}.safetensors", "clip_duration": 2.0},
             "misc": {"frame_caption": cap}} for i, cap in enumerate(["a cat", "a cat", "a dog"])]
    pairs = [{"video1": 1, "video2": 0, "frame_caption": "a cat", "score": 0.7}, {"video1": 2, "video2": 2},
             {"video1": 9, "video2": 0}]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "pair.json").write_text(json.dumps(pairs))
    cfg = dpo_config(tmp_path, tmp_path / "out")
    cfg["dpo"].update(data=str(tmp_path), on_bad_sample="skip")
    rows, bad = load_pair_rows(build(cfg, "dpo"))
    assert [(r.prompt, r.chosen.name, r.rejected.name) for r in rows] == [
        ("a cat", "c1.safetensors", "c0.safetensors"), ("a dog", "c2.safetensors", "c2.safetensors")]
    assert len(bad) == 1 and "pair.json[2]" in bad[0]
    (tmp_path / "pair.json").unlink()
    with pytest.raises(ValueError, match="lacks pair.json"):
        load_pair_rows(build(cfg, "dpo"))


def test_clip_decoding_video_and_frame_folder(tmp_path):
    from PIL import Image

    from rewardloop.trainers.video_io import read_clip, resize_center_crop, write_clip

    frames = torch.linspace(0.1, 0.9, 9).view(9, 1, 1, 1).expand(9, 48, 64, 3).contiguous()
    write_clip(tmp_path / "ramp.mp4", frames)
    back = read_clip(tmp_path / "ramp.mp4")
    assert back.shape == (9, 48, 64, 3) and back.dtype == torch.float32
    assert torch.allclose(back.mean(dim=(1, 2, 3)), frames.mean(dim=(1, 2, 3)), atol=0.03)
    assert read_clip(tmp_path / "ramp.mp4", max_frames=5).shape[0] == 5
    (tmp_path / "folder").mkdir()
    for i in range(3):
        Image.new("RGB", (20, 10), (i * 100, 0, 0)).save(tmp_path / "folder" / f"{i:03d}.png")
    f = read_clip(tmp_path / "folder")
    assert f.shape == (3, 10, 20, 3) and f[2, 0, 0, 0] == pytest.approx(200 / 255)
    assert resize_center_crop(back, 32, 32).shape == (9, 32, 32, 3)
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="junk.mp4 could not be decoded"):
        read_clip(tmp_path / "junk.mp4")


def test_dpo_encodes_video_clips_with_the_vae_once(tmp_path):
    from diffusers import AutoencoderKLWan

    from rewardloop.trainers.video_io import write_clip

    torch.manual_seed(0)
    AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1).save_pretrained(str(tmp_path / "vae"))
    write_embeddings(tmp_path / "emb.safetensors", ["a fox", "a lake"])
    rows = []
    for i, prompt in enumerate(["a fox", "a lake"]):
        ramp = torch.linspace(0, 1, 56).view(1, 1, 56, 1).expand(9, 40, 56, 3)
        write_clip(tmp_path / f"good{i}.mp4", ramp)
        write_clip(tmp_path / f"bad{i}.mp4", 1 - ramp)
        rows.append({"prompt": prompt, "chosen": f"good{i}.mp4", "rejected": f"bad{i}.mp4"})
    _write_jsonl(tmp_path / "pairs.jsonl", rows)
    cfg = dpo_config(tmp_path, tmp_path / "run", max_steps=3, checkpoint_every=0)
    cfg["model"]["vae"] = str(tmp_path / "vae")
    cfg["dpo"].update(height=32, width=32, eval_pairs=0)
    assert run_inprocess(cfg, "dpo")["status"] == "finished"
    cached = sorted((tmp_path / "run" / "latent_cache").glob("*.safetensors"))
    assert len(cached) == 4  # each clip encoded once, reused in later epochs
    from safetensors.torch import load_file

    assert load_file(str(cached[0]))["latent"].shape == (16, 3, 4, 4)  # 9 frames, 32x32 -> T'=3, 4x4
    (tmp_path / "good0.mp4").write_bytes(b"\x00" * 64)  # corrupt after caching: new mtime -> re-encode fails
    cfg["run"].update(output_dir=str(tmp_path / "run2"))
    with pytest.raises(ValueError, match=r"pairs\.jsonl:1: Clip .*good0\.mp4 could not be decoded"):
        run_inprocess(cfg, "dpo")
