"""The sidebar's /rewardloop/jobs routes (nodes/routes.py) over aiohttp, on job folders written like the job
manager writes them: what a job looks like to the panel, metrics by step, ETA, and hostile job ids from the
browser, which never reach the file system."""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rewardloop.trainers.jobs import JobManager
from rewardloop.trainers.reporting import write_json_atomic


def make_job(jobs: Path, job_id: str, *, status: str, step: int, rows: int = 0, running_pid: int | None = None) -> Path:
    run = jobs / job_id / "run"
    run.mkdir(parents=True)
    job = {"id": job_id, "method": "grpo", "label": "", "status": status, "config_path": str(jobs / job_id / "config.json"),
           "run_dir": str(run), "nproc": 1, "created": time.time() - 100, "started": time.time() - 60, "lora_path": None,
           "error": None, "progress": {}, "last_metrics": {}, "launches": 1, "env": {}, "max_steps": 400,
           "meta": {"node_id": "4"}, "pid": running_pid,
           "pid_create_time": psutil.Process(running_pid).create_time() if running_pid else None}
    write_json_atomic(jobs / job_id / "job.json", job)
    write_json_atomic(run / "progress.json", {"status": "running", "step": step, "max_steps": 400, "stage": "",
                                              "metrics": {"loss": 0.5, "step_time_s": 2.0}, "updated": time.time()})
    with open(run / "metrics.jsonl", "w") as f:
        for s in range(1, rows + 1):
            f.write(json.dumps({"step": s, "loss": 1.0 / s, "lr": 1e-4, "note": "text", "bad": "NaN"}) + "\n")
        f.write('{"step": 99999, "loss"')  # a line cut off by a kill
    if status == "finished":
        lora = jobs / "out.safetensors"
        lora.write_bytes(b"x")
        write_json_atomic(run / "result.json", {"status": "finished", "lora_path": str(lora), "time": time.time()})
    return run


@pytest.fixture(scope="module")
def routes(comfy_inprocess):
    from rewardloop.nodes import routes

    return routes


@pytest.fixture
def jobs(tmp_path):
    make_job(tmp_path, "grpo-20260101-000000-aaaaaa", status="finished", step=12, rows=12)
    make_job(tmp_path, "grpo-20260101-000001-bbbbbb", status="running", step=3, rows=3, running_pid=os.getpid())
    return tmp_path


def call(routes, jobs_dir: Path, method: str, path: str):
    async def go():
        app = web.Application()
        table = web.RouteTableDef()
        manager = JobManager(jobs_dir)
        routes.register(table, lambda: manager)
        app.add_routes(table)
        async with TestClient(TestServer(app)) as client:
            res = await client.request(method, path)
            # a path that normalises to another route ("%2e%2e") is aiohttp's plain 404, never our handler
            return res.status, (await res.json() if res.content_type == "application/json" else {"error": await res.text()})

    return asyncio.run(go())


def test_list_shows_status_step_eta_and_outputs(routes, jobs):
    status, body = call(routes, jobs, "GET", "/rewardloop/jobs")
    assert status == 200
    done, running = body["jobs"]
    assert done["status"] == "finished" and done["lora_path"].endswith("out.safetensors") and done["eta_s"] is None
    assert running["status"] == "running" and running["step"] == 3 and running["max_steps"] == 400
    assert running["eta_s"] == pytest.approx(2.0 * 397)  # the trainer's last step time x the steps left
    assert running["run_dir"].endswith("run") and running["node_id"] == "4"


def test_metrics_are_numeric_rows_by_step_after_a_given_step(routes, jobs):
    status, body = call(routes, jobs, "GET", "/rewardloop/jobs/grpo-20260101-000000-aaaaaa/metrics?after=10")
    assert status == 200
    assert body["rows"] == [{"step": 11, "loss": 1 / 11, "lr": 1e-4}, {"step": 12, "loss": 1 / 12, "lr": 1e-4}]
    status, body = call(routes, jobs, "GET", "/rewardloop/jobs/grpo-20260101-000000-aaaaaa/metrics?after=x")
    assert status == 400 and "step number" in body["error"]


def test_long_runs_are_thinned_keeping_the_newest_step(routes, tmp_path):
    run = make_job(tmp_path, "dpo-1", status="finished", step=5000, rows=5000)
    job = {"run_dir": str(run)}
    rows = routes.metric_rows(job, limit=2000)
    assert len(rows) <= 2001 and rows[0]["step"] == 1 and rows[-1]["step"] == 5000
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)


@pytest.mark.parametrize("job_id", ["..%2F..%2Fetc", "%2e%2e", ".hidden", "a%00b", "x" * 200, "a..b", "~root"])
def test_hostile_job_ids_are_refused_before_any_path_is_built(routes, jobs, job_id):
    for method, suffix in (("GET", "metrics"), ("POST", "cancel"), ("POST", "resume")):
        status, body = call(routes, jobs, method, f"/rewardloop/jobs/{job_id}/{suffix}")
        assert status in (400, 404), (job_id, suffix, status, body)
        assert "error" in body
    assert sorted(p.name for p in jobs.iterdir()) == ["grpo-20260101-000000-aaaaaa", "grpo-20260101-000001-bbbbbb",
                                                    "out.safetensors"]


def test_unknown_jobs_and_resuming_a_running_job_say_what_is_wrong(routes, jobs):
    status, body = call(routes, jobs, "POST", "/rewardloop/jobs/grpo-20260101-000009-cccccc/cancel")
    assert status == 404 and "No training job" in body["error"]
    status, body = call(routes, jobs, "POST", "/rewardloop/jobs/grpo-20260101-000001-bbbbbb/resume")
    assert status == 409 and "cancel it before resuming" in body["error"]
    status, body = call(routes, jobs, "POST", "/rewardloop/jobs/grpo-20260101-000000-aaaaaa/resume")
    assert status == 200 and body["status"] == "finished"  # nothing to resume: unchanged


def test_a_broken_job_folder_is_a_500_with_the_reason_not_a_crash(routes):
    def boom():
        raise OSError("disk gone")

    status, body = asyncio.run(_call_with_factory(routes, boom))
    assert status == 500 and "disk gone" in body["error"]


async def _call_with_factory(routes, factory):
    app = web.Application()
    table = web.RouteTableDef()
    routes.register(table, factory)
    app.add_routes(table)
    async with TestClient(TestServer(app)) as client:
        res = await client.get("/rewardloop/jobs")
        return res.status, await res.json()


def test_check_job_id_accepts_the_ids_the_manager_makes(routes):
    assert routes.check_job_id("curriculum-20261204-215911-38c80f")
    with pytest.raises(routes.RouteError):
        routes.check_job_id("../x")
