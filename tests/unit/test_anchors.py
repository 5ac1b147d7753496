from __future__ import annotations

import pytest
import torch

from rewardloop.common.frames import check_frames
from rewardloop.common.keyframes import KeyframePositions
from rewardloop.motion import anchors


def test_positions_parse_and_validate():
    # One rule for every node: positions pair with keyframes in order, so unsorted or repeated ones are refused
    # (sorting them silently would pair a keyframe with the wrong frame).
    assert KeyframePositions.parse("[0, 8, 16]").check(17).to_list() == [0, 8, 16]
    with pytest.raises(ValueError, match="strictly increase"):
        KeyframePositions.parse("[16, 0, 8, 8]")
    assert KeyframePositions.parse("") is None
    with pytest.raises(ValueError, match="outside the clip"):
        KeyframePositions.parse("[0, 17]").check(17)
    with pytest.raises(ValueError, match="JSON list"):
        KeyframePositions.parse("0, 8")


def test_evenly_spaced_keeps_first_and_last():
    assert KeyframePositions.every(65, 8).to_list() == list(range(0, 65, 8))
    assert KeyframePositions.every(64, 8).to_list() == [0, 8, 16, 24, 32, 40, 48, 56, 63]
    assert KeyframePositions.every(10, 0).to_list() == [0, 9]
    assert KeyframePositions.every(1, 8).to_list() == [0]


def test_latent_frame_mapping_matches_causal_video_vaes():
    # Wan/Hunyuan: 4k+1 frames -> k+1 latents; latent 0 holds frame 0 alone.
    assert anchors.latent_length(33, 4) == 9 and anchors.latent_length(1, 4) == 1
    assert [anchors.latent_frame_of(f, 4) for f in (0, 1, 4, 5, 8, 32)] == [0, 1, 1, 2, 2, 8]
    assert anchors.latent_frame_of(7, 1) == 7


def test_video_mask_keeps_latents_holding_keyframes():
    mask = anchors.video_noise_mask([0, 8, 16], num_frames=17, temporal_stride=4, latent_hw=(2, 3))
    assert mask.shape == (1, 1, 5, 2, 3)
    assert mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_paste_anchors_is_bit_exact_and_checks_sizes():
    frames = torch.rand(9, 4, 5, 3)
    keys = torch.rand(2, 4, 5, 3)
    out = anchors.paste_anchors(frames, keys, [0, 8])
    assert torch.equal(out[0], keys[0]) and torch.equal(out[8], keys[1]) and torch.equal(out[1:8], frames[1:8])
    with pytest.raises(ValueError, match="resize"):
        anchors.paste_anchors(frames, torch.rand(2, 5, 5, 3), [0, 8])


def test_check_frames_rejects_nan_and_converts_channels():
    with pytest.raises(ValueError, match="NaN"):
        check_frames(torch.full((2, 4, 4, 3), float("nan")))
    with pytest.raises(ValueError, match="IMAGE batch"):
        check_frames(torch.zeros(0, 4, 4, 3))
    assert check_frames(torch.rand(2, 4, 4, 4)).shape[-1] == 3
    assert check_frames(torch.rand(2, 4, 4, 1)).shape[-1] == 3


def _strategy_calls(consistency, start=None, end=None, count=4):
    """Run a keyframe strategy with recording stand-ins for ComfyUI's sampler and VAE; latents are [n, 1] values."""
    calls, done = [], []

    def sample(latent, seed, denoise, shared_noise):
        calls.append((latent.flatten().tolist(), seed, denoise, shared_noise))
        return latent + seed / 100

    encode = lambda images: images.mean(dim=(1, 2, 3))[:, None]  # noqa: E731  (one latent per image)
    empty = lambda n: torch.zeros(n, 1)  # noqa: E731
    out = anchors.keyframe_latents(consistency, count, 10, 0.6, sample=sample, encode=encode, empty=empty,
                                   start=start, end=end, progress=done.append)
    return out.flatten().tolist(), calls, done


def test_keyframe_strategies_sample_as_documented():
    start, end = torch.full((1, 4, 4, 3), 0.2), torch.full((1, 4, 4, 3), 0.8)
    out, calls, done = _strategy_calls("img2img_chain", start)
    assert [c[1:] for c in calls] == [(11, 0.6, False), (12, 0.6, False), (13, 0.6, False)]  # keyframe i: seed + i
    assert out == pytest.approx([0.2, 0.31, 0.43, 0.56]) and done == [1, 1, 1, 1]
    out, calls, _ = _strategy_calls("img2img_chain")  # no start: the first keyframe from scratch
    assert calls[0] == ([0.0], 10, 1.0, False) and len(calls) == 4
    out, calls, done = _strategy_calls("seed_per_keyframe", start)
    assert calls[0][0] == pytest.approx([0.2] * 4) and calls[0][1:] == (10, 0.6, False) and done == [4]
    out, calls, _ = _strategy_calls("seed_per_keyframe")
    assert calls == [([0.0] * 4, 10, 1.0, False)]
    out, calls, _ = _strategy_calls("anchor_blend", start, end)
    assert calls[0][0] == pytest.approx([0.2, 0.4, 0.6, 0.8]) and calls[0][1:] == (10, 0.6, True)
    with pytest.raises(ValueError, match="anchor_blend needs both start_image and end_image"):
        _strategy_calls("anchor_blend", start)
    with pytest.raises(ValueError, match="consistency must be one of"):
        _strategy_calls("morph")
