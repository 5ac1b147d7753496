"""What a run tells the outside world, as files in its run folder:
  metrics.jsonl   one JSON object per logged step ({"step": n, ...}); TensorBoard events beside it when
                  tensorboard is installed
  progress.json   the latest step, max_steps and metrics (rewritten atomically, polled by the job manager)
  result.json     written once at the end: status finished | cancelled | failed | gate_failed, the LoRA path,
                  the error message and traceback tail
All writes are atomic (temp file + rename) so a reader or a kill -9 never sees half a file.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..common.jsonsafe import json_safe

METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
CANCEL_FILE = "CANCEL"  # created by the job manager; the trainer checkpoints and stops when it appears


def write_json_atomic(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def read_metrics(path: Path) -> list[dict]:
    """All complete lines; a line cut off by a kill is ignored."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsLogger:
    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, prefix: str = ""):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.path = self.run_dir / METRICS_FILE
        self.prefix = prefix
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
                self._tb = None

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows past the checkpoint: those steps are recomputed identically."""
        if not self.enabled or not self.path.exists():
            return
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, self.path)

    def log(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{f"{self.prefix}{k}": json_safe(v) for k, v in metrics.items()}}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def write_progress(run_dir: Path, *, method: str, step: int, max_steps: int, metrics: dict, stage: str = "",
                   note: str = "") -> None:
    write_json_atomic(Path(run_dir) / PROGRESS_FILE, {
        "status": "running", "method": method, "step": step, "max_steps": max_steps, "stage": stage, "note": note,
        "metrics": {k: json_safe(v) for k, v in metrics.items()}, "pid": os.getpid(), "updated": time.time()})


def write_result(folder: Path, status: str, /, **fields) -> None:
    write_json_atomic(Path(folder) / RESULT_FILE, {"status": status, "pid": os.getpid(), "time": time.time(), **fields})
