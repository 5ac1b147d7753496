"""Retry loops around paid API nodes, in ComfyUI's real executor in-process: every attempt runs guarded, a failing
API node is a failed attempt (not the end of the prompt), spend is logged, budgets stop the loop, attempt seeds stay
in the API node's seed range, an interrupt inside the API node stops everything.

The API node here is a test node flagged `is_api_node` like ComfyUI's own (async, reads the hidden API key); the
real provider nodes against a local stand-in of the Comfy API are in tests/server/test_api_loop.py.
"""
from __future__ import annotations

import asyncio
import json

import pytest
from test_loop_nodes import FRAMES, SIZE, THRESHOLD, loop_harness, seed_with_first_pass_at

from rewardloop.gating import perturb

SEED_MAX_31 = 2**31 - 1


class ProcessingInterrupted(Exception):
    """Same name as comfy_api_nodes' own exception (raised by its polling when the user presses Cancel)."""


def api_node(harness):
    io, comfy_nodes = harness.io, harness.comfy_nodes
    harness.api = {}

    class RLTestAPIVideo(io.ComfyNode):
        """Stands for a first/last-frame video API node: async, flagged as an API node, 31-bit seeds."""

        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="RLTestAPIVideo", category="test", is_api_node=True,
                             inputs=[io.Int.Input("seed", min=0, max=SEED_MAX_31), io.Float.Input("p"),
                                     io.Image.Input("first_frame")],
                             outputs=[io.Image.Output("frames"), io.String.Output("info")],
                             hidden=[io.Hidden.unique_id, io.Hidden.auth_token_comfy_org, io.Hidden.api_key_comfy_org])

        @classmethod
        async def execute(cls, seed, p, first_frame):
            api = harness.api
            api["calls"] = api.get("calls", 0) + 1
            api.setdefault("seeds", []).append(seed)
            api.setdefault("keys", []).append(cls.hidden.api_key_comfy_org)
            api.setdefault("ids", []).append(cls.hidden.unique_id)
            await asyncio.sleep(api.get("sleep", 0.0))
            if api["calls"] in api.get("fail_calls", ()):
                raise Exception("API Error: the provider could not generate this video (Type: server_error)")
            if api["calls"] == api.get("interrupt_call"):
                comfy_nodes.interrupt_processing(True)
                raise ProcessingInterrupted("Task cancelled")
            frames, _ = perturb.perturbed_scene(FRAMES, SIZE, SIZE, 0, "pan", seed, p)
            return io.NodeOutput(frames, f"seed {seed}")

    return [RLTestAPIVideo]


@pytest.fixture(scope="module")
def h(comfy_inprocess):
    yield from loop_harness(api_node)


@pytest.fixture(autouse=True)
def reset(h):
    h.counts.clear()
    h.api.clear()
    h.fail_at = h.interrupt_at = None
    h.nan_attempts = set()
    h.comfy_nodes.interrupt_processing(False)


KEY = {"api_key_comfy_org": "test-key-123"}


def run(h, prompt, extra=KEY, executor=None, prompt_id="api"):
    h.sink, h.events = None, []
    ex = executor or h.executor()
    ex.execute(prompt, prompt_id, extra, ["sink"])
    return ex


def api_prompt(seed, max_retries=5, p=0.4, **open_extra):
    return {
        "scene": {"class_type": "RLTestScene", "inputs": {"n": FRAMES}},
        "open": {"class_type": "RewardLoopRetryOpen",
                 "inputs": {"seed": seed, "threshold": THRESHOLD, "max_retries": max_retries, "mode": "first_pass",
                            "seed_policy": "hash", "reward_range": "0..1", **open_extra}},
        "api": {"class_type": "RLTestAPIVideo", "inputs": {"seed": ["open", 2], "p": p, "first_frame": ["scene", 0]}},
        "reward": {"class_type": "RLTestReward",
                   "inputs": {"frames": ["api", 0], "keys": ["scene", 0], "attempt": ["open", 1]}},
        "close": {"class_type": "RewardLoopRetryClose",
                  "inputs": {"loop": ["open", 0], "frames": ["api", 0], "reward": ["reward", 0]}},
        "sink": {"class_type": "RLTestSink",
                 "inputs": {"frames": ["close", 0], "reward": ["close", 1], "attempt": ["close", 2],
                            "passed": ["close", 3], "log": ["close", 4]}},
    }


def first_pass_at(k, p=0.4, start=0):
    return seed_with_first_pass_at(k, p, start, seed_limit=SEED_MAX_31)


def errors(ex):
    return [d for e, d in ex.status_messages if e == "execution_error"]


def test_every_attempt_runs_the_api_node_guarded_with_the_users_key_and_stops_at_the_first_pass(h):
    seed = first_pass_at(2)
    ex = run(h, api_prompt(seed))
    assert ex.success, errors(ex)
    log = h.sink["log"]
    assert [a["passed"] for a in log["attempts"]] == [False, False, True] and h.sink["passed"]
    assert h.api["calls"] == 3  # attempt 0 included: the user's API node itself never ran unguarded
    assert h.api["keys"] == ["test-key-123"] * 3
    assert h.api["ids"] == ["api"] * 3  # progress text lands on the user's node
    assert h.api["seeds"] == [a["seed"] for a in log["attempts"]] and len(set(h.api["seeds"])) == 3
    assert [a["api_calls"] for a in log["attempts"]] == [1, 1, 1] and log["total_api_calls"] == 3
    assert all(0 < a["provider_seconds"] <= a["seconds"] for a in log["attempts"])
    assert h.counts["scene"] == 1 and h.counts["reward"] == 3
    done = [d for e, d in h.events if e == "rewardloop.status" and d["node_id"] == "close"][-1]
    assert done["final"] and done["text"].startswith("done after 3/6 attempts") and "spent 3 API calls" in done["text"]


def test_attempt_seeds_stay_in_the_api_nodes_seed_range(h):
    ex = run(h, api_prompt(2**40 + 17, max_retries=4, p=0.0))  # base seed itself out of the node's range
    assert ex.success, errors(ex)
    log = h.sink["log"]
    assert log["settings"]["seed_limit"] == SEED_MAX_31
    assert all(0 <= s <= SEED_MAX_31 for s in h.api["seeds"]) and len(set(h.api["seeds"])) == 5
    assert h.api["seeds"][0] == (2**40 + 17) % (SEED_MAX_31 + 1)


def test_a_provider_error_is_a_failed_attempt_and_the_loop_goes_on(h):
    seed = first_pass_at(2)
    h.api["fail_calls"] = {2}
    ex = run(h, api_prompt(seed))
    assert ex.success, errors(ex)
    log = h.sink["log"]
    failed = log["attempts"][1]
    assert failed["reward"] is None and not failed["passed"] and "could not generate" in failed["error"]
    assert failed["failed_reason"].startswith("generator error: RLTestAPIVideo (node api)")
    assert failed["api_calls"] == 1 and log["failed_attempts"] == 1
    assert log["attempts_run"] == 3 and h.sink["passed"] and h.sink["attempt"] == 2
    assert h.counts["reward"] == 2  # the failed attempt's reward was never computed


def test_a_failed_first_attempt_is_never_chosen(h):
    h.api["fail_calls"] = {1}
    ex = run(h, api_prompt(5, max_retries=2, p=0.0))
    assert ex.success, errors(ex)
    log = h.sink["log"]
    assert log["attempts"][0]["error"] and h.sink["attempt"] in (1, 2) and not h.sink["passed"]
    assert h.sink["frames"].shape == (FRAMES, SIZE, SIZE, 3)


def test_when_every_attempt_fails_the_prompt_fails_with_the_providers_errors(h):
    h.api["fail_calls"] = {1, 2, 3}
    ex = run(h, api_prompt(5, max_retries=2, p=1.0))
    assert not ex.success and h.sink is None
    [err] = errors(ex)
    assert "every attempt of the retry loop failed" in err["exception_message"]
    assert "attempt 3: RLTestAPIVideo (node api): API Error" in err["exception_message"]
    assert "3 API calls" in err["exception_message"]


def test_api_call_budget_stops_before_an_attempt_it_cannot_pay_for(h):
    ex = run(h, api_prompt(9, max_retries=10, p=0.0, max_api_calls=3))
    assert ex.success, errors(ex)
    log = h.sink["log"]
    assert log["attempts_run"] == 3 and log["total_api_calls"] == 3 and log["stop_reason"] == "budget_api_calls"
    assert h.api["calls"] == 3 and not h.sink["passed"]  # the best attempt comes back, flagged
    assert log["settings"]["max_api_calls"] == 3


def test_time_budget_never_starts_an_attempt_longer_ones_could_not_finish(h):
    h.api["sleep"] = 0.25
    ex = run(h, api_prompt(11, max_retries=10, p=0.0, max_total_seconds=0.9))
    assert ex.success, errors(ex)
    log = h.sink["log"]
    secs = [a["seconds"] for a in log["attempts"]]
    assert log["stop_reason"] == "budget_seconds" and 1 <= len(secs) < 11
    for k in range(1, len(secs)):  # attempt k started only because the rule allowed it
        assert sum(secs[:k]) + max(secs[:k]) <= 0.9
    assert sum(secs) + max(secs) > 0.9  # ... and the next one was refused for the same rule
    assert all(a["provider_seconds"] >= 0.25 for a in log["attempts"])


def test_interrupt_inside_the_api_node_stops_the_loop_not_a_failed_attempt(h):
    h.api["interrupt_call"] = 2
    ex = run(h, api_prompt(13, max_retries=5, p=0.0))
    assert not ex.success and any(e == "execution_interrupted" for e, _ in ex.status_messages)
    assert not errors(ex) and h.api["calls"] == 2 and h.sink is None


def test_requeue_of_a_guarded_loop_is_served_from_cache(h):
    ex = h.executor()
    prompt = api_prompt(first_pass_at(1, start=50))
    run(h, prompt, executor=ex)
    calls = h.api["calls"]
    run(h, prompt, executor=ex, prompt_id="again")
    assert h.api["calls"] == calls and h.sink is None  # nothing ran, nothing paid


@pytest.mark.parametrize("provider", ["SaveImage", "os.system", "RewardLoopRetryOpen", "", None])
def test_the_guard_only_runs_installed_api_nodes(h, provider):
    """The guard node takes a node id from the graph: a workflow placing it by hand can name nothing but an
    installed API node (which the workflow could have placed itself)."""
    prompt = api_prompt(1)
    prompt["guard"] = {"class_type": "RewardLoopProviderCall",
                       "inputs": {"provider": provider, "constants": {"seed": 1}}}
    prompt["sink2"] = {"class_type": "RLTestSink",
                       "inputs": dict(prompt["sink"]["inputs"], frames=["guard", 1])}
    _, _, good_outputs, node_errors = h.validate(prompt)
    assert good_outputs == ["sink"] and node_errors["guard"]["dependent_outputs"] == ["sink2"]
    assert "must name one of ComfyUI's installed API nodes" in json.dumps(node_errors["guard"])
    with pytest.raises(ValueError, match="installed API nodes"):
        asyncio.run(h.loop.RewardLoopProviderCall.execute(provider=provider, constants={}))


@pytest.mark.parametrize("change, message", [
    (dict(max_total_seconds=-1.0), "max_total_seconds must be >= 0"),
    (dict(max_api_calls=-2), "max_api_calls must be"),
])
def test_bad_budgets_are_rejected_before_running(h, change, message):
    prompt = api_prompt(1, **change)
    ok, _, _, node_errors = h.validate(prompt)
    assert not ok and message in json.dumps(node_errors["open"]["errors"])

