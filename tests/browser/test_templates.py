"""The pack as both frontends present it (1.32.9, shipped with ComfyUI 0.3.75, and the newest, 1.58.1, served by the
same server), in real headless Chromium: Browse Templates shows every example workflow with its readable title and
its own picture, the main demo first; the node search and the Add Node menu do not offer the internal attempt
collector; a node's help panel shows the pack's page for it."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from node_docs import DOCS_DIR

from comfy_server import ComfyServer, env_from_setup
from pack_info import PACK_ROOT, all_workflow_files
from workflow_specs import KNOWN_MODELS, template_path

pytestmark = pytest.mark.browser
SHOTS = PACK_ROOT / "test-artifacts" / "templates"
HELP_NODE = "RewardLoopInbetween"
NEEDS_MODELS = "train_grpo"  # names the Wan files, which the test server does not have
THUMB_WIDTH = 480  # tests/harness/make_thumbnails.py


@pytest.fixture(scope="module")
def newest_frontend(tmp_path_factory):
    env = env_from_setup()
    server = ComfyServer(env["REWARDLOOP_PYTHON"], env["REWARDLOOP_COMFYUI"], tmp_path_factory.mktemp("newest"),
                         extra_args=("--front-end-root", env["REWARDLOOP_FRONTEND_NEW"]))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["shipped", "newest"])
def seen(request, comfy, newest_frontend):
    server = comfy if request.param == "shipped" else newest_frontend
    proc = subprocess.run(["node", str(PACK_ROOT / "tests" / "browser" / "templates_check.js"), server.url + "/",
                           str(SHOTS), HELP_NODE, str(template_path(NEEDS_MODELS))], capture_output=True, text=True,
                          timeout=300,
                          env=dict(os.environ, NODE_PATH=os.environ["REWARDLOOP_NODE_MODULES"]))
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"report_{request.param}.json").write_text(json.dumps(report, indent=1))
    return report


def test_templates_have_titles_and_pictures_main_demo_first(seen):
    titles = sorted((p.stem for p in all_workflow_files()), key=str.casefold)
    assert titles[0].startswith("Main demo")
    assert [c["name"] for c in seen["cards"]] == titles, seen["version"]
    served = {url.rsplit("/", 1)[-1]: status for status, url in seen["pictures"]}
    for card in seen["cards"]:
        assert card["name"] in card["text"], card
        assert served.get(f"{card['name']}.jpg") == 200, (card["name"], served)  # its own picture, not a 404
        assert "default-template" not in (card["picture"] or ""), card  # not the placeholder
        assert card["width"] == THUMB_WIDTH, card  # the picture really shows


def test_the_internal_collector_is_not_offered(seen):
    assert seen["searchOpenedBy"] in ("double-click", "search command"), "the node search never opened"
    assert "Reward Retry Loop (open)" in seen["searchText"] and "Reward Retry Loop (close)" in seen["searchText"], \
        seen["searchText"][:500]
    assert "attempt collector" not in seen["searchText"]
    assert "RewardLoopRetryOpen" in seen["addMenu"] and "RewardLoopRetryCollect" not in seen["addMenu"]


def test_the_help_panel_shows_the_packs_page(seen):
    assert seen["infoButton"], "the selection toolbox has no info button"
    page = (DOCS_DIR / f"{HELP_NODE}.md").read_text()
    first_sentence = page.split("\n\n")[1].split(".")[0].replace("\n", " ")
    assert first_sentence in " ".join(seen["helpText"].split()), seen["helpText"][:1000]


def test_the_missing_model_dialog_offers_the_wan_downloads(seen):
    """The training workflow names the user's Wan files; the server has none of them, so the frontend lists them
    with the download links the workflow carries."""
    missing = {"wan2.1_t2v_1.3B_fp16.safetensors", "wan_2.1_vae.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"}
    for name in missing:
        assert name in seen["modelsDialog"], (seen["version"], seen["modelsDialog"][:1500])
    assert {KNOWN_MODELS[n]["url"] for n in missing} <= set(seen["downloadLinks"]), seen["downloadLinks"]
