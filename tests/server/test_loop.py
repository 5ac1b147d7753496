"""Reward-gated retry loops in a real ComfyUI server: API-format prompts over HTTP + websocket.

The generator is RewardLoopPerturbedScene, whose pass/fail draw per attempt is known in advance (gating/perturb.py),
scored by the pack's RewardLoopKeyframeSSIM against anchor keyframes from RewardLoopProceduralScene: so each test
knows exactly which attempt must pass.
"""
from __future__ import annotations

import json
import math
import time

import pytest

from tiny_models import sampler_inputs

from rewardloop import gating
from rewardloop.gating import perturb

pytestmark = pytest.mark.server

SIZE, LENGTH, THRESHOLD = 64, 9, 0.85
_unique = iter(range(int(time.time()) % 100_000 * 100, 10**12))  # fresh values: identical prompts are cached


TERMINAL = ("execution_success", "execution_error", "execution_interrupted")


def settle(comfy, result, first: int, timeout: float = 60.0):
    """The harness returns when /history says done; the websocket may still be delivering the last messages
    (terminal event, errors). Wait for this prompt's terminal message, then rebuild the result from it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msgs = [m for m in comfy.messages_since(first) if m.get("data", {}).get("prompt_id") in (result.prompt_id, None)]
        if any(m.get("type") in TERMINAL and m["data"].get("prompt_id") == result.prompt_id for m in msgs):
            result.messages = msgs
            errors = [m["data"] for m in msgs if m.get("type") == "execution_error"]
            result.error = errors[-1] if errors else None
            if any(m.get("type") == "execution_interrupted" for m in msgs):
                result.status = "interrupted"
            return result
        time.sleep(0.05)
    raise AssertionError(f"no terminal websocket message for prompt {result.prompt_id}")


def run(comfy, prompt, timeout=300.0):
    first = comfy.message_count()
    return settle(comfy, comfy.run(prompt, timeout=timeout), first)


def loop_prompt(seed, max_retries=5, p=0.4, mode="first_pass", threshold=THRESHOLD, policy="hash", size=SIZE,
                length=LENGTH, scene_seed=0):
    return {
        "scene": {"class_type": "RewardLoopProceduralScene",
                  "inputs": {"width": size, "height": size, "length": length, "seed": scene_seed, "motion": "pan",
                             "keyframe_every": 0}},
        "open": {"class_type": "RewardLoopRetryOpen",
                 "inputs": {"seed": seed, "threshold": threshold, "max_retries": max_retries, "mode": mode,
                            "seed_policy": policy, "reward_range": "0..1"}},
        "gen": {"class_type": "RewardLoopPerturbedScene",
                "inputs": {"width": size, "height": size, "length": length, "scene_seed": scene_seed,
                           "motion": "pan", "keyframe_every": 0, "first_frame": 0, "last_frame": -1,
                           "seed": ["open", 2], "pass_probability": p}},
        "ssim": {"class_type": "RewardLoopKeyframeSSIM",
                 "inputs": {"frames": ["gen", 0], "keyframes": ["scene", 1], "device": "cpu"}},
        "close": {"class_type": "RewardLoopRetryClose",
                  "inputs": {"loop": ["open", 0], "frames": ["gen", 0], "reward": ["ssim", 0], "scores": ["ssim", 1]}},
        "log": {"class_type": "PreviewAny", "inputs": {"source": ["close", 4]}},
    }


def goods(seed, attempts, p=0.4, policy="hash", size=SIZE):
    """Ground truth: which attempts of a loop with this base seed draw the small warp (and so pass)."""
    s = gating.make_settings(THRESHOLD, attempts - 1, seed_policy=policy, base_seed=seed)
    return [perturb.segment_draw(s.seed(k), 0, p, size)[0] for k in range(attempts)]


def seed_with_first_pass_at(k, p=0.4):
    while True:
        seed = next(_unique)
        g = goods(seed, k + 1, p)
        if True in g and g.index(True) == k:
            return seed


def attempt_log(result):
    assert result.status == "success", result.error
    return json.loads(result.outputs["log"]["text"][0])


def runs_of(result, display_id):
    return sum(1 for d in result.events("executing") if d.get("display_node") == display_id)


def test_stops_at_the_first_passing_attempt_and_only_the_body_reruns(comfy):
    seed = seed_with_first_pass_at(2)
    result = run(comfy, loop_prompt(seed))
    log = attempt_log(result)
    assert [a["passed"] for a in log["attempts"]] == [False, False, True]
    assert log["chosen_attempt"] == 2 and log["passed"] and log["stop_reason"] == "passed"
    assert log["attempts"][2]["reward"] >= THRESHOLD > max(a["reward"] for a in log["attempts"][:2])
    # every attempt really re-ran the body: new seeds, new frames (different rewards), one generator run each
    seeds = [a["seed"] for a in log["attempts"]]
    assert seeds[0] == seed and len(set(seeds)) == 3
    assert len({a["reward"] for a in log["attempts"]}) == 3
    assert runs_of(result, "gen") == 3 and runs_of(result, "ssim") == 3
    assert runs_of(result, "scene") == 1  # outside the body: once
    assert all(a["breakdown"]["keyframe_ssim"] == pytest.approx(a["reward"]) for a in log["attempts"])
    events = result.events("rewardloop.loop")
    assert [e["attempt"] for e in events] == [0, 1, 2] and events[-1]["done"] and events[-1]["chosen_attempt"] == 2
    assert all(e["node_id"] == "close" and e["threshold"] == THRESHOLD for e in events)


def test_returns_the_best_attempt_when_none_passes_and_never_exceeds_max_retries(comfy):
    result = run(comfy, loop_prompt(next(_unique), max_retries=3, p=0.0))
    log = attempt_log(result)
    rewards = [a["reward"] for a in log["attempts"]]
    assert len(rewards) == 4 and log["stop_reason"] == "exhausted" and log["passed"] is False
    assert log["chosen_attempt"] == rewards.index(max(rewards)) and log["best_reward"] == max(rewards)
    assert runs_of(result, "gen") == 4  # "nothing passed" is a result, not an error: the prompt succeeded


def test_requeue_of_the_same_prompt_is_served_from_cache(comfy):
    prompt = loop_prompt(seed_with_first_pass_at(1))
    first = run(comfy, prompt)
    log = attempt_log(first)
    again = run(comfy, prompt)
    assert again.status == "success" and again.executed_nodes() == []  # nothing re-ran
    assert json.loads(again.outputs["log"]["text"][0]) == log
    changed = dict(prompt, open=dict(prompt["open"], inputs=dict(prompt["open"]["inputs"], threshold=0.9)))
    rerun = run(comfy, changed)
    assert runs_of(rerun, "gen") >= 1 and runs_of(rerun, "scene") == 0  # the anchors stay cached


def test_best_of_mode_runs_every_attempt(comfy):
    result = run(comfy, loop_prompt(next(_unique), max_retries=3, p=0.5, mode="best_of"))
    log = attempt_log(result)
    rewards = [a["reward"] for a in log["attempts"]]
    assert len(rewards) == 4 and log["chosen_attempt"] == rewards.index(max(rewards))
    assert log["passed"] == (max(rewards) >= THRESHOLD)


def test_huge_max_retries_is_capped_and_reported(comfy):
    result = run(comfy, loop_prompt(next(_unique), max_retries=1000, p=0.0, size=16, length=2), timeout=600)
    log = attempt_log(result)
    assert log["attempts_run"] == gating.MAX_RETRIES + 1
    assert log["settings"]["capped"] and log["settings"]["max_retries_requested"] == 1000


def widget_defaults(info: dict) -> dict:
    """Default values of a node's required widgets, from /object_info."""
    out = {}
    for name, spec in info["input"].get("required", {}).items():
        opts = spec[1] if len(spec) > 1 else {}
        if "default" in opts:
            out[name] = opts["default"]
        elif isinstance(spec[0], list) and spec[0]:
            out[name] = spec[0][0]
        elif isinstance(opts.get("options"), list) and opts["options"]:
            out[name] = opts["options"][0]
    return out


def test_nan_reward_is_a_failed_attempt_not_an_error(comfy):
    prompt = loop_prompt(next(_unique), max_retries=1, p=0.0)
    # A composite with only keyframe SSIM weighted and no keyframes has nothing to compute: reward NaN.
    inputs = widget_defaults(comfy.object_info()["RewardLoopRewardComposite"])
    inputs.update({k: 0.0 for k in inputs if k.startswith("w_")})
    inputs.update(w_keyframe_ssim=1.0, frames=["gen", 0], device="cpu")
    prompt["nan"] = {"class_type": "RewardLoopRewardComposite", "inputs": inputs}
    prompt["close"]["inputs"].update(reward=["nan", 0], scores=["nan", 1])
    result = run(comfy, prompt)
    log = attempt_log(result)
    assert [a["reward"] for a in log["attempts"]] == [None, None]
    assert all("nan" in a["failed_reason"].lower() for a in log["attempts"])
    assert log["passed"] is False and log["chosen_attempt"] == 0  # and the prompt succeeded (attempt_log)


@pytest.mark.parametrize("change, message", [
    (dict(threshold=1.5), "outside [0, 1]"),
    (dict(threshold=-0.5), "outside [0, 1]"),
    (dict(max_retries=-1), "max_retries must be >= 0"),
    (dict(mode="sometimes"), "unknown mode 'sometimes'"),
    (dict(seed_policy="fibonacci"), "unknown seed_policy 'fibonacci'"),
])
def test_bad_settings_are_rejected_with_a_clear_message(comfy, change, message):
    prompt = loop_prompt(next(_unique))
    prompt["open"]["inputs"].update(change)
    status, answer = comfy.post_json("/prompt", {"prompt": prompt, "client_id": comfy.client_id})
    assert status == 400
    assert message in json.dumps(answer["node_errors"]["open"])


def test_miswired_loop_fails_with_an_explanation(comfy):
    prompt = loop_prompt(next(_unique))
    prompt["close"]["inputs"]["frames"] = ["scene", 0]  # not produced inside the loop
    result = run(comfy, prompt)
    assert result.status == "error" and result.error["node_id"] == "close"
    assert "does not depend on the loop's open node" in result.error["exception_message"]


def test_body_error_on_attempt_3_surfaces_with_the_attempt_and_keeps_the_earlier_log(comfy):
    prompt = loop_prompt(next(_unique), max_retries=5, p=0.0, length=2)
    # first_frame = the attempt index: attempt 1 renders frames 0..1, attempt 2 frame 1..1, attempt 3 asks for
    # frame 2 of a 2-frame clip -> a ValueError inside the loop body on the third attempt.
    prompt["gen"]["inputs"]["first_frame"] = ["open", 1]
    result = run(comfy, prompt)
    assert result.status == "error"
    assert "frame range 2..1" in result.error["exception_message"]
    assert result.error["node_id"] == "close"  # ComfyUI reports an expanded copy on the node that created it
    events = result.events("rewardloop.loop")  # the earlier attempts' log reached the client
    assert [e["attempt"] for e in events] == [0, 1] and events[-1]["next_attempt"] == 2
    assert all(e["reward"] is not None for e in events)
    console = comfy.log_text().split("starting attempt 3/6")  # ... and the console, right before the error
    assert len(console) > 1 and '"attempt": 1' in console[-1][:4000] and "frame range 2..1" in console[-1]


def test_interrupt_stops_the_loop_cleanly(comfy):
    prompt = loop_prompt(next(_unique), max_retries=32, p=0.0, size=192, length=33)
    first = comfy.message_count()
    prompt_id = comfy.post(prompt)["prompt_id"]
    deadline = time.time() + 120
    while time.time() < deadline:
        if any(m.get("type") == "rewardloop.loop" for m in comfy.messages_since(first)):
            break
        time.sleep(0.05)
    comfy.interrupt()
    result = settle(comfy, comfy.wait(prompt_id, first, timeout=120), first)
    assert result.status == "interrupted"
    assert len(result.events("rewardloop.loop")) < gating.MAX_RETRIES + 1
    after = run(comfy, loop_prompt(next(_unique), max_retries=0, p=1.0))  # the server carries on normally
    assert attempt_log(after)["passed"]


def test_loop_around_a_real_sampler_with_the_tiny_wan_model(comfy):
    """Any sub-graph can be the body: UNETLoader/VAELoader/conditioning stay outside (run once), the KSampler and
    VAEDecode re-run with each attempt's seed."""
    seed = next(_unique)
    prompt = {
        **sampler_inputs(f"glass skyscraper {seed}", 32, 5),
        "scene": {"class_type": "RewardLoopProceduralScene",
                  "inputs": {"width": 32, "height": 32, "length": 5, "seed": 0, "motion": "pan", "keyframe_every": 0}},
        "open": {"class_type": "RewardLoopRetryOpen",
                 "inputs": {"seed": seed, "threshold": 0.85, "max_retries": 2, "mode": "first_pass",
                            "seed_policy": "hash", "reward_range": "0..1"}},
        "sample": {"class_type": "KSampler", "inputs": {"model": ["unet", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                                                       "latent_image": ["latent", 0], "seed": ["open", 2], "steps": 2,
                                                       "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple",
                                                       "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["vae", 0]}},
        "ssim": {"class_type": "RewardLoopKeyframeSSIM",
                 "inputs": {"frames": ["decode", 0], "keyframes": ["scene", 1], "device": "cpu"}},
        "close": {"class_type": "RewardLoopRetryClose",
                  "inputs": {"loop": ["open", 0], "frames": ["decode", 0], "reward": ["ssim", 0]}},
        "log": {"class_type": "PreviewAny", "inputs": {"source": ["close", 4]}},
        "preview": {"class_type": "PreviewImage", "inputs": {"images": ["close", 0]}},
    }
    result = run(comfy, prompt, timeout=600)
    log = attempt_log(result)
    assert log["attempts_run"] == 3 and len({a["seed"] for a in log["attempts"]}) == 3
    assert len({a["reward"] for a in log["attempts"]}) == 3  # a random tiny model: different samples per seed
    assert runs_of(result, "sample") == 3 and runs_of(result, "decode") == 3
    for outside in ("unet", "vae", "pos", "latent", "scene"):
        assert runs_of(result, outside) == 1, outside
    assert len(result.outputs["preview"]["images"]) == 5


def test_best_of_n_sampler_in_the_server(comfy):
    seed = next(_unique)
    prompt = {
        **sampler_inputs("glass skyscraper", 32, 5),
        "scene": {"class_type": "RewardLoopProceduralScene",
                  "inputs": {"width": 32, "height": 32, "length": 5, "seed": 0, "motion": "pan", "keyframe_every": 0}},
        "bon": {"class_type": "RewardLoopBestOfN",
                "inputs": {"model": ["unet", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                           "latent_image": ["latent", 0], "vae": ["vae", 0], "seed": seed, "steps": 2, "cfg": 3.0,
                           "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0, "candidates": 3,
                           "batch_size": 2, "reward": "keyframe_ssim", "threshold": 0.85, "mode": "best_of",
                           "seed_policy": "hash", "reward_range": "0..1", "keyframes": ["scene", 1]}},
        "log": {"class_type": "PreviewAny", "inputs": {"source": ["bon", 5]}},
    }
    result = run(comfy, prompt, timeout=600)
    log = attempt_log(result)
    rewards = [a["reward"] for a in log["attempts"]]
    assert len(rewards) == 3 and log["chosen_attempt"] == rewards.index(max(rewards))
    assert [e["attempt"] for e in result.events("rewardloop.loop")] == [0, 1, 2]
    assert not any(math.isnan(r) for r in rewards)
