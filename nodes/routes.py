"""HTTP routes of the RewardLoop sidebar (under /rewardloop/ only; the frontend reaches them as /api/rewardloop/...):

  GET  /rewardloop/jobs                      every training job: status, step/total, ETA, error, output paths
  GET  /rewardloop/jobs/{job_id}/metrics     the job's logged metrics by step (?after=N: only steps after N)
  POST /rewardloop/jobs/{job_id}/cancel      checkpoint and stop (returns at once; status "cancelling")
  POST /rewardloop/jobs/{job_id}/resume      continue from the newest checkpoint

A job id arrives from the browser: it must look like one the pack made before any path is built from it, and only
jobs under ComfyUI's user/rewardloop/jobs folder are addressed. Job records are read through trainers.jobs.
"""
from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path

log = logging.getLogger("rewardloop.routes")

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_METRIC_ROWS = 2000


class RouteError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not JOB_ID.match(job_id) or ".." in job_id:
        raise RouteError(400, f"job id {job_id[:80]!r} is not a RewardLoop job id (letters, digits, '-', '_', "
                              "'.'; e.g. grpo-20260101-120000-ab12cd): copy it from a Launch node or the job list")
    return job_id


def eta_seconds(job: dict, now: float | None = None) -> float | None:
    """Seconds left: the trainer's last logged step time times the steps left, else the average step time since
    the job (re)started; None until a step is done."""
    step, total = (job.get("progress") or {}).get("step"), job.get("max_steps")
    if job.get("status") != "running" or not step or not total:
        return None
    left = max(int(total) - int(step), 0)
    step_time = (job.get("last_metrics") or {}).get("step_time_s")
    if isinstance(step_time, (int, float)) and math.isfinite(step_time) and step_time > 0:
        return float(step_time) * left
    if not job.get("started"):
        return None
    elapsed = (now if now is not None else time.time()) - job["started"]
    return max(0.0, elapsed / int(step) * left)


def job_view(job: dict, now: float | None = None) -> dict:
    """What the sidebar shows of a job record (trainers.jobs' job.json as refreshed by JobManager)."""
    progress = job.get("progress") or {}
    return {"id": job["id"], "method": job.get("method"), "label": job.get("label") or "", "status": job.get("status"),
            "step": progress.get("step"), "max_steps": job.get("max_steps"), "stage": progress.get("stage"),
            "eta_s": eta_seconds(job, now), "created": job.get("created"), "started": job.get("started"),
            "ended": job.get("ended"), "error": job.get("error"), "lora_path": job.get("lora_path"),
            "run_dir": job.get("run_dir"), "last_metrics": job.get("last_metrics") or {},
            "launches": job.get("launches"), "node_id": (job.get("meta") or {}).get("node_id")}


def metric_rows(job: dict, after: int = -1, limit: int = MAX_METRIC_ROWS) -> list[dict]:
    """Numeric metrics per step from the run's metrics.jsonl, steps > after; a long run is thinned evenly to
    `limit` rows (the newest row always kept)."""
    from ..trainers.reporting import METRICS_FILE, read_metrics

    rows = []
    for row in read_metrics(Path(job["run_dir"]) / METRICS_FILE):
        step = row.get("step")
        if not isinstance(step, int) or step <= after:
            continue
        rows.append({"step": step, **{k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))
                                      and not isinstance(v, bool) and math.isfinite(v)}})
    if len(rows) > limit:
        stride = math.ceil(len(rows) / limit)
        rows = rows[::stride] + ([rows[-1]] if (len(rows) - 1) % stride else [])
    return rows


class JobRoutes:
    """Handlers over a JobManager factory (the training nodes' manager, started on first use)."""

    def __init__(self, manager_factory):
        self.manager = manager_factory

    def _job(self, job_id: str) -> dict:
        try:
            return self.manager().status(check_job_id(job_id))
        except ValueError as e:
            raise RouteError(404, str(e)) from None

    def list(self) -> dict:
        return {"jobs": [job_view(j) for j in self.manager().list_jobs()]}

    def metrics(self, job_id: str, after: str = "-1") -> dict:
        try:
            after_step = int(after)
        except (TypeError, ValueError):
            raise RouteError(400, f"after={after[:40]!r} is not a step number") from None
        job = self._job(job_id)
        return {"job_id": job["id"], "rows": metric_rows(job, after_step)}

    def cancel(self, job_id: str) -> dict:
        self._job(job_id)
        return job_view(self.manager().cancel(job_id, wait=False))

    def resume(self, job_id: str) -> dict:
        self._job(job_id)
        try:
            return job_view(self.manager().resume(job_id))
        except ValueError as e:
            raise RouteError(409, str(e)) from None


def register(routes, manager_factory) -> JobRoutes:
    """Add the handlers to an aiohttp RouteTableDef (ComfyUI's PromptServer.instance.routes)."""
    from aiohttp import web

    handlers = JobRoutes(manager_factory)

    def answer(fn, *args):
        try:
            return web.json_response(fn(*args))
        except RouteError as e:
            return web.json_response({"error": str(e)}, status=e.status)
        except Exception as e:  # a broken job folder must not take the panel (or the server) down
            log.exception("RewardLoop route failed")
            return web.json_response({"error": f"{type(e).__name__}: {e}"}, status=500)

    @routes.get("/rewardloop/jobs")
    async def list_jobs(request):
        return answer(handlers.list)

    @routes.get("/rewardloop/jobs/{job_id}/metrics")
    async def job_metrics(request):
        return answer(handlers.metrics, request.match_info["job_id"], request.query.get("after", "-1"))

    @routes.post("/rewardloop/jobs/{job_id}/cancel")
    async def cancel_job(request):
        return answer(handlers.cancel, request.match_info["job_id"])

    @routes.post("/rewardloop/jobs/{job_id}/resume")
    async def resume_job(request):
        return answer(handlers.resume, request.match_info["job_id"])

    return handlers


def register_with_server() -> bool:
    """Called once when ComfyUI loads the pack (before it adds the /api copies of every route)."""
    try:
        from server import PromptServer

        routes = PromptServer.instance.routes
    except (ImportError, AttributeError):  # no server: scripts and in-process tests
        return False
    from .training import training_jobs

    register(routes, training_jobs().manager)
    return True
