"""The retry loop around ComfyUI's own first/last-frame API nodes, end to end: a real ComfyUI 0.3.75 started with
its API nodes on and `--comfy-api-base` pointing at a local stand-in of the Comfy API (tests/harness/api_standin),
the API key passed the way the frontend passes it (the prompt's extra_data). Everything on the ComfyUI side is the
real node (LumaImageToVideoNode, RunwayFirstLastFrameNode, Veo3FirstLastFrameNode, ViduStartEndToVideoNode), the
real executor and the real loop; the stand-in renders each video from the uploaded frames with a seeded, known
defect, so every test knows which attempt must pass (render.draw_defect) and checks it in the stand-in's log.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from api_standin.render import draw_defect
from api_workflows import API_SPECS
from test_loop import settle
from workflow_specs import check_files_match_specs, template_path
from workflows import load, ui_to_api

from rewardloop import gating

pytestmark = pytest.mark.server

W, H, LENGTH, THRESHOLD = 128, 72, 9, 0.85
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
_unique = iter(range(int(time.time()) % 100_000 * 100, 10**12))

# The provider nodes with the inputs a user would set; `seed` is wired to the loop's attempt_seed.
PROVIDERS = {
    "luma": ("LumaImageToVideoNode", {"prompt": "camera pan", "model": "ray-2", "resolution": "540p",
                                      "duration": "5s", "loop": False}, ("first_image", "last_image")),
    "runway": ("RunwayFirstLastFrameNode", {"prompt": "camera pan", "duration": 5, "ratio": "1280:768"},
               ("start_frame", "end_frame")),
    "veo": ("Veo3FirstLastFrameNode", {"prompt": "camera pan", "negative_prompt": "", "resolution": "720p",
                                       "aspect_ratio": "16:9", "duration": 8, "model": "veo-3.1-fast-generate",
                                       "generate_audio": False}, ("first_frame", "last_frame")),
    "vidu": ("ViduStartEndToVideoNode", {"model": "viduq1", "prompt": "camera pan", "duration": 5,
                                         "resolution": "1080p", "movement_amplitude": "auto"},
             ("first_frame", "end_frame")),
}
# Largest seed each node's seed input takes: the loop keeps its attempt seeds inside it.
SEED_LIMITS = {"luma": gating.SEED_MAX, "runway": 4294967295, "veo": 0xFFFFFFFF, "vidu": 2147483647}


@pytest.fixture
def standin(api_standin):
    api_standin.reset()
    api_standin.configure(pass_rate=0.4, seed=0, latency=0.0, polls=0, fail_on=[], fail_rate=0.0,
                          fail_mode="task", frames=13)
    return api_standin


@pytest.fixture(scope="module")
def key(api_standin):
    return {"api_key_comfy_org": api_standin.configure()["api_key"]}


def loop_prompt(provider: str, seed: int, max_retries: int = 5, **open_extra) -> dict:
    node, widgets, (first, last) = PROVIDERS[provider]
    return {
        "scene": {"class_type": "RewardLoopProceduralScene",
                  "inputs": {"width": W, "height": H, "length": LENGTH, "seed": 7, "motion": "pan",
                             "keyframe_every": 0}},
        "first": {"class_type": "ImageFromBatch", "inputs": {"image": ["scene", 1], "batch_index": 0, "length": 1}},
        "last": {"class_type": "ImageFromBatch", "inputs": {"image": ["scene", 1], "batch_index": 1, "length": 1}},
        "open": {"class_type": "RewardLoopRetryOpen",
                 "inputs": {"seed": seed, "threshold": THRESHOLD, "max_retries": max_retries, "mode": "first_pass",
                            "seed_policy": "hash", "reward_range": "0..1", **open_extra}},
        "gen": {"class_type": node, "inputs": {**widgets, "seed": ["open", 2], first: ["first", 0], last: ["last", 0]}},
        "frames": {"class_type": "GetVideoComponents", "inputs": {"video": ["gen", 0]}},
        "ssim": {"class_type": "RewardLoopKeyframeSSIM",
                 "inputs": {"frames": ["frames", 0], "keyframes": ["scene", 1], "device": "cpu"}},
        "close": {"class_type": "RewardLoopRetryClose",
                  "inputs": {"loop": ["open", 0], "frames": ["frames", 0], "reward": ["ssim", 0],
                             "scores": ["ssim", 1]}},
        "log": {"class_type": "PreviewAny", "inputs": {"source": ["close", 4]}},
    }


def draws(provider: str, base_seed: int, attempts: int, pass_rate: float, standin_seed: int = 0) -> list[bool]:
    """Which attempts the stand-in renders without a defect: from the seed the node sends (Runway, Veo, Vidu), or,
    for Luma (whose API takes no seed), from the stand-in's seed and its request count since the reset."""
    s = gating.make_settings(THRESHOLD, attempts - 1, base_seed=base_seed, seed_limit=SEED_LIMITS[provider])
    keys = [f"request:{standin_seed}:{k + 1}" if provider == "luma" else f"seed:{s.seed(k)}" for k in range(attempts)]
    return [draw_defect(pass_rate, provider, key) is None for key in keys]


def first_pass_at(provider: str, k: int, pass_rate: float = 0.4) -> tuple[int, int]:
    """(base seed, stand-in seed) whose first good draw is attempt k."""
    for n in range(10_000):
        seed, standin_seed = (0, n) if provider == "luma" else (next(_unique), 0)
        g = draws(provider, seed, k + 1, pass_rate, standin_seed)
        if True in g and g.index(True) == k:
            return seed, standin_seed
    raise AssertionError("no seed found")


def run(comfy, prompt, key, timeout=300.0):
    first = comfy.message_count()
    return settle(comfy, comfy.run(prompt, timeout=timeout, extra_data=key), first)


def attempt_log(result) -> dict:
    assert result.status == "success", result.error
    return json.loads(result.outputs["log"]["text"][0])


def creates(standin) -> list[dict]:
    return [e for e in standin.log() if e.get("kind") == "create"]


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_loop_stops_at_the_first_passing_attempt_with_a_new_seed_each_attempt(comfy_api, standin, key, provider):
    seed, standin_seed = first_pass_at(provider, 2)
    standin.configure(seed=standin_seed)
    log = attempt_log(run(comfy_api, loop_prompt(provider, seed), key))
    attempts = log["attempts"]
    assert [a["passed"] for a in attempts] == [False, False, True] and log["stop_reason"] == "passed"
    assert max(a["reward"] for a in attempts[:2]) < THRESHOLD <= attempts[2]["reward"]
    asked = creates(standin)
    assert len(asked) == 3 and all(e["provider"] == provider and e["status"] < 300 for e in asked)
    assert [e["expected_pass"] for e in asked] == [a["passed"] for a in attempts]  # the reward saw each defect
    if provider == "luma":  # Luma's API takes no seed: each attempt is a new generation request
        assert all(e["seed"] is None for e in asked) and len({e["number"] for e in asked}) == 3
    else:
        assert [e["seed"] for e in asked] == [a["seed"] for a in attempts]
        assert len({e["seed"] for e in asked}) == 3 and all(e["seed"] <= SEED_LIMITS[provider] for e in asked)
    assert [a["api_calls"] for a in attempts] == [1, 1, 1] and log["total_api_calls"] == 3
    assert all(0 < a["provider_seconds"] <= a["seconds"] for a in attempts)
    assert {e["auth"] for e in standin.log() if "auth" in e} == {"ok"}  # every API request carried the key


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_loop_never_exceeds_its_api_call_budget(comfy_api, standin, key, provider):
    standin.configure(pass_rate=0.0)
    log = attempt_log(run(comfy_api, loop_prompt(provider, next(_unique), max_retries=5, max_api_calls=2), key))
    assert len(creates(standin)) == 2 == log["total_api_calls"] == log["attempts_run"]
    assert log["stop_reason"] == "budget_api_calls" and log["passed"] is False and log["chosen_attempt"] in (0, 1)


@pytest.mark.parametrize("provider, mode", [("luma", "task"), ("runway", "http"), ("veo", "task"), ("vidu", "http")])
def test_a_provider_error_is_a_failed_attempt_not_the_end_of_the_queue(comfy_api, standin, key, provider, mode):
    standin.configure(pass_rate=0.0, fail_on=[2], fail_mode=mode)
    result = run(comfy_api, loop_prompt(provider, next(_unique), max_retries=2), key)
    log = attempt_log(result)
    errors = [a.get("error") for a in log["attempts"]]
    assert errors[0] is None and errors[2] is None and errors[1]
    assert PROVIDERS[provider][0] in errors[1] and log["attempts"][1]["reward"] is None
    assert ("failed" in errors[1].lower()) or ("error" in errors[1].lower())
    assert log["attempts_run"] == 3 and log["chosen_attempt"] in (0, 2) and log["failed_attempts"] == 1
    assert len(creates(standin)) == 3 and creates(standin)[1]["failed"]


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_interrupt_while_the_provider_is_polling_stops_the_loop_within_seconds(comfy_api, standin, key, provider):
    standin.configure(polls=1000)  # the generation never finishes: the node keeps polling
    first = comfy_api.message_count()
    prompt_id = comfy_api.post(loop_prompt(provider, next(_unique), max_retries=5), key)["prompt_id"]
    deadline = time.time() + 60
    while time.time() < deadline and not any(e.get("kind") == "poll" for e in standin.log()):
        time.sleep(0.1)
    assert any(e.get("kind") == "poll" for e in standin.log()), "the node never polled"
    t0 = time.time()
    comfy_api.interrupt()
    result = settle(comfy_api, comfy_api.wait(prompt_id, first, timeout=60), first)
    stopped = time.time() - t0
    assert result.status == "interrupted" and stopped < 8, (result.status, stopped)
    time.sleep(1.0)
    assert len(creates(standin)) == 1  # no further attempt started


def test_when_every_attempt_fails_the_prompt_reports_the_providers_errors_and_the_queue_goes_on(comfy_api, standin,
                                                                                              key):
    standin.configure(fail_rate=1.0)
    result = run(comfy_api, loop_prompt("runway", next(_unique), max_retries=1), key)
    assert result.status == "error" and result.error["node_id"] == "close"
    message = result.error["exception_message"]
    assert "every attempt of the retry loop failed" in message and "attempt 2: RunwayFirstLastFrameNode" in message
    assert len(creates(standin)) == 2
    standin.configure(fail_rate=0.0, pass_rate=1.0)
    assert attempt_log(run(comfy_api, loop_prompt("runway", next(_unique)), key))["passed"]  # server carries on


def test_without_the_api_key_every_attempt_is_refused_and_the_error_says_so(comfy_api, standin):
    result = run(comfy_api, loop_prompt("luma", next(_unique), max_retries=1), key={})
    assert result.status == "error" and "Unauthorized" in result.error["exception_message"]
    assert {e["auth"] for e in standin.log() if "auth" in e} == {"missing"} and not creates(standin)


# ---- the shared workflows, unchanged ------------------------------------------------------------------------
def test_api_workflow_files_match_their_specs(comfy_api):
    check_files_match_specs(API_SPECS, comfy_api.object_info())


def by_type(prompt: dict, class_type: str) -> list[str]:
    return [k for k, v in prompt.items() if v["class_type"] == class_type]


def ui_logs(result) -> list[dict]:
    return [entry for out in result.outputs.values() for entry in out.get("rewardloop_log", [])]


def video_frames(comfy, result, save_id: str) -> int:
    import av

    path = comfy.output_path(result.outputs[save_id]["images"][0])
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_first_last_gated_workflow_runs_unchanged_against_the_stand_in(comfy_api, standin, key):
    prompt = ui_to_api(load(template_path("api_first_last_gated")), comfy_api.object_info())
    [open_id] = by_type(prompt, "RewardLoopRetryOpen")
    settings = prompt[open_id]["inputs"]
    assert (settings["threshold"], settings["max_retries"], settings["max_api_calls"]) == (0.85, 5, 6)
    standin.configure(seed=first_pass_at("luma", 1)[1])  # attempt 2 is the first good one
    result = run(comfy_api, prompt, key, timeout=600)
    assert result.status == "success", result.error
    [log] = ui_logs(result)
    assert [a["passed"] for a in log["attempts"]] == [False, True] and log["total_api_calls"] == 2
    assert [e["expected_pass"] for e in creates(standin)] == [False, True]
    assert all(set(a["breakdown"]) >= {"keyframe_ssim", "temporal_lpips"} for a in log["attempts"])
    assert video_frames(comfy_api, result, by_type(prompt, "SaveVideo")[0]) == 13


def test_master_frames_workflow_gates_each_api_segment_then_interpolates(comfy_api, standin, key):
    prompt = ui_to_api(load(template_path("api_master_frames_per_segment")), comfy_api.object_info())
    standin.configure(pass_rate=0.6)
    result = run(comfy_api, prompt, key, timeout=600)
    assert result.status == "success", result.error
    logs = ui_logs(result)
    [summary] = [e for out in result.outputs.values() for e in out.get("rewardloop_summary", [])]
    assert len(logs) == 2 and len(summary["segments"]) == 2
    asked = creates(standin)
    assert len(asked) == sum(s["attempts_run"] for s in summary["segments"]) == sum(g["total_api_calls"] for g in logs)
    # each segment's loop stopped at its first good generation (or ran out): the stand-in's draws say which
    assert sum(e["expected_pass"] for e in asked) == sum(s["passed"] for s in summary["segments"])
    images = [e["images"] for e in asked]
    assert all(len(i) == 2 for i in images)  # each request uploaded its segment's two master frames
    assert video_frames(comfy_api, result, by_type(prompt, "SaveVideo")[0]) == 2 * (13 + 12) - 1
