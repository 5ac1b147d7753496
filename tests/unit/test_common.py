"""The pack's one home per concept (common/): keyframe positions, frame-batch validation, JSON-safe values, luma and
SSIM. Every node and core function calls these, so their rules are the pack's rules."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rewardloop.common.frames import check_frames
from rewardloop.common.image import luma, ssim, ssim_map
from rewardloop.common.jsonsafe import json_safe
from rewardloop.common.keyframes import MAX_FRAMES, KeyframePositions


# ---- keyframe positions ---------------------------------------------------------------------------------
def test_positions_parse_widget_text_sequences_and_blank():
    assert KeyframePositions.parse(" [0, 8, 16] ").to_list() == [0, 8, 16]
    assert KeyframePositions.parse((0, np.int64(4))).to_list() == [0, 4]  # any whole numbers, NumPy's too
    assert KeyframePositions.parse(None) is None and KeyframePositions.parse("  ") is None
    empty = KeyframePositions.parse("[]")
    assert empty is not None and len(empty) == 0 and not empty
    same = KeyframePositions([0, 5])
    assert KeyframePositions.parse(same) is same
    assert same == KeyframePositions.parse("[0, 5]") and same.to_json() == "[0, 5]" and same.clip_length == 6


@pytest.mark.parametrize("text, match", [
    ("[0, true]", "JSON list of frame indices"),       # booleans are not frame indices
    ("[0, 2.0]", "JSON list of frame indices"),        # neither are fractions, even whole-valued ones
    ("[0, 8", "JSON list of frame indices"),
    ('{"a": 1}', "JSON list of frame indices"),
    ("[8, 0]", "strictly increase"),                   # unsorted: never re-paired silently
    ("[0, 8, 8]", "strictly increase"),
    ("[-1, 4]", "counted from 0"),
    (f"[0, {10**12}]", f"longest clip the pack makes \\({MAX_FRAMES} frames\\)"),
])
def test_positions_rule_rejects_with_the_input_named(text, match):
    with pytest.raises(ValueError, match=match) as err:
        KeyframePositions.parse(text, "keyframe_positions")
    assert "keyframe_positions" in str(err.value)


def test_positions_checked_against_a_clip():
    pos = KeyframePositions([0, 4, 9])
    assert pos.check(10, 3, whole_clip=True) is pos
    with pytest.raises(ValueError, match=r"\[9\] are outside the clip \(frames 0..8\)"):
        pos.check(9)
    with pytest.raises(ValueError, match="3 keyframe positions for 2 keyframes"):
        pos.check(count=2)
    with pytest.raises(ValueError, match="must start at frame 0"):
        KeyframePositions([1, 9]).check(10, whole_clip=True)
    with pytest.raises(ValueError, match="must end at the clip's last frame"):
        KeyframePositions([0, 8]).check(10, whole_clip=True)


def test_every_spread_and_gaps():
    assert KeyframePositions.every(33, 8).to_list() == [0, 8, 16, 24, 32]
    assert KeyframePositions.every(10, 0).to_list() == [0, 9]  # 0 = first and last only, everywhere
    with pytest.raises(ValueError, match="keyframe_every must be >= 0"):
        KeyframePositions.every(10, -1)
    assert KeyframePositions.spread(1, 10).to_list() == [0]
    assert KeyframePositions.spread(2, 10).to_list() == [0, 9]
    assert KeyframePositions.spread(4, 10).to_list() == [0, 3, 6, 9]
    assert KeyframePositions.spread(5, 5).to_list() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="do not fit a clip of 3 frames"):
        KeyframePositions.spread(4, 3)
    assert KeyframePositions.with_gaps(3, 7).to_list() == [0, 8, 16]


# ---- frame batches ----------------------------------------------------------------------------------------
def test_frames_out_of_range_are_rejected_not_clamped():
    good = torch.rand(3, 8, 8, 3)
    assert check_frames(good) is good  # valid RGB comes back as is, no copy
    assert check_frames(good + 5e-4) is not None  # float round-off passes
    with pytest.raises(ValueError, match=r"must be in 0..1.*divide by 255"):
        check_frames(good * 255, "start_image")
    with pytest.raises(ValueError, match="start_image must be in 0..1"):
        check_frames(good - 0.5, "start_image")


def test_frames_channels_sizes_and_dtype():
    rgba = torch.rand(2, 8, 8, 4)
    assert check_frames(rgba).shape == (2, 8, 8, 3) and check_frames(rgba, rgb=False) is rgba
    assert torch.equal(check_frames(rgba[..., :1])[..., 2], rgba[..., 0])
    with pytest.raises(ValueError, match="at least 16x16"):
        check_frames(torch.rand(2, 8, 8, 3), min_size=16)
    with pytest.raises(ValueError, match="pixel limit"):
        check_frames(torch.zeros(1, 64, 64, 3), max_pixels=1000)
    with pytest.raises(ValueError, match="uint8"):
        check_frames(torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
    frames = torch.rand(70, 8, 8, 3)
    frames[66, 1, 1, 0] = math.inf
    with pytest.raises(ValueError, match="first at frame 66"):
        check_frames(frames)


# ---- JSON -----------------------------------------------------------------------------------------------------
def test_json_safe_writes_every_non_finite_number_as_null():
    value = {"a": math.nan, 1: [math.inf, -math.inf, 2.5], "t": torch.tensor([1.0, math.nan]),
             "s": torch.tensor(3.0), "n": np.float32(np.nan), "arr": np.array([[1, 2]]), "ok": True, "p": None,
             "obj": object}
    out = json_safe(value)
    text = json.dumps(out, allow_nan=False)
    assert out["a"] is None and out["1"] == [None, None, 2.5]
    assert out["t"] == [1.0, None] and out["s"] == 3.0 and out["n"] is None and out["arr"] == [[1, 2]]
    assert out["ok"] is True and out["p"] is None and "object" in out["obj"] and "NaN" not in text


def test_the_pack_uses_one_json_rule():
    """Reward bundles, retry-loop logs and trainer metrics all write NaN as null."""
    from rewardloop.gating import json_safe as gating_json_safe
    from rewardloop.rewards import RewardResult
    from rewardloop.trainers import reporting

    assert gating_json_safe is json_safe and reporting.json_safe is json_safe
    res = RewardResult("x", math.nan, torch.tensor([math.nan, 1.0]), torch.tensor([0.0, 1.0]), "frame", (0.0, math.inf))
    assert res.to_dict()["value"] is None and res.to_dict()["per_item"] == [None, 1.0]
    assert res.to_dict()["range"] == [0.0, None]


# ---- luma and SSIM -----------------------------------------------------------------------------------------------
def test_luma_is_rec601():
    frames = torch.rand(2, 5, 6, 3)
    expected = frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114
    assert torch.allclose(luma(frames), expected, atol=1e-6)
    assert torch.equal(luma(frames[..., :1]), frames[..., 0])
    assert torch.allclose(luma(torch.cat([frames, torch.rand(2, 5, 6, 1)], -1)), expected, atol=1e-6)


def test_ssim_uses_windows_inside_the_image_as_skimage_does():
    from skimage.metrics import structural_similarity

    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 30, 41, 3, generator=gen)
    b = (a + 0.2 * torch.rand(2, 30, 41, 3, generator=gen)).clamp(0, 1)
    smap = ssim_map(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2))
    assert smap.shape == (2, 3, 20, 31)  # 10 pixels fewer per axis: no padded border
    ours = ssim(a, b)
    for i in range(2):
        ref = structural_similarity(a[i].double().numpy(), b[i].double().numpy(), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1, channel_axis=-1)
        assert float(ours[i]) == pytest.approx(ref, abs=1e-5)
    assert torch.allclose(ssim(a, a), torch.ones(2))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:, :10], b[:, :10])
