"""The retry-loop example workflows (workflows/Retry loop - *.json): the files are what their specs build against this
server's /object_info, and each one runs offline in the real server with the expected, pre-computable outcome."""
from __future__ import annotations


import pytest
from loop_workflows import EVERY, LENGTH, SEGMENT_PASS, SIZE, SPECS, SSIM_THRESHOLD
from test_loop import goods, run, runs_of
from workflow_specs import check_files_match_specs, template_path
from workflows import load, ui_to_api

from rewardloop import gating
from rewardloop.gating import perturb

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def prompts(comfy):
    """API prompts of the committed files (as the frontend would queue them)."""
    info = comfy.object_info()
    return {name: ui_to_api(load(template_path(name)), info) for name in SPECS}


def by_type(prompt: dict, class_type: str) -> list[str]:
    return [k for k, v in prompt.items() if v["class_type"] == class_type]


def ui_entries(result, key: str) -> list:
    """Every `key` UI entry in the history outputs (the final close node of a loop is an expanded copy whose id
    is not in the prompt)."""
    return [entry for out in result.outputs.values() for entry in out.get(key, [])]


def video_frames(comfy, result, save_id: str) -> int:
    import av  # installed with ComfyUI

    path = comfy.output_path(result.outputs[save_id]["images"][0])
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_workflow_files_match_their_specs(comfy):
    check_files_match_specs(SPECS, comfy.object_info())


def test_architectural_pan_workflow_runs_the_loop_to_its_known_outcome(comfy, prompts):
    prompt = prompts["loop_architectural_pan"]
    [open_id] = by_type(prompt, "RewardLoopRetryOpen")
    inputs = prompt[open_id]["inputs"]
    assert (inputs["threshold"], inputs["max_retries"]) == (SSIM_THRESHOLD, 5)
    expected = goods(inputs["seed"], 6, p=0.4, size=SIZE)
    result = run(comfy, prompt, timeout=600)
    assert result.status == "success", result.error
    [log] = ui_entries(result, "rewardloop_log")
    assert log["attempts_run"] == (expected.index(True) + 1 if True in expected else 6)
    assert log["passed"] == (True in expected)
    assert video_frames(comfy, result, by_type(prompt, "SaveVideo")[0]) == LENGTH


def test_per_segment_workflow_rerolls_each_segment_on_its_own(comfy, prompts):
    prompt = prompts["loop_keyframes_then_inbetween_per_segment"]
    result = run(comfy, prompt, timeout=600)
    assert result.status == "success", result.error
    [summary] = ui_entries(result, "rewardloop_summary")
    assert len(ui_entries(result, "rewardloop_log")) == 4
    opens = sorted(by_type(prompt, "RewardLoopRetryOpen"), key=lambda k: prompt[k]["inputs"]["seed"])
    expected = []
    for segment, open_id in enumerate(opens):  # segment i's generator draws with segment index i
        s = gating.make_settings(SSIM_THRESHOLD, 3, base_seed=prompt[open_id]["inputs"]["seed"])
        g = [perturb.segment_draw(s.seed(k), segment, SEGMENT_PASS, SIZE)[0] for k in range(4)]
        expected.append(g.index(True) + 1 if True in g else 4)
    assert [s["attempts_run"] for s in summary["segments"]] == expected
    assert summary["all_passed"] == all(s["passed"] for s in summary["segments"])
    generators = by_type(prompt, "RewardLoopPerturbedScene")
    assert sum(runs_of(result, g) for g in generators) == sum(expected)  # only failing segments re-ran
    assert runs_of(result, by_type(prompt, "RewardLoopProceduralScene")[0]) == 1
    assert video_frames(comfy, result, by_type(prompt, "SaveVideo")[0]) == LENGTH
    assert EVERY * len(opens) + 1 == LENGTH


def test_master_frames_workflow_gates_keyframes_then_interpolates_once(comfy, prompts):
    prompt = prompts["loop_master_frames_then_inbetween"]
    result = run(comfy, prompt, timeout=600)
    assert result.status == "success", result.error
    [log] = ui_entries(result, "rewardloop_log")
    assert 1 <= log["attempts_run"] <= 6 and len(log["attempts"]) == log["attempts_run"]
    assert runs_of(result, by_type(prompt, "RewardLoopInbetween")[0]) == 1  # outside the loop
    assert video_frames(comfy, result, by_type(prompt, "SaveVideo")[0]) == LENGTH

