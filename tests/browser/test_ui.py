"""The web extension and every shipped workflow in real headless Chromium, on both frontends (1.32.9, shipped with
ComfyUI 0.3.75, and the newest, 1.58.1, served by a second 0.3.75 server through --front-end-root) and both
renderers (the classic canvas and Nodes 2.0), all four in one browser process (tests/browser/check_ui.js).

Each workflow is loaded, run with the Run button and measured: chart widgets visible, inside their node, clear of
every other widget and painted (pixels of the saved widget screenshots); no node overlapping another; nothing of
the previous workflow's charts after opening the next one; the RewardLoop sidebar following a tiny training job
and cancelling it. Screenshots land in test-artifacts/screenshots.

Workflows that name the user's Wan 2.1 files run on the tiny Wan files of tests/harness/tiny_models.py; Wan's
text encoder (a full UMT5-XXL) is replaced in the page by the test pack's conditioning node (the only stand-in);
sizes, steps and training settings are made tiny the same way, in the page, before Run is pressed.

Each server gets one tab per renderer and both run a workflow before the next is opened, so the second tab's run
is answered from ComfyUI's cache (only output nodes are sent again: the other charts stay empty there, which is
checked too). The renderer that runs for real alternates (1.32.9: classic first, 1.58.1: Nodes 2.0 first), so
every frontend and every renderer draws every chart from a real run once.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfy_server import prepare_models, server_test_packs, start_server
from pack_info import PACK_ROOT, declared_node_ids, workflow_files
from workflow_specs import template_path
from workflows import load, ui_to_api

pytestmark = pytest.mark.browser
SHOTS = PACK_ROOT / "test-artifacts" / "screenshots"
DIT, VAE = "rl_tiny_wan21.safetensors", "rl_tiny_wan21_vae.safetensors"
PROMPT = "a red fox runs across the snow"
TINY_LORA = "rl_browser_tiny_lora.safetensors"
# Job processes get one thread and the 8 tokens the stand-in conditioning has (as in the training server tests).
EXTRA = "model: {text_len: 8}\nrun: {device: cpu, num_threads: 1, tensorboard: false}"
SERIES_BLUE = (95, 179, 255)   # first series colour of web/lib/chart_view.js
THRESHOLD_RED = (255, 85, 85)


def w(node_type: str, **values) -> list[dict]:
    return [{"type": node_type, "name": k, "value": v} for k, v in values.items()]


def wan(**extra) -> list[dict]:
    return w("UNETLoader", unet_name=DIT) + w("VAELoader", vae_name=VAE) + [x for k, v in extra.items() for x in w(k, **v)]


def tiny_training(tag: str) -> dict:
    return dict(model_file=DIT, vae_file=VAE, lora_name=f"rl_browser_{tag}", learning_rate=0.05, lora_rank=4,
                checkpoint_every=0, gradient_checkpointing=False, gpus=1, free_vram=True, extra_settings=EXTRA)


def grpo_like(**over) -> dict:
    return dict(reward="brightness", reward_settings="", gold_reward="temporal_smoothness", group_size=2,
                sampling_steps=3, train_window=2, kl_beta=0.0, height=32, width=32, **over)


def patches(dpo_pairs: Path, tag: str) -> dict:
    """Per workflow: the page-side edits that make it run on this test server."""
    return {
        "keyframes_then_inbetween": {"textEncoderStandIn": PROMPT, "widgets": wan(
            RewardLoopKeyframeGenerator=dict(width=64, height=64, length=17, keyframe_every=8, steps=2),
            RewardLoopFlowRefine=dict(steps=2))},
        "compare_lora": {"textEncoderStandIn": PROMPT, "widgets": wan(
            EmptyHunyuanLatentVideo=dict(width=64, height=64, length=9), KSampler=dict(steps=2),
            LoraLoaderModelOnly=dict(lora_name=TINY_LORA))},
        "train_dpo": {"textEncoderStandIn": PROMPT, "widgets": w("PrimitiveString", value=str(dpo_pairs)) + w(
            "RewardLoopLaunchDPO", frames=5, height=0, width=0, steps=2, **tiny_training(f"dpo_{tag}"))},
        "train_curriculum": {"textEncoderStandIn": PROMPT, "widgets": w("PrimitiveStringMultiline", value=PROMPT) + w(
            "RewardLoopLaunchCurriculum", stages="5", steps_per_stage=1, gates="temporal_smoothness >= -1000",
            **grpo_like(), **tiny_training(f"curriculum_{tag}"))},
        "train_grpo": {"textEncoderStandIn": PROMPT, "widgets": w("PrimitiveStringMultiline", value=PROMPT) + w(
            "RewardLoopLaunchGRPO", frames=5, steps=400, **grpo_like(), **tiny_training(f"grpo_{tag}"))},
    }


def write_test_files(base: Path) -> Path:
    """A LoRA for the tiny Wan (ComfyUI's key format, written by the pack's exporter) and a one-prompt DPO dataset
    of precomputed latents (5 frames at 32x32) under the server's input folder; returns the dataset path."""
    import torch

    from rewardloop.trainers.dpo_data import save_latent
    from rewardloop.trainers.lora_export import save_comfy_lora

    g = torch.Generator().manual_seed(0)
    peft = {}
    for proj in ("to_q", "to_v"):
        key = f"base_model.model.blocks.0.attn1.{proj}"
        peft[f"{key}.lora_A.weight"] = torch.randn(4, 128, generator=g) * 0.5
        peft[f"{key}.lora_B.weight"] = torch.randn(128, 4, generator=g) * 0.5
    save_comfy_lora(peft, base / "models" / "loras" / TINY_LORA, rank=4, alpha=4.0)
    data = base / "input" / "rl_browser_dpo"
    data.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(2):
        lat = torch.randn(16, 2, 4, 4, generator=g) * 0.3
        save_latent(data / f"w{i}.safetensors", lat + 0.5)
        save_latent(data / f"l{i}.safetensors", lat - 0.5)
        rows.append({"prompt": PROMPT, "chosen": f"w{i}.safetensors", "rejected": f"l{i}.safetensors"})
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data / "pairs.jsonl"


@pytest.fixture(scope="module")
def comfy_new_frontend(tmp_path_factory, comfy):
    """A second real ComfyUI 0.3.75 serving the newest frontend (installed by the test setup) via --front-end-root."""
    frontend = os.environ.get("REWARDLOOP_FRONTEND_NEW", "")
    assert frontend and Path(frontend, "index.html").is_file(), \
        f"REWARDLOOP_FRONTEND_NEW={frontend!r} holds no frontend: run through tests/harness/run_tests.sh"
    base = tmp_path_factory.mktemp("comfy-base-new-frontend")
    prepare_models(base)
    server = start_server(base, server_test_packs(), extra_args=("--front-end-root", frontend))
    yield server
    server.stop()
    (PACK_ROOT / "test-artifacts" / "server-new-frontend.log").write_text(server.log_text())


def cancel_running_jobs(server) -> None:
    """Jobs run in their own sessions and outlive the server: whatever the browser run left running is cancelled."""
    try:
        for job in server.get_json("/rewardloop/jobs")["jobs"]:
            if job["status"] in ("running", "starting"):
                server.post_json(f"/rewardloop/jobs/{job['id']}/cancel", {})
    except Exception:  # the server is gone already: nothing to do
        pass


@pytest.fixture(scope="module")
def ui_report(comfy, comfy_new_frontend, tmp_path_factory):
    tag = str(time.time_ns() // 1000 % 10**9)
    servers = [(comfy, "1.32.9", ["classic", "vue"]), (comfy_new_frontend, "1.58.1", ["vue", "classic"])]
    plan_servers, plans = [], {}
    for i, (server, label, renderers) in enumerate(servers):
        pairs = write_test_files(server.base_dir)
        plans[label] = {template_path(key).stem: patch for key, patch in patches(pairs, f"{tag}_{i}").items()}
        plan_servers.append({"label": label, "url": server.url + "/", "renderers": renderers,
                             "sidebarIn": renderers[0], "first": i == 0, "patches": plans[label]})
    workflows = []
    special = {role: template_path(key).stem for role, key in
               (("sidebar", "train_grpo"), ("settings", "main_demo"), ("jump", "loop_architectural_pan"))}
    for path in workflow_files():
        workflows.append({"file": path.name, "data": load(path), "run": True,
                          **{role: path.stem == stem for role, stem in special.items()}})
    plan = {"shotDir": str(SHOTS), "servers": plan_servers, "workflows": workflows}
    plan_path = tmp_path_factory.mktemp("ui-plan") / "plan.json"
    plan_path.write_text(json.dumps(plan))
    env = dict(os.environ, NODE_PATH=os.environ["REWARDLOOP_NODE_MODULES"])
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["node", str(PACK_ROOT / "tests" / "browser" / "check_ui.js"), str(plan_path)],
                              capture_output=True, text=True, env=env, timeout=1500)
    finally:
        for server, _, _ in servers:
            cancel_running_jobs(server)
    (SHOTS / "check_ui.log").write_text(proc.stderr[-20000:])
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["wall_seconds"] = time.monotonic() - t0
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1))
    return report


# ---- helpers over the report ---------------------------------------------------------------------------------
def entries(report):
    for combo in report["combos"]:
        for wf in combo["workflows"]:
            yield combo, wf


def checks(report, key: str):
    """(combination name, workflow file, value) of every workflow entry that recorded `key`."""
    for combo, wf in entries(report):
        if wf.get(key):
            yield combo["combo"], wf["file"], wf[key]


def overlap(a, b, tol: float = 1.0) -> bool:
    return min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) > tol and min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) > tol


def inside(inner, outer, tol: float = 1.5) -> bool:
    return (inner[0] >= outer[0] - tol and inner[1] >= outer[1] - tol and inner[0] + inner[2] <= outer[0] + outer[2] + tol
            and inner[1] + inner[3] <= outer[1] + outer[3] + tol)


def color_pixels(path: str, rgb, tol: int = 40) -> int:
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    return int((np.abs(img - np.array(rgb)).max(axis=-1) <= tol).sum())


def node_overlaps(measured) -> list[tuple]:
    boxes = [n for n in measured["nodes"] if n["box"] and n["box"][2] > 0]
    return [(a["title"], b["title"]) for i, a in enumerate(boxes) for b in boxes[i + 1:] if overlap(a["box"], b["box"])]


# ---- tests ---------------------------------------------------------------------------------------------------
def test_both_frontends_and_both_renderers_ran(ui_report):
    seen = {(c["version"], c["renderer"], c["vueActive"]) for c in ui_report["combos"]}
    assert seen == {("1.32.9", "classic", False), ("1.32.9", "vue", True), ("1.58.1", "classic", False),
                    ("1.58.1", "vue", True)}, seen
    assert all(c["sidebarRegistered"] for c in ui_report["combos"])
    parts = ", ".join(f"{c['combo']} {c['seconds']:.0f} s" for c in ui_report["combos"])
    print(f"browser layer: {ui_report['wall_seconds']:.0f} s for 4 combinations ({parts})")


def test_extension_loaded_without_errors(ui_report):
    for combo in ui_report["combos"]:
        assert "log: [rewardloop] extension loaded" in combo["consoleRewardloop"], combo["combo"]
        assert not [e for e in combo["pageErrors"] if "rewardloop" in e.lower()], (combo["combo"], combo["pageErrors"])
        # The frontends themselves ask the Comfy registry and Hugging Face about nodes and models (the CSP blocks
        # them); nothing of ours leaves the machine: the extension bundles everything.
        ours = [u for u in combo["external"] if not u.startswith(("https://api.comfy.org/", "https://huggingface.co/"))]
        assert ours == [], (combo["combo"], ours)


def test_every_pack_node_is_registered_and_in_the_node_library(ui_report):
    first = ui_report["combos"][0]
    assert first["registered"] == declared_node_ids()
    assert first["nodeDefsSeen"] == declared_node_ids()
    assert "RewardLoop" in first["libraryText"], first["libraryText"][:500]


def test_every_workflow_loads_with_no_missing_nodes(ui_report):
    files = {p.name: p for p in workflow_files()}
    assert files, "workflows/ is empty"
    for combo, wf in entries(ui_report):
        assert wf["load"]["nodeCount"] == len(load(files[wf["file"]])["nodes"]), (combo["combo"], wf["file"])
        assert wf["load"]["missing"] == [], (combo["combo"], wf["file"], wf["load"]["missing"])
        # (a "Missing Models" dialog is expected: workflows name the user's Wan files, absent here)
        assert not [d for d in wf["dialogs"] if "missing node" in d.lower()], (combo["combo"], wf["file"], wf["dialogs"])
        assert os.path.getsize(wf["loadedShot"]) > 10_000 and os.path.getsize(wf["ranShot"]) > 10_000


def test_api_conversion_matches_the_frontend(comfy, ui_report):
    """The harness converts UI workflows to API prompts (the demo and server tests post them); it must give
    exactly what both frontends' own graphToPrompt gives for every shared workflow."""
    info = comfy.object_info()
    for combo, wf in entries(ui_report):
        ours = {k: {"class_type": v["class_type"], "inputs": v["inputs"]}
                for k, v in ui_to_api(load(PACK_ROOT / "workflows" / wf["file"]), info).items()}
        frontend = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in wf["load"]["apiPrompt"].items()}
        assert ours == frontend, (combo["combo"], wf["file"])


def test_every_workflow_runs_from_the_run_button(ui_report):
    failed = [(c["combo"], wf["file"], wf["run"]) for c, wf in entries(ui_report) if wf["run"]["status"] != "success"]
    assert not failed, failed


def test_chart_widgets_are_visible_inside_their_node_and_clear_of_other_widgets(ui_report):
    problems, checked = [], 0
    for combo, wf in entries(ui_report):
        for w in wf["ran"]["widgets"]:
            where = (combo["combo"], wf["file"], w["type"], w["kind"])
            checked += 1
            if not w["displayed"] or w["box"][2] < 100 or w["box"][3] < 60:
                problems.append((*where, "not visible", w["box"]))
            if not w.get("nodeBox") or not inside(w["box"], w["nodeBox"]):
                problems.append((*where, "outside its node", w["box"], w.get("nodeBox")))
            hits = [o["name"] for o in w["others"] if overlap(w["box"], o["box"])]
            if hits:
                problems.append((*where, "overlaps widgets", hits))
            if not all(w["onTop"]):
                problems.append((*where, "covered by something else", w["onTop"]))
    assert checked >= 4 * 10, checked
    assert not problems, problems


def test_charts_show_what_the_run_sent(ui_report):
    """A node whose run sent a chart shows it (data points, and its pixels on screen); one whose output came from
    ComfyUI's cache (no message) shows the empty state, never another run's chart."""
    problems, drawn = [], set()
    for combo, wf in entries(ui_report):
        sent = {e["node"] for e in wf["run"].get("executed", []) if "rewardloop_chart" in e["keys"]}
        for w in wf["ran"]["widgets"]:
            if w["kind"] != "chart":
                continue
            where = (combo["combo"], wf["file"], w["type"], w["node"])
            shot = wf["chartShots"].get(f"{w['node']}:chart")
            points = int(w["data"].get("points") or 0)
            if shot is None:
                problems.append((*where, "no screenshot (off screen?)"))
                continue
            blue = color_pixels(shot, SERIES_BLUE)
            if w["node"] in sent:
                drawn.add((combo["combo"], w["type"]))
                if points < 1 or blue < min(40, 8 * points):  # a marker of ~28 px per point at least
                    problems.append((*where, f"sent a chart but shows {points} points / {blue} series pixels"))
                if w["type"] == "RewardLoopRetryClose" and color_pixels(shot, THRESHOLD_RED) < 20:
                    problems.append((*where, "no threshold line"))
            elif points or blue > 5:
                problems.append((*where, f"nothing sent in this tab but {points} points / {blue} series pixels drawn"))
    assert not problems, problems
    for combo in ui_report["combos"]:  # at least the report and a loop close node drew in every combination
        types = {t for c, t in drawn if c == combo["combo"]}
        assert "RewardLoopRewardReport" in types, (combo["combo"], types)


def test_every_combination_draws_every_chart_type_with_data(ui_report):
    """Where the run was real (not from the cache), each chart-bearing node type drew its chart."""
    for combo in ui_report["combos"]:
        real = [wf for wf in combo["workflows"] if any("rewardloop_chart" in e["keys"] for e in wf["run"].get("executed", []))]
        drawn = {w["type"] for wf in real for w in wf["ran"]["widgets"] if int(w["data"].get("points") or 0) > 0}
        if combo["renderer"] == ("classic" if combo["version"] == "1.32.9" else "vue"):  # the real run
            assert {"RewardLoopRewardComposite", "RewardLoopRewardReport", "RewardLoopRetryClose",
                    "RewardLoopJoinSegments"} <= drawn, (combo["combo"], drawn)


def test_no_node_overlaps_another(ui_report):
    problems = []
    for combo, wf in entries(ui_report):
        for state in ("loaded", "ranOverall"):
            if wf.get(state):
                hits = node_overlaps(wf[state])
                if hits:
                    problems.append((combo["combo"], wf["file"], state, hits))
    assert not problems, problems


def test_opening_another_workflow_shows_none_of_the_previous_charts(ui_report):
    checked = 0
    for combo, wf in entries(ui_report):
        if not wf["previousPrompt"]:
            continue
        checked += 1
        opened = wf["afterOpen"]
        assert opened["storeEntries"] == 0, (combo["combo"], wf["file"], opened)
        assert all(c["points"] == 0 and c["prompt"] != wf["previousPrompt"] for c in opened["charts"]), \
            (combo["combo"], wf["file"], opened)
    assert checked >= 4 * 5, checked


def test_training_job_node_shows_its_job(ui_report):
    for combo, wf in entries(ui_report):
        jobs = [e["job"] for e in wf["run"].get("executed", []) if e["job"] and e["job"].get("id")]
        if not jobs:
            continue
        widgets = [w for w in wf["ran"]["widgets"] if w["kind"] == "job"]
        assert widgets and widgets[0]["data"]["job"] == jobs[-1]["id"], (combo["combo"], wf["file"], widgets, jobs)
        assert widgets[0]["data"]["status"] in ("starting", "running", "finished", "cancelled", "cancelling")


def test_sidebar_lists_a_running_job_with_a_growing_step_and_cancels_it(ui_report):
    found = 0
    for combo, _, side in checks(ui_report, "sidebar"):
        found += 1
        where = (combo, side)
        assert not side.get("error"), where
        running = [s["step"] for s in side["steps"] if s["status"] == "running" and s["step"] >= 1]
        assert len(set(running)) >= 2 and running == sorted(running), where
        assert side["chartPanels"] >= 2, where  # curves by step: reward vs gold, loss, lr, ...
        assert side["final"]["status"] == "cancelled" and side["cancelSeconds"] < 20, where
        assert side["jobWidget"] and side["jobWidget"]["status"] == "cancelled", where  # the node follows its job
    assert found == 2, found  # one per frontend (Nodes 2.0 on 1.58.1, classic on 1.32.9)


def test_toasts_for_loops_that_did_not_pass_and_finished_jobs(ui_report):
    for combo in ui_report["combos"]:
        failed_loops = [e for wf in combo["workflows"] for e in wf["run"].get("executed", [])
                        if e["log"] is not None and not e["log"]["passed"]]
        summaries = [t["summary"] for t in combo["toasts"]]
        assert summaries.count("Retry loop ended without passing") >= len(failed_loops), (combo["combo"], summaries)
        finished = [s for s in combo["trainingStatuses"] if s.endswith(" finished")]
        assert summaries.count("Training job finished") == len(finished), (combo["combo"], summaries, finished)
        assert "Training job failed" not in summaries, (combo["combo"], combo["toasts"])


def test_hovering_a_chart_shows_the_readout(ui_report):
    drawn = [(c["combo"], wf["file"]) for c, wf in entries(ui_report)
             if any(w["kind"] == "chart" and int(w["data"].get("points") or 0) for w in wf["ran"]["widgets"])]
    done = [(combo, file) for combo, file, _ in checks(ui_report, "hover")]
    assert done == drawn and len(drawn) >= 10, (done, drawn)  # every workflow that drew a chart
    for combo, file, hover in checks(ui_report, "hover"):
        plain = np.asarray(Image.open(hover["plain"]).convert("RGB"), dtype=np.int16)
        hovered = np.asarray(Image.open(hover["hovered"]).convert("RGB"), dtype=np.int16)
        changed = int((np.abs(plain - hovered).max(axis=-1) > 30).sum())
        assert plain.shape == hovered.shape and changed > 300, (combo, file, changed)


def test_chart_settings_apply_to_the_canvas_at_once(ui_report):
    checked = 0
    for combo, _, st in checks(ui_report, "settings"):
        checked += 1
        where = (combo, st)
        assert st["before"] and all(c["shown"] for c in st["before"]), where
        assert all(abs(t["h"] - 280) < 3 for t in st["taller"]), where  # RewardLoop.Charts.Height
        assert not any(c["shown"] for c in st["off"]), where           # RewardLoop.Charts.Enabled = false
        assert all(c["shown"] and abs(c["h"] - 180) < 3 for c in st["after"]), where
        for w in st["tallerMeasure"]["widgets"]:  # taller charts still fit their node and leave other widgets alone
            node = next(n for n in st["tallerMeasure"]["nodes"] if n["id"] == w["node"])
            assert inside(w["box"], node["box"]) and not [o for o in w["others"] if overlap(w["box"], o["box"])], where
    assert checked == 2, checked


def test_removing_a_node_removes_its_chart(ui_report):
    removals = [r for _, _, r in checks(ui_report, "removal")]
    assert len(removals) == 2 and all(r.get("before") and r["after"] is False for r in removals), removals


def test_a_loop_in_the_sidebar_jumps_to_its_node(ui_report):
    jumps = [(combo, jump) for combo, _, jump in checks(ui_report, "jump")]
    assert len(jumps) == 2, jumps  # in the tab that ran the loop (the other was answered from the cache)
    for combo, jump in jumps:
        assert not jump.get("error") and jump["rows"] >= 2, (combo, jump)  # header + one row per attempt
        assert jump["selected"] == [jump["executionId"]], (combo, jump)


def test_running_a_loop_again_shows_only_the_new_run(ui_report):
    reruns = list(checks(ui_report, "rerun"))
    assert len(reruns) == 2, reruns
    for combo, file, r in reruns:
        assert r["status"] == "success" and r["prompt"] == r["promptId"], (combo, r)
        assert r["attemptsSent"] and r["points"] == r["attemptsSent"], (combo, r)
