"""Length curriculum: train in stages of growing clip length (33 -> 49 -> 65 -> 97 frames, all 4k+1) with one
method (GRPO or DPO), each stage starting from the previous stage's LoRA, and advance only when every metric
gate passes on a validation prompt set. A failed gate stops the run with a report instead of training
longer clips on a model that already fails at shorter ones.

Layout under run.output_dir: `stage<i>_<frames>f/` (a normal run folder each, with its own checkpoints,
so a stage resumes where it stopped), `curriculum_report.json` (stages done, validation values, gate
verdicts; it is also the resume record: passed stages are skipped on a re-run).
"""
from __future__ import annotations

import logging
import operator
import os
import shutil
from pathlib import Path

from ..trust import publish
from .config import GateSettings, RewardSpec, TrainerConfig, config_from_dict, resolve_path
from .dpo import DPOTrainer
from .grpo import GRPOTrainer
from .reporting import read_json, write_json_atomic
from .trainer import lora_note
from .validation import sample_and_score

log = logging.getLogger(__name__)
REPORT_FILE = "curriculum_report.json"
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def stage_tag(i: int, frames: int) -> str:
    return f"stage{i + 1}_{frames}f"


def stage_config(cfg: TrainerConfig, i: int, prev_lora: str, run_dir: Path) -> TrainerConfig:
    cur = cfg.curriculum
    stage = cur.stages[i]
    data = cfg.to_dict()
    data.pop("source", None)
    data["curriculum"] = None
    data["method"] = cur.method
    tag = stage_tag(i, stage.frames)
    data[cur.method]["frames"] = stage.frames
    data["run"].update(max_steps=stage.steps, output_dir=str(run_dir / tag), lora_dir="",
                       lora_name=f"rewardloop_curriculum_{tag}.safetensors")
    if prev_lora:
        data["lora"]["init_from"] = prev_lora
    for section, values in stage.overrides.items():  # checked when the config was loaded
        data[section] = {**(data.get(section) or {}), **values}
    return config_from_dict(data, source=cfg.source)


def check_gates(gates: list[GateSettings], values: dict[str, float]) -> list[dict]:
    out = []
    for gate in gates:
        measured = values[gate.metric]
        out.append({"metric": gate.metric, "op": gate.op, "value": gate.value, "measured": measured,
                    "passed": bool(_OPS[gate.op](measured, gate.value))})
    return out


def validation_values(trainer, cfg: TrainerConfig, stage_cfg: TrainerConfig) -> dict[str, float]:
    """Deterministic samples of the validation prompts at the stage's length, scored by every gate metric."""
    cur = cfg.curriculum
    section = getattr(stage_cfg, cur.method)
    return sample_and_score(
        trainer, stage_cfg, prompts_path=cur.validation_prompts or getattr(section, "prompts", ""),
        text_embeddings=section.text_embeddings, seeds=cur.validation_seeds,
        steps=cur.validation_steps or getattr(section, "sampling_steps", 20), frames=section.frames,
        height=section.height, width=section.width,
        metrics={g.metric: RewardSpec(name=g.metric, params=g.params) for g in cur.gates},
        decoder_choice=getattr(section, "decoder", "auto"))


def run_curriculum(cfg: TrainerConfig, rt) -> dict:
    cur = cfg.curriculum
    run_dir = resolve_path(cfg, cfg.run.output_dir)
    report_path = run_dir / REPORT_FILE
    report = read_json(report_path) if cfg.run.resume else None
    if not report or [s.get("frames") for s in report.get("stages", [])] != [s.frames for s in cur.stages][: len(report.get("stages", []))]:
        report = {"method": cur.method, "stages": []}
    done = {s["index"]: s for s in report["stages"] if s.get("status") == "passed"}
    prev_lora = cfg.lora.init_from and str(resolve_path(cfg, cfg.lora.init_from))
    trainer_cls = GRPOTrainer if cur.method == "grpo" else DPOTrainer
    for i, stage in enumerate(cur.stages):
        tag = stage_tag(i, stage.frames)
        if i in done and Path(done[i]["lora"]).is_file():
            prev_lora = done[i]["lora"]
            log.info("Curriculum %s already passed; skipping.", tag)
            continue
        scfg = stage_config(cfg, i, prev_lora or "", run_dir)
        trainer = trainer_cls(scfg, rt, run_dir=run_dir / tag, stage=tag)
        trainer.progress_dir = run_dir
        result = trainer.run()
        if result["status"] != "finished":
            rt.accelerator.free_memory()
            return {**result, "stage": tag, "report": str(report_path)}
        values = validation_values(trainer, cfg, scfg) if cur.gates else {}
        verdicts = check_gates(cur.gates, values)
        passed = all(v["passed"] for v in verdicts)
        entry = {"index": i, "stage": tag, "frames": stage.frames, "steps": stage.steps, "lora": result["lora_path"],
                 "validation": values, "gates": verdicts, "status": "passed" if passed else "gate_failed"}
        report["stages"] = [s for s in report["stages"] if s["index"] != i] + [entry]
        report["stages"].sort(key=lambda s: s["index"])
        if rt.is_main:
            write_json_atomic(report_path, report)
            if trainer.logger is not None and values:
                trainer.logger.log(trainer.global_step, {f"val_{k}": v for k, v in values.items()})
        del trainer
        rt.accelerator.free_memory()
        if not passed:
            failed = [f"{v['metric']} {v['measured']:.4g} (needs {v['op']} {v['value']})" for v in verdicts if not v["passed"]]
            return {"status": "gate_failed", "step": stage.steps, "stage": tag, "report": str(report_path),
                    "last_lora": result["lora_path"],
                    "error": f"Curriculum stopped after {tag}: gate(s) failed: {'; '.join(failed)}."}
        prev_lora = result["lora_path"]
    name = cfg.run.lora_name or "rewardloop_curriculum.safetensors"
    if not name.endswith(".safetensors"):
        name += ".safetensors"
    planned = final = (resolve_path(cfg, cfg.run.lora_dir) if cfg.run.lora_dir else run_dir) / name
    if rt.is_main:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.copyfile(prev_lora, tmp)
        final = publish(tmp, final, overwrite=cfg.run.overwrite)
        if not final.is_file():
            raise RuntimeError(f"Curriculum finished but the LoRA {final} was not written.")
    final = Path(rt.from_main(str(final)))
    note = {"lora_note": lora_note(planned, final)} if final != planned else {}
    return {"status": "finished", "step": sum(s.steps for s in cur.stages), "lora_path": str(final),
            "report": str(report_path), "method": "curriculum", **note}
