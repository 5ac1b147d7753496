"""Trainer configs: 4k+1 frame counts, unknown keys, YAML/JSON loading, method sections, the CLI's
config-error path (before torch is imported)."""
from __future__ import annotations

import json
import subprocess

import pytest

from rewardloop.trainers.config import check_frames, config_from_dict, latent_frames, load_config
from trainer_toys import dpo_config, grpo_config, launch_cmd, env


@pytest.mark.parametrize("frames", [33, 49, 65, 97, 1, 5, 81])
def test_valid_wan_frame_counts(frames):
    assert check_frames(frames) == frames
    assert latent_frames(frames) == (frames - 1) // 4 + 1


@pytest.mark.parametrize("frames, suggestion", [(32, "33"), (48, "49"), (64, "65"), (96, "97")])
def test_seed_frame_counts_are_rejected_with_4k1_hint(frames, suggestion):
    with pytest.raises(ValueError) as exc:
        check_frames(frames)
    msg = str(exc.value)
    assert "4k+1" in msg and suggestion in msg and str(frames) in msg


def test_curriculum_rejects_invalid_stage_length(tmp_path):
    cfg = grpo_config(tmp_path / "d", tmp_path / "out")
    cfg["curriculum"] = {"method": "grpo", "stages": [{"frames": 33, "steps": 1}, {"frames": 48, "steps": 1}]}
    with pytest.raises(ValueError, match=r"curriculum\.stages\[1\]\.frames=48 .*4k\+1"):
        config_from_dict(cfg, method="curriculum")


def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path):
    cfg = dpo_config(tmp_path, tmp_path / "out")
    cfg["dpo"]["betta"] = 10
    with pytest.raises(ValueError, match=r"dpo: unknown setting\(s\) \['betta'\].*beta"):
        config_from_dict(cfg, method="dpo")


def test_wrong_type_and_bad_choice(tmp_path):
    cfg = dpo_config(tmp_path, tmp_path / "out")
    cfg["run"]["max_steps"] = "ten"
    with pytest.raises(ValueError, match=r"run\.max_steps: expected int"):
        config_from_dict(cfg, method="dpo")
    cfg = dpo_config(tmp_path, tmp_path / "out")
    cfg["dpo"]["on_bad_sample"] = "ignore"
    with pytest.raises(ValueError, match=r"on_bad_sample='ignore' is not one of"):
        config_from_dict(cfg, method="dpo")


def test_method_section_required_and_grpo_window_checked(tmp_path):
    cfg = grpo_config(tmp_path / "d", tmp_path / "out")
    with pytest.raises(ValueError, match="needs a `dpo:` section"):
        config_from_dict(cfg, method="dpo")
    cfg["grpo"]["window_start"], cfg["grpo"]["window_size"] = 4, 4
    with pytest.raises(ValueError, match="must fit in the 6 sampling steps"):
        config_from_dict(cfg, method="grpo")
    cfg = grpo_config(tmp_path / "d", tmp_path / "out")
    cfg["grpo"]["group_size"] = 1
    with pytest.raises(ValueError, match="at least 2 samples"):
        config_from_dict(cfg, method="grpo")


def test_yaml_and_json_load_the_same_config(tmp_path):
    import yaml

    cfg = grpo_config(tmp_path / "d", "out")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    a, b = load_config(tmp_path / "c.yaml", "grpo"), load_config(tmp_path / "c.json", "grpo")
    assert a.grpo == b.grpo and a.run.max_steps == b.run.max_steps
    assert a.grpo.reward.name == "brightness" and a.grpo.gold_reward.name == "temporal_smoothness"
    assert a.optim.lr == pytest.approx(3e-2) and isinstance(a.optim.lr, float)


def test_cli_reports_config_errors_in_result_file(tmp_path):
    cfg = dpo_config(tmp_path, tmp_path / "out")
    cfg["dpo"]["frames"] = 32
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.run(launch_cmd("dpo", path), capture_output=True, text=True, timeout=60, env=env())
    assert proc.returncode == 2, proc.stderr
    assert "4k+1" in proc.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["status"] == "failed" and "4k+1" in result["error"]


def test_shipped_example_configs_are_valid():
    from pathlib import Path

    import rewardloop.trainers as trainers

    examples = sorted((Path(trainers.__file__).parent / "configs" / "examples").glob("*.yaml"))
    assert len(examples) == 4
    for path in examples:
        method = {"dpo": "dpo", "grpo": "grpo", "curriculum": "curriculum", "pairs": "pairs"}[path.stem.split("_")[0]]
        cfg = load_config(path, method)
        assert cfg.method == method
