"""Inbetween's progress covers the keyframe flows (most of its time on CPU), not only frame synthesis, and a
cancel raised from the progress hook stops the flow estimation."""
from __future__ import annotations

import pytest
import torch

from rewardloop.motion import inbetween as ib
from rewardloop.motion.scene import render_scene


@pytest.fixture(scope="module")
def keys():
    return render_scene(torch.linspace(0, 1, 5), 96, 96, seed=3, motion="pan")  # 5 keyframes


@pytest.mark.parametrize("flow_init", ["temporal", "none"])
def test_progress_moves_during_flow_estimation_then_synthesis(keys, flow_init):
    calls = []
    out = ib.inbetween(keys, 3, "flow", "dis_fast", flow_init=flow_init, progress=lambda d, t: calls.append((d, t)))
    flows = ib.keyframe_flow_count(len(keys), "dis_fast", flow_init == "temporal")
    assert flows == (2 if flow_init == "temporal" else 1) * 2 * 4
    totals = {t for _, t in calls}
    assert totals == {flows + 12}  # 4 gaps x 3 new frames, one total from start to end
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == flows + 12
    assert done[:flows] == list(range(1, flows + 1))  # one step per flow, before any frame is synthesised
    assert out.shape[0] == 17


def test_crossfade_and_given_flows_count_frames_only(keys):
    calls = []
    ib.inbetween(keys, 3, "crossfade", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (12, 12)
    pair = ib.keyframe_flows(keys, "dis_fast")
    calls.clear()
    ib.inbetween(keys, 3, "flow", "dis_fast", flows=pair, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (12, 12)


def test_a_cancel_from_the_progress_hook_stops_flow_estimation(keys):
    class Cancelled(Exception):
        pass

    seen = []

    def hook(done, total):
        seen.append(done)
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        ib.inbetween(keys, 3, "flow", "dis_fast", progress=hook)
    assert seen == [1, 2]  # nothing after the cancel: no further flow, no synthesis


def test_bidirectional_flow_reports_each_pair(keys):
    calls = []
    from rewardloop.motion.optical_flow import bidirectional_flow

    bidirectional_flow(keys, "dis_fast", workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 8) for i in range(1, 9)]
    calls.clear()
    bidirectional_flow(keys, "dis_fast", workers=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 8) for i in range(1, 9)]
