"""Motion nodes: schemas, and each node's execute() on small inputs (the adapters call the core)."""
from __future__ import annotations

import importlib
import json

import pytest
import torch

from rewardloop.motion import scene


@pytest.fixture(scope="module")
def m(comfy_inprocess):
    return importlib.import_module("rewardloop.nodes.motion")


@pytest.fixture(scope="module")
def clip():
    return scene.render_scene(scene.frame_times(9), 96, 64, seed=4, motion="pan")


def test_schemas(m):
    ids = [cls.GET_SCHEMA().node_id for cls in m.NODES]
    assert ids == ["RewardLoopInbetween", "RewardLoopFlowVisualize", "RewardLoopWindowSplit",
                   "RewardLoopWindowMerge", "RewardLoopAnchorFrames"]
    assert all(cls.GET_SCHEMA().category == "RewardLoop/Motion" for cls in m.NODES)


def test_inbetween_node(m, clip):
    keys = clip[[0, 4, 8]]
    out = m.RewardLoopInbetween.execute(keys, 3, "flow", "dis_fast").result[0]
    assert out.shape == (9, 64, 96, 3) and torch.equal(out[[0, 4, 8]], keys)
    uneven = m.RewardLoopInbetween.execute(keys, 3, "crossfade", "dis_fast", keyframe_positions="[0, 2, 8]").result[0]
    assert uneven.shape[0] == 9 and torch.equal(uneven[[0, 2, 8]], keys)
    with pytest.raises(ValueError, match="JSON list"):
        m.RewardLoopInbetween.execute(keys, 3, "flow", "dis_fast", keyframe_positions="0,2,8")


def test_inbetween_node_motion_options(m, clip):
    """motion, flow_init, temporal_mix and scene_cuts are optional inputs whose defaults are the core's, and
    they reach the core."""
    import inspect

    from rewardloop.motion import inbetween, optical_flow as flow

    inputs = {i.id: i for i in m.RewardLoopInbetween.GET_SCHEMA().inputs}
    core = inspect.signature(inbetween.inbetween).parameters
    for name in ("scene_cuts", "motion", "flow_init", "temporal_mix"):
        assert inputs[name].optional and inputs[name].tooltip, name
        assert inputs[name].default == core[name].default, name
    assert inputs["scene_cuts"].default == "extrapolate"
    keys = clip[[0, 4, 8]]
    out = m.RewardLoopInbetween.execute(keys, 3, "flow", "dis_fast", motion="linear", flow_init="none",
                                        temporal_mix=0.5).result[0]
    pair = flow.bidirectional_flow(keys, "dis_fast")
    assert torch.equal(out, inbetween.inbetween(keys, 3, "flow", flows=pair, motion="linear", temporal_mix=0.5))
    assert not torch.equal(out, m.RewardLoopInbetween.execute(keys, 3, "flow", "dis_fast").result[0])


def test_flow_visualize_node(m, clip):
    color, occluded = m.RewardLoopFlowVisualize.execute(clip[:3], "dis_fast", 0.0).result
    assert color.shape == (2, 64, 96, 3) and occluded.shape == (2, 64, 96)
    assert float(color.min()) >= 0 and float(color.max()) <= 1
    assert set(occluded.unique().tolist()) <= {0.0, 1.0}


def test_window_split_merge_nodes(m):
    frames = torch.rand(40, 8, 8, 3)
    w, clips, ranges = m.RewardLoopWindowSplit.execute(frames, 16, 4).result
    assert json.loads(ranges) == [[0, 16], [12, 28], [24, 40]] and len(clips) == 3
    merged = m.RewardLoopWindowMerge.execute([w]).result[0]
    assert torch.allclose(merged, frames, atol=1e-6)
    brighter = m.RewardLoopWindowMerge.execute([w], [c * 0 + 1 for c in clips]).result[0]
    assert torch.allclose(brighter, torch.ones_like(frames))
    with pytest.raises(ValueError, match="2 processed windows for 3"):
        m.RewardLoopWindowMerge.execute([w], clips[:2])
    assert m.RewardLoopWindowSplit.validate_inputs(window=8, overlap=8) != True  # noqa: E712


def test_anchor_frames_node(m, clip):
    start, mid, end = clip[:1], clip[3:5], clip[8:9]
    keys, pos = m.RewardLoopAnchorFrames.execute(start, end, 17, mid).result
    assert torch.equal(keys, torch.cat([start, mid, end]))  # pixels untouched
    assert json.loads(pos) == [0, 5, 11, 16]
    keys2, pos2 = m.RewardLoopAnchorFrames.execute(start, end, 65).result
    assert torch.equal(keys2, torch.cat([start, end])) and json.loads(pos2) == [0, 64]
    with pytest.raises(ValueError, match="differ in size"):
        m.RewardLoopAnchorFrames.execute(start, torch.rand(1, 32, 32, 3), 9)
    with pytest.raises(ValueError, match="exactly one"):
        m.RewardLoopAnchorFrames.execute(clip[:2], end, 9)


def test_inbetween_positions_beyond_any_clip_are_a_clear_error(m):
    keys = torch.rand(2, 32, 32, 3)
    with pytest.raises(ValueError, match=r"keyframe_positions: frame 1000000000000 is beyond the longest clip"):
        m.RewardLoopInbetween.execute(keys, 3, "flow", "dis_fast", keyframe_positions="[0, 1000000000000]")


def test_keyframe_positions_widget_parsing_shared_by_every_node_family():
    from rewardloop.common.keyframes import KeyframePositions

    parse_keyframe_positions = KeyframePositions.parse
    assert parse_keyframe_positions("[0, 8, 16]").to_list() == [0, 8, 16]
    assert parse_keyframe_positions("  ") is None and parse_keyframe_positions(None) is None
    for bad in ("[0, 8", "[0, true]", "[0.5, 2]", '{"a": 1}', "3"):
        with pytest.raises(ValueError, match="keyframe_positions must be a JSON list"):
            parse_keyframe_positions(bad)
