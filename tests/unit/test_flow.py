"""Flow core: accuracy against the scene's exact ground truth, the warp direction convention,
forward-backward occlusion, splatting, RAFT loading from the model folder, visualisation, bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rewardloop import modelfiles
from rewardloop.motion import optical_flow as flow, scene, warp
from rewardloop.motion.occlusion import fb_occlusion_mask

W = H = 192
TIMES = torch.tensor([0.2, 0.26, 0.6, 0.66])


@pytest.fixture(scope="module")
def pairs():
    frames = scene.render_scene(TIMES, W, H, seed=0, motion="pan")
    gt = scene.ground_truth_flow(TIMES[0::2], TIMES[1::2], W, H, seed=0, motion="pan")
    return frames[0::2], frames[1::2], gt


def _epe(f, gt):
    return (f - gt.flow).norm(dim=-1)[gt.valid].mean().item()


# Measured EPE (px) on these pairs (mean |GT flow| 2.58 px): ultrafast 0.97, fast 0.83, medium 0.37,
# farneback 0.47. Thresholds leave ~30% margin for OpenCV version drift.
@pytest.mark.parametrize("method, limit", [("dis_ultrafast", 1.3), ("dis_fast", 1.1), ("dis_medium", 0.5),
                                           ("farneback", 0.65)])
def test_epe_against_ground_truth(pairs, method, limit):
    a, b, gt = pairs
    f = flow.compute_flow(a, b, method)
    assert f.shape == (2, H, W, 2) and f.dtype == torch.float32
    assert _epe(f, gt) < limit
    assert _epe(f, gt) < 0.5 * _epe(torch.zeros_like(f), gt)


def test_shift_sign_convention():
    """dst is src moved 4 px right and 2 px down: flow src->dst is (+4, +2)."""
    g = torch.Generator().manual_seed(0)
    tex = F.interpolate(torch.rand(1, 3, 24, 24, generator=g), size=(96, 96), mode="bicubic", align_corners=False)
    src = tex[..., 8:72, 8:72].permute(0, 2, 3, 1).clamp(0, 1)
    dst = tex[..., 6:70, 4:68].permute(0, 2, 3, 1).clamp(0, 1)
    f = flow.compute_flow(src, dst, "dis_medium")[0, 16:48, 16:48]
    assert abs(f[..., 0].median().item() - 4) < 0.3 and abs(f[..., 1].median().item() - 2) < 0.3


def test_backward_warp_direction(pairs):
    """Sampling dst at x + flow(src->dst) rebuilds src; warping the other way does not."""
    a, b, gt = pairs
    right = (warp.backward_warp(b, gt.flow) - a).abs().mean(-1)[gt.valid].mean()
    wrong = (warp.backward_warp(a, gt.flow) - b).abs().mean(-1)[gt.valid].mean()
    assert right < 0.01 and wrong > 4 * right  # measured 0.005 vs 0.047


def test_backward_warp_identity_and_padding():
    img = torch.rand(2, 16, 20, 3)
    assert torch.allclose(warp.backward_warp(img, torch.zeros(2, 16, 20, 2)), img, atol=1e-6)
    far = torch.full((2, 16, 20, 2), 100.0)
    assert not warp.inside_mask(far).any()
    assert torch.allclose(warp.backward_warp(img, far, padding_mode="zeros"), torch.zeros_like(img))
    assert torch.allclose(warp.backward_warp(img, far), img[:, -1:, -1:].expand_as(img))  # border clamp


def test_forward_splat(pairs):
    a, b, gt = pairs
    out, cov = warp.forward_splat(a, gt.flow)
    covered = cov > 0.5
    assert covered.float().mean() > 0.9
    assert (out - b).abs().mean(-1)[covered].mean() < 0.012  # measured 0.008
    same, cov0 = warp.forward_splat(a, torch.zeros_like(gt.flow))
    assert torch.allclose(same, a, atol=1e-5) and torch.allclose(cov0, torch.ones_like(cov0))


def test_softmax_splat_prefers_higher_weight():
    img = torch.zeros(1, 4, 4, 1)
    img[0, 0, 0] = 1.0  # lands on (2, 0) together with the pixel already at (2, 0)
    fl = torch.zeros(1, 4, 4, 2)
    fl[0, 0, 0, 0] = 2.0
    w = torch.zeros(1, 4, 4)
    w[0, 0, 0] = 10.0
    soft, _ = warp.forward_splat(img, fl, w, mode="softmax")
    avg, cov = warp.forward_splat(img, fl)
    assert soft[0, 0, 2, 0] > 0.99 and abs(avg[0, 0, 2, 0].item() - 0.5) < 1e-5
    assert cov[0, 0, 0] == 0  # the moved pixel left a hole


def _square_scene(shift: int):
    """A textured square moving `shift` px right over a static textured background (192x192)."""
    g = torch.Generator().manual_seed(1)
    bg = F.interpolate(torch.rand(1, 3, 64, 64, generator=g), size=(192, 192), mode="bicubic").clamp(0, 1)
    fg = F.interpolate(torch.rand(1, 3, 20, 20, generator=g), size=(64, 64), mode="bicubic").clamp(0, 1)
    frames = bg.repeat(2, 1, 1, 1)
    frames[0, :, 64:128, 48:112] = fg[0]
    frames[1, :, 64:128, 48 + shift:112 + shift] = fg[0]
    return frames.permute(0, 2, 3, 1).contiguous()


def test_occlusion_mask_catches_covered_background():
    frames = _square_scene(6)
    pair = flow.bidirectional_flow(frames, "dis_medium")
    assert pair.forward.shape == (1, 192, 192, 2) and pair.backward.shape == (1, 192, 192, 2)
    assert abs(pair.forward[0, 80:112, 64:96, 0].median().item() - 6) < 0.5
    vf, vb = pair.occlusion()
    covered = vf[0, 72:120, 113:117]  # background right of the square, hidden at t1
    uncovered = vb[0, 72:120, 49:53]  # background left of the square at t1, hidden at t0
    free = torch.cat([vf[0, 8:48].reshape(-1), vf[0, 150:184].reshape(-1)])
    assert covered.mean() < 0.3 and uncovered.mean() < 0.3
    assert free.mean() > 0.95
    assert torch.equal(pair.valid_forward, fb_occlusion_mask(pair.forward, pair.backward))


def test_occlusion_mask_on_scene_agrees_with_ground_truth(pairs):
    a, b, gt = pairs
    pair = flow.bidirectional_flow(torch.stack([a[0], b[0]]), "dis_medium")
    valid = pair.valid_forward[0].bool()
    leaving = ~warp.inside_mask(gt.flow[:1])[0]
    assert valid[gt.valid[0]].float().mean() > 0.97  # measured 0.999
    assert valid[leaving].float().mean() < 0.2  # pixels leaving the frame; measured 0.01


def _raft_folder(tmp_path, name="raft_small_C_T_V2-01064c6d.pth"):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    (tmp_path / "raft").mkdir()
    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft" / name)
    return tmp_path


def _raft(root) -> flow.RaftModels:
    return flow.RaftModels(modelfiles.ModelRoots([root]))


def test_raft_loads_from_model_folder(tmp_path):
    raft = _raft(_raft_folder(tmp_path))
    frames = _square_scene(4)[:, :64, :80]
    f = flow.compute_flow(frames[:1], frames[1:], "raft", device="cpu", raft=raft)
    assert f.shape == (1, 64, 80, 2) and torch.isfinite(f).all()
    assert len(raft) == 1
    flow.compute_flow(frames[:1], frames[1:], "raft", device="cpu", raft=raft)
    assert len(raft) == 1  # cached, not reloaded
    raft.clear()
    assert len(raft) == 0


def test_raft_missing_weights(tmp_path):
    frames = torch.rand(2, 32, 32, 3)
    with pytest.raises(modelfiles.WeightNotFound, match="raft_large_C_T_SKHT_V2-ff5fadd5.pth") as e:
        flow.compute_flow(frames[:1], frames[1:], "raft", raft=_raft(tmp_path))
    assert "download.pytorch.org" in str(e.value) and str(tmp_path / "raft") in str(e.value)


def test_raft_wrong_checkpoint(tmp_path):
    (tmp_path / "raft").mkdir()
    torch.save({"weight": torch.zeros(3)}, tmp_path / "raft" / "raft_large_C_T_V2-1bb1363a.pth")
    frames = torch.rand(2, 32, 32, 3)
    with pytest.raises(ValueError, match="not a torchvision raft_large checkpoint"):
        flow.compute_flow(frames[:1], frames[1:], "raft", raft=_raft(tmp_path))


def test_flow_to_color():
    fl = torch.zeros(2, 8, 8, 2)
    fl[0, :, :4, 0] = 3.0
    fl[1, :, :4, 1] = -6.0
    c = flow.flow_to_color(fl)
    assert c.shape == (2, 8, 8, 3) and c.dtype == torch.float32
    assert float(c.min()) >= 0 and float(c.max()) <= 1
    assert torch.allclose(c[0, 0, 7], torch.ones(3))  # zero flow is white
    assert not torch.allclose(c[0, 0, 0], c[1, 0, 0])  # direction -> hue
    # A fixed scale makes a frame's colours independent of the rest of the batch.
    alone = flow.flow_to_color(fl[:1], max_magnitude=10.0)
    together = flow.flow_to_color(fl, max_magnitude=10.0)[:1]
    assert torch.equal(alone, together)


@pytest.mark.parametrize("src, dst, method, match", [
    (torch.rand(1, 32, 32, 3), torch.rand(1, 32, 40, 3), "dis_fast", "same shape"),
    (torch.rand(1, 32, 32, 3), torch.rand(1, 32, 32, 3), "lucas", "Unknown flow method"),
    (torch.full((1, 32, 32, 3), float("nan")), torch.rand(1, 32, 32, 3), "dis_fast", "NaN"),
    (torch.rand(1, 4, 4, 3), torch.rand(1, 4, 4, 3), "dis_fast", "at least 8x8"),
    (torch.rand(32, 32, 3), torch.rand(32, 32, 3), "dis_fast", r"\[N,H,W,C\]"),
])
def test_bad_input(src, dst, method, match):
    with pytest.raises(ValueError, match=match):
        flow.compute_flow(src, dst, method)


def test_bidirectional_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2 frames"):
        flow.bidirectional_flow(torch.rand(1, 16, 16, 3))


def test_bidirectional_flow_pairs_match_single_calls_with_and_without_guess():
    """bidirectional_flow converts each frame once and indexes the pairs; every pair, guided or not, must be
    exactly what compute_flow gives for that pair alone (an all-zero guess = no guess)."""
    frames = scene.render_scene(scene.frame_times(4), 64, 48, seed=5, motion="pan")
    plain = flow.bidirectional_flow(frames, "dis_fast")
    guess = flow.FlowPair(plain.forward * 0.8, plain.backward * 0.8, "guess")
    guess.forward[1] = 0
    guided = flow.bidirectional_flow(frames, "dis_fast", init=guess)
    for i in range(3):
        a, b = frames[i:i + 1], frames[i + 1:i + 2]
        assert torch.equal(plain.forward[i:i + 1], flow.compute_flow(a, b, "dis_fast"))
        assert torch.equal(plain.backward[i:i + 1], flow.compute_flow(b, a, "dis_fast"))
        assert torch.equal(guided.forward[i:i + 1], flow.compute_flow(a, b, "dis_fast", init=guess.forward[i:i + 1]))
        assert torch.equal(guided.backward[i:i + 1], flow.compute_flow(b, a, "dis_fast", init=guess.backward[i:i + 1]))
    assert torch.equal(guided.forward[1], plain.forward[1]) and not torch.equal(guided.forward[0], plain.forward[0])
    with pytest.raises(ValueError, match="Initial flows must be"):
        flow.bidirectional_flow(frames, "dis_fast", init=flow.FlowPair(guess.forward[:2], guess.backward[:2], "x"))


def test_a_threads_flow_does_not_depend_on_the_frame_size_it_saw_before():
    """One thread keeps its DIS objects between calls; an object first used at another frame size must not change
    the result (it did by up to a pixel: one object per size now)."""
    frames = scene.render_scene(scene.frame_times(6), 128, 96, seed=7, motion="pan")
    fresh = flow.bidirectional_flow(frames, "dis_fast", workers=2)  # new pool threads, new objects
    small = scene.render_scene(scene.frame_times(2), 64, 48, seed=5, motion="pan")
    flow.compute_flow(small[:1], small[1:], "dis_fast")  # this thread meets 64x48 first
    again = flow.bidirectional_flow(frames, "dis_fast", workers=1)  # this thread's objects
    assert torch.equal(fresh.forward, again.forward) and torch.equal(fresh.backward, again.backward)
