"""Training jobs: the trainer runs as a separate process (never inside ComfyUI's executor), its state lives
in files, so a job survives a closed browser tab and a restarted server.

Jobs folder layout: `<jobs_dir>/<job_id>/` with
  job.json     status, pid, command, config path, run dir, progress, last metrics, error (this module's view)
  config.json  the full trainer config the job runs
  log.txt      the trainer's stdout + stderr
  run/         the trainer's run folder (checkpoints, metrics.jsonl, progress.json, result.json, the LoRA
               unless run.lora_dir points elsewhere)
Status is recomputed from the files on every read: result.json (written by the trainer at the end) wins;
otherwise a live pid means running; a dead pid without a result is a failure whose error is the log tail.
A job is "finished" only when the trainer said so *and* its LoRA file exists.

Cancel writes run/CANCEL and sends SIGTERM to the job's process group; the trainer checkpoints and exits
(well within the 10 s grace); after the grace it is killed. Resume relaunches the same config, and the
trainer continues from its newest checkpoint. The child is started with an argument list (never a shell)
in its own session, so it outlives the parent.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..trust import Policy
from .config import METHODS, config_from_dict
from .reporting import CANCEL_FILE, PROGRESS_FILE, RESULT_FILE, read_json, write_json_atomic

LAUNCHER = Path(__file__).resolve().parent / "launch.py"
TERMINAL = ("finished", "failed", "cancelled", "gate_failed")
JOB_FILE = "job.json"
CONFIG_FILE = "config.json"
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The only environment a job record may add to the trainer's (the reward model folders of the server).
JOB_ENV = ("REWARDLOOP_MODELS_DIR",)

try:
    import psutil
except ImportError:  # ComfyUI installs psutil; plain installs fall back to os.kill / waitpid
    psutil = None


def _proc_create_time(pid: int) -> float | None:
    if psutil is None:
        return None
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def pid_alive(pid: int | None, create_time: float | None = None) -> bool:
    """True if `pid` still runs and is the process we started (pid reuse is detected by start time)."""
    if not pid:
        return False
    if psutil is not None:
        try:
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE:
                return False
            return create_time is None or abs(p.create_time() - create_time) < 1.0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
    if os.name == "nt":
        return False  # without psutil, Windows offers no safe probe (os.kill would terminate)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail(path: Path, n: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class JobManager:
    def __init__(self, jobs_dir: str | os.PathLike, python: str | None = None):
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.python = python or sys.executable
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ files
    def job_dir(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ValueError(f"Invalid job id {str(job_id)[:80]!r}: job ids are letters, digits, '.', '-' and '_' "
                             "(as a Launch node returns them).")
        return self.jobs_dir / job_id

    def _read(self, job_id: str) -> dict:
        job = read_json(self.job_dir(job_id) / JOB_FILE)
        if job is None:
            raise ValueError(f"No training job {job_id!r} in {self.jobs_dir}.")
        return job

    def _write(self, job: dict) -> None:
        write_json_atomic(self.job_dir(job["id"]) / JOB_FILE, job)

    # ------------------------------------------------------------------ launch
    def launch(self, method: str, config: dict, *, nproc: int = 1, label: str = "", env: dict | None = None,
               meta: dict | None = None, policy: Policy | None = None, before_start=None) -> dict:
        """Validate the config (with `policy`: Policy.workflow(...) for settings from the canvas), write the
        checked config, start the trainer and return the job state at once. `before_start` runs once the config
        is accepted, just before the trainer starts (the nodes free GPU memory there)."""
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {list(METHODS)}.")
        job_id = f"{method}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        jdir = self.job_dir(job_id)
        config = json.loads(json.dumps(config))  # a deep copy we may fill in
        run = config.setdefault("run", {})
        if not isinstance(run, dict):
            raise ValueError("run: expected a mapping of settings.")
        if not run.get("output_dir"):
            run["output_dir"] = str(jdir / "run")
        cfg = config_from_dict(config, method=method, policy=policy)  # raises ValueError before anything starts
        if nproc < 1:
            raise ValueError("nproc must be >= 1.")
        env = {k: v for k, v in (env or {}).items() if k in JOB_ENV}
        jdir.mkdir(parents=True)
        cfg_path = jdir / CONFIG_FILE
        checked = cfg.to_dict()
        checked.pop("source", None)
        cfg_path.write_text(json.dumps(checked, indent=2), encoding="utf-8")  # paths as the policy resolved them
        if before_start is not None:
            before_start()
        job = {"id": job_id, "method": method, "label": label, "status": "starting", "config_path": str(cfg_path),
               "run_dir": str(Path(cfg.run.output_dir).resolve()), "nproc": nproc, "created": time.time(),
               "lora_path": None, "error": None, "progress": {}, "last_metrics": {}, "launches": 0,
               "env": env, "max_steps": cfg.run.max_steps, "meta": meta or {}}
        with self._lock:
            self._spawn(job)
        return job

    def command(self, job: dict) -> list[str]:
        """The trainer command of a job, built from the job's own folder (a job record names no program)."""
        if job.get("method") not in METHODS:
            raise ValueError(f"Job {job.get('id')!r} has an unknown method {job.get('method')!r}.")
        args = [str(LAUNCHER), job["method"], "--config", str(self.job_dir(job["id"]) / CONFIG_FILE)]
        if int(job.get("nproc", 1)) > 1:
            return [self.python, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={int(job['nproc'])}", *args]
        return [self.python, *args]

    def _spawn(self, job: dict) -> None:
        run_dir = Path(job["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (CANCEL_FILE, RESULT_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        cmd = self.command(job)
        extra = {k: str(v) for k, v in (job.get("env") or {}).items() if k in JOB_ENV}
        env = {**os.environ, **extra, "PYTHONUNBUFFERED": "1"}
        jdir = self.job_dir(job["id"])
        kwargs = {"start_new_session": True} if os.name != "nt" else \
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
        with open(jdir / "log.txt", "ab") as log:
            log.write(f"\n=== launch {job['launches'] + 1} at {time.ctime()}: {cmd}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=str(jdir), env=env, **kwargs)
        self._procs[job["id"]] = proc
        job.update(status="running", pid=proc.pid, pid_create_time=_proc_create_time(proc.pid),
                   started=time.time(), ended=None, returncode=None, error=None, command=cmd,
                   launches=job.get("launches", 0) + 1, stop_reason=None)
        self._write(job)

    # ------------------------------------------------------------------ status
    def _alive(self, job: dict) -> bool:
        proc = self._procs.get(job["id"])
        if proc is not None and proc.pid == job.get("pid"):
            alive = proc.poll() is None
            if not alive:
                job["returncode"] = proc.returncode
            return alive
        return pid_alive(job.get("pid"), job.get("pid_create_time"))

    def status(self, job_id: str) -> dict:
        with self._lock:
            return self._refresh(self._read(job_id))

    def _refresh(self, job: dict) -> dict:
        if job["status"] in TERMINAL and job.get("status_final"):
            return job
        run_dir = Path(job["run_dir"])
        progress = read_json(run_dir / PROGRESS_FILE) or {}
        if progress.get("updated", 0) >= job.get("started", 0):
            job["progress"] = {k: progress.get(k) for k in ("step", "max_steps", "stage", "note")}
            job["last_metrics"] = progress.get("metrics", {})
        alive = self._alive(job)
        result = read_json(run_dir / RESULT_FILE)
        fresh = result is not None and result.get("time", 0) >= job.get("started", 0) - 1
        if fresh and not alive:
            status = result.get("status", "failed")
            job.update(status=status, error=result.get("error"), ended=result.get("time"),
                       lora_path=result.get("lora_path") or result.get("out"), lora_note=result.get("lora_note"),
                       result=result)
            if status == "finished":
                lora = result.get("lora_path") or result.get("out")
                if not lora or not Path(lora).is_file():
                    job.update(status="failed", error=f"The trainer reported success but its output {lora} is missing.")
            job["status_final"] = True
        elif alive:
            job["status"] = "cancelling" if (run_dir / CANCEL_FILE).exists() else "running"
        else:
            tail = _tail(self.job_dir(job["id"]) / "log.txt", 3000)
            code = job.get("returncode")
            job.update(status="failed", ended=job.get("ended") or time.time(), status_final=True,
                       error=f"The trainer process exited{f' with code {code}' if code is not None else ''} "
                             f"without reporting a result. Last log lines:\n{tail[-1500:]}")
        self._write(job)
        return job

    def list_jobs(self) -> list[dict]:
        jobs = []
        with self._lock:
            for d in sorted(self.jobs_dir.iterdir()):
                if (d / JOB_FILE).is_file():
                    try:
                        jobs.append(self._refresh(self._read(d.name)))
                    except ValueError:
                        continue
        return sorted(jobs, key=lambda j: j.get("created", 0))

    # ------------------------------------------------------------------ control
    def _signal(self, job: dict, sig) -> None:
        pid = job.get("pid")
        if not pid:
            return
        try:
            if os.name != "nt":
                os.killpg(pid, sig)  # the job's whole session: torchrun and its workers
            else:
                proc = self._procs.get(job["id"])
                if proc is not None:
                    proc.kill() if sig == getattr(signal, "SIGKILL", None) else proc.send_signal(signal.CTRL_BREAK_EVENT)
                elif psutil is not None:
                    psutil.Process(pid).kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def _wait(self, job: dict, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(job):
                return True
            time.sleep(0.1)
        return not self._alive(job)

    def cancel(self, job_id: str, grace_s: float = 10.0, wait: bool = True) -> dict:
        """Ask the trainer to checkpoint and stop; kill it if it has not exited after grace_s."""
        with self._lock:
            job = self._refresh(self._read(job_id))
            if job["status"] not in ("running", "cancelling", "starting"):
                return job
            (Path(job["run_dir"]) / CANCEL_FILE).touch()
            self._signal(job, signal.SIGTERM)
            job.update(status="cancelling", cancel_requested=time.time())
            self._write(job)
        if not wait:
            return job
        graceful = self._wait(job, grace_s)
        with self._lock:
            if not graceful:
                self._signal(job, getattr(signal, "SIGKILL", signal.SIGTERM))
                self._wait(job, 5.0)
            job = self._read(job_id)
            job = self._refresh(job)
            job["stop_reason"] = "graceful" if graceful else "killed after the grace period"
            if job["status"] == "failed" and not (job.get("result") or {}).get("status"):
                # It died from our signal before it could checkpoint (e.g. while still importing torch):
                # that is the cancellation the user asked for, not a training failure.
                job.update(status="cancelled", error=None)
            self._write(job)
            return job

    def resume(self, job_id: str) -> dict:
        with self._lock:
            job = self._refresh(self._read(job_id))
            if job["status"] in ("running", "cancelling", "starting"):
                raise ValueError(f"Job {job_id} is still {job['status']}; cancel it before resuming.")
            if job["status"] == "finished":
                return job
            job.pop("status_final", None)
            job.pop("result", None)
            self._spawn(job)
            return job


class JobWatcher:
    """A daemon thread that refreshes unfinished jobs every `interval` seconds and calls `on_change(job)`
    whenever a job's status or step changed (the training nodes turn that into websocket events)."""

    def __init__(self, manager: JobManager, on_change, interval: float = 2.0):
        self.manager = manager
        self.on_change = on_change
        self.interval = interval
        self._seen: dict[str, tuple] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _key(job: dict) -> tuple:
        return job.get("status"), (job.get("progress") or {}).get("step"), (job.get("progress") or {}).get("stage")

    def poll_once(self) -> list[dict]:
        changed = []
        for job in self.manager.list_jobs():
            key = self._key(job)
            if self._seen.get(job["id"]) != key:
                first_sight = job["id"] not in self._seen
                self._seen[job["id"]] = key
                if first_sight and job["status"] in TERMINAL:
                    continue  # finished before we started watching: nothing new to report
                changed.append(job)
                try:
                    self.on_change(job)
                except Exception:  # a broken listener must not stop the watcher
                    import logging

                    logging.getLogger(__name__).exception("training job listener failed")
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:
                import logging

                logging.getLogger(__name__).exception("training job watcher poll failed")

    def start(self) -> "JobWatcher":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rewardloop-job-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
