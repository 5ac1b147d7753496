"""The API workflows (ComfyUI's paid first/last-frame nodes inside the retry loop) in the real frontend, in real
headless Chromium, against a server with its API nodes on (the shared browser test's server has them off)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from pack_info import PACK_ROOT, api_workflow_files
from workflows import load, ui_to_api

pytestmark = pytest.mark.browser
SHOTS = PACK_ROOT / "test-artifacts" / "screenshots-api"


@pytest.fixture(scope="module")
def api_ui_report(comfy_api, tmp_path_factory):
    """The api_* workflows opened (not run: see queued_from_the_frontend) in the shipped frontend by the shared
    browser checker (check_ui.js), against the API-enabled server."""
    plan = {"shotDir": str(SHOTS),
            "servers": [{"label": "1.32.9-api", "url": comfy_api.url + "/", "renderers": ["classic"],
                         "sidebarIn": None, "first": False, "patches": {}}],
            "workflows": [{"file": p.name, "data": load(p), "run": False,
                           "why": "queued from the frontend with an API key in queued_from_the_frontend"}
                          for p in api_workflow_files()]}
    plan_path = tmp_path_factory.mktemp("api-ui-plan") / "plan.json"
    plan_path.write_text(json.dumps(plan))
    env = dict(os.environ, NODE_PATH=os.environ["REWARDLOOP_NODE_MODULES"])
    proc = subprocess.run(["node", str(PACK_ROOT / "tests" / "browser" / "check_ui.js"), str(plan_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1))
    return {w["file"]: w for combo in report["combos"] for w in combo["workflows"]}


def test_api_workflows_load_with_no_missing_nodes(api_ui_report):
    files = api_workflow_files()
    assert len(files) == 2
    for path in files:
        entry = api_ui_report[path.name]
        assert entry["load"]["nodeCount"] == len(load(path)["nodes"]), entry["load"]
        assert entry["load"]["missing"] == [], (path.name, entry["load"]["missing"])
        queued = {n["class_type"] for n in entry["load"]["apiPrompt"].values()}
        assert "LumaImageToVideoNode" in queued and "RewardLoopRetryOpen" in queued, queued
        assert not [d for d in entry["dialogs"] if "missing" in d.lower()], entry["dialogs"]
        assert os.path.getsize(entry["loadedShot"]) > 10_000


def test_api_workflow_conversion_matches_the_frontend(comfy_api, api_ui_report):
    """What the server tests post is exactly what the frontend queues for these files."""
    info = comfy_api.object_info()
    for path in api_workflow_files():
        ours = {k: {"class_type": v["class_type"], "inputs": v["inputs"]}
                for k, v in ui_to_api(load(path), info).items()}
        frontend = {k: {"class_type": v["class_type"], "inputs": v["inputs"]}
                    for k, v in api_ui_report[path.name]["load"]["apiPrompt"].items()}
        assert ours == frontend, path.name


@pytest.fixture(scope="module")
def queued_from_the_frontend(comfy_api, api_standin):
    """The API workflows queued from the real frontend, logged in with the stand-in's API key as a user would."""
    api_standin.reset()
    api_standin.configure(pass_rate=1.0, polls=0, fail_on=[], fail_rate=0.0, latency=0.0, frames=13)
    key = api_standin.configure()["api_key"]
    env = dict(os.environ, NODE_PATH=os.environ["REWARDLOOP_NODE_MODULES"])
    proc = subprocess.run(["node", str(PACK_ROOT / "tests" / "browser" / "api_workflow.js"), comfy_api.url + "/",
                           str(SHOTS), key, api_standin.url, *map(str, api_workflow_files())], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), api_standin.log()


def test_queueing_from_the_frontend_sends_the_users_api_key_to_the_provider(comfy_api, queued_from_the_frontend):
    report, log = queued_from_the_frontend
    assert report["keyStored"]
    assert [r["outcome"] for r in report["results"]] == ["success", "success"], report["results"]
    api_requests = [e for e in log if e.get("kind") in ("storage", "create", "poll")]  # made by the API nodes
    assert api_requests and {e["auth"] for e in api_requests} == {"ok"}  # every API call carried the key
    assert len([e for e in log if e.get("kind") == "create"]) == 3  # one clip + two segments, each passing at once
    for r in report["results"]:
        assert os.path.getsize(r["loaded"]) > 10_000 and os.path.getsize(r["ran"]) > 10_000
