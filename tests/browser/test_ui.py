"""The web extension and the pack's workflows in the real ComfyUI frontend, in real headless Chromium."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from pack_info import PACK_ROOT, declared_node_ids, workflow_files
from workflows import load, ui_to_api

pytestmark = pytest.mark.browser
SHOTS = PACK_ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def ui_report(comfy):
    env = dict(os.environ, NODE_PATH=os.environ["REWARDLOOP_NODE_MODULES"])
    files = [str(p) for p in workflow_files()]
    proc = subprocess.run(["node", str(PACK_ROOT / "tests" / "browser" / "check_ui.js"), comfy.url + "/",
                           str(SHOTS), *files], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1))
    return report


def test_extension_loaded_without_errors(ui_report):
    assert "log: [rewardloop] extension loaded" in ui_report["rewardloopConsole"]
    assert not [e for e in ui_report["pageErrors"] if "rewardloop" in e.lower()], ui_report["pageErrors"]
    # The frontend itself asks the Comfy registry (api.comfy.org) about node packs; nothing else may leave
    # the machine: our extension bundles everything.
    ours = [u for u in ui_report["externalRequests"] if not u.startswith("https://api.comfy.org/")]
    assert ours == [], ours


def test_every_pack_node_is_in_the_node_library(ui_report):
    assert ui_report["registered"] == declared_node_ids()
    assert sorted(set(ui_report["nodeDefsSeen"])) == declared_node_ids()
    assert "RewardLoop" in ui_report["libraryText"], ui_report["libraryText"][:500]


def test_every_workflow_loads_with_no_missing_nodes(ui_report):
    files = workflow_files()
    assert files, "workflows/ is empty"
    by_name = {w["file"]: w for w in ui_report["workflows"]}
    for path in files:
        entry = by_name[path.name]
        assert entry["nodeCount"] == len(load(path)["nodes"]), entry
        assert entry["missing"] == [], (path.name, entry["missing"])
        # (a "Missing Models" dialog is expected: workflows name the user's Wan files, absent here)
        assert not [d for d in entry["dialogs"] if "missing node" in d.lower()], entry["dialogs"]
        assert os.path.getsize(entry["screenshot"]) > 10_000


def test_api_conversion_matches_the_frontend(comfy, ui_report):
    """The harness converts UI workflows to API prompts (the demo and server tests post them); it must give
    exactly what the frontend's own graphToPrompt gives for every shared workflow."""
    info = comfy.object_info()
    by_name = {w["file"]: w for w in ui_report["workflows"]}
    for path in workflow_files():
        ours = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in ui_to_api(load(path), info).items()}
        frontend = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in by_name[path.name]["apiPrompt"].items()}
        assert ours == frontend, path.name
