"""Length curriculum: stages chained through their LoRAs, metric gates on validation samples that either
advance or stop the run with a report, and a re-run that skips the stages already passed."""
from __future__ import annotations

import json
from pathlib import Path

from rewardloop.trainers.reporting import read_metrics
from trainer_toys import grpo_config, run_inprocess


def _config(tmp_path: Path, gate_value: float) -> dict:
    cfg = grpo_config(tmp_path / "data", tmp_path / "run", max_steps=1, checkpoint_every=0)
    cfg["grpo"].update(sampling_steps=4, window_size=2)
    cfg["curriculum"] = {
        "method": "grpo",
        "stages": [{"frames": 5, "steps": 2}, {"frames": 9, "steps": 2, "overrides": {"optim": {"lr": 1e-2}}}],
        "gates": [{"metric": "brightness", "op": ">=", "value": gate_value}],
        "validation_seeds": [0, 1],
    }
    return cfg


def test_curriculum_advances_through_stages_when_gates_pass(tmp_path):
    result = run_inprocess(_config(tmp_path, gate_value=0.0), "curriculum")
    assert result["status"] == "finished", result
    run = tmp_path / "run"
    assert Path(result["lora_path"]) == run / "rewardloop_curriculum.safetensors" and Path(result["lora_path"]).is_file()
    report = json.loads((run / "curriculum_report.json").read_text())
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [("stage1_5f", "passed"), ("stage2_9f", "passed")]
    gate = report["stages"][0]["gates"][0]
    assert gate["passed"] and 0.0 < gate["measured"] < 1.0
    stage1_lora = report["stages"][0]["lora"]
    s2 = json.loads((run / "stage2_9f" / "config.json").read_text())
    assert s2["lora"]["init_from"] == stage1_lora  # stage 2 starts from stage 1's LoRA
    assert s2["grpo"]["frames"] == 9 and s2["optim"]["lr"] == 1e-2 and s2["run"]["max_steps"] == 2
    assert json.loads((run / "progress.json").read_text())["stage"] == "stage2_9f"

    # A re-run (e.g. after a crash) skips passed stages instead of training them again.
    rows_before = len(read_metrics(run / "stage1_5f" / "metrics.jsonl"))
    again = run_inprocess(_config(tmp_path, gate_value=0.0), "curriculum")
    assert again["status"] == "finished"
    assert len(read_metrics(run / "stage1_5f" / "metrics.jsonl")) == rows_before


def test_failed_gate_stops_with_a_report(tmp_path):
    result = run_inprocess(_config(tmp_path, gate_value=2.0), "curriculum")  # brightness is in 0..1
    assert result["status"] == "gate_failed"
    assert "stage1_5f" in result["error"] and "brightness" in result["error"] and ">= 2" in result["error"]
    report = json.loads((tmp_path / "run" / "curriculum_report.json").read_text())
    assert [s["status"] for s in report["stages"]] == ["gate_failed"]
    assert report["stages"][0]["gates"][0]["passed"] is False
    assert not (tmp_path / "run" / "stage2_9f").exists()
    assert Path(result["last_lora"]).is_file()
