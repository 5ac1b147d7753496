"""The internal nodes (the attempt collector, the API-call guard) are hidden from the node library (marked deprecated, or dev-only on a core that
has that flag) but is still a node the server runs: in the retry loop's expansion (tests/server/test_loop.py) and
in a saved workflow that contains it."""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.server


def test_the_collector_is_marked_hidden_and_the_rest_are_not(comfy):
    info = comfy.object_info()
    hidden = {k for k, v in info.items() if k.startswith("RewardLoop") and (v.get("deprecated") or v.get("dev_only"))}
    assert hidden == {"RewardLoopRetryCollect", "RewardLoopProviderCall"}


def test_a_workflow_containing_the_collector_still_runs(comfy):
    seed = int(time.time()) % 100000  # fresh inputs: no cache hit across sessions
    prompt = {
        "1": {"class_type": "RewardLoopProceduralScene",
              "inputs": {"width": 64, "height": 64, "length": 9, "seed": seed, "motion": "pan", "keyframe_every": 0}},
        "2": {"class_type": "RewardLoopKeyframeSSIM", "inputs": {"frames": ["1", 0], "keyframes": ["1", 1],
                                                                 "device": "cpu"}},
        "3": {"class_type": "RewardLoopRetryOpen",
              "inputs": {"seed": 0, "threshold": 0.85, "max_retries": 2, "mode": "first_pass", "seed_policy": "hash",
                         "reward_range": "0..1"}},
        "4": {"class_type": "RewardLoopRetryCollect", "inputs": {"loop": ["3", 0], "frames": ["1", 0],
                                                                 "reward": ["2", 0]}},
        # as in an expanded attempt: the close node gets the collector's already recorded loop control
        "5": {"class_type": "RewardLoopRetryClose", "inputs": {"loop": ["4", 0], "frames": ["1", 0],
                                                               "reward": ["2", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 4]}},
    }
    result = comfy.run(prompt)
    assert result.status == "success", result.error
    assert "4" in result.executed_nodes()
    log = result.outputs["6"]["text"][0]
    assert '"passed":true' in log.replace(" ", ""), log[:500]
