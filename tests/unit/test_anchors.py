from __future__ import annotations

import pytest
import torch

from rewardloop.motion import anchors


def test_positions_parse_and_validate():
    assert anchors.parse_positions("[16, 0, 8, 8]", 17) == [0, 8, 16]
    assert anchors.parse_positions("", 5) == []
    with pytest.raises(ValueError, match="outside the clip"):
        anchors.parse_positions("[0, 17]", 17)
    with pytest.raises(ValueError, match="JSON list"):
        anchors.parse_positions("0, 8", 17)


def test_evenly_spaced_keeps_first_and_last():
    assert anchors.evenly_spaced_positions(65, 8) == list(range(0, 65, 8))
    assert anchors.evenly_spaced_positions(64, 8) == [0, 8, 16, 24, 32, 40, 48, 56, 63]
    assert anchors.evenly_spaced_positions(10, 0) == [0, 9]
    assert anchors.evenly_spaced_positions(1, 8) == [0]


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
        anchors.check_frames(torch.full((2, 4, 4, 3), float("nan")))
    with pytest.raises(ValueError, match="IMAGE batch"):
        anchors.check_frames(torch.zeros(0, 4, 4, 3))
    assert anchors.check_frames(torch.rand(2, 4, 4, 4)).shape[-1] == 3
    assert anchors.check_frames(torch.rand(2, 4, 4, 1)).shape[-1] == 3
