"""Validity: on footage-like video (the procedural parallax pan), every corruption a scorer is meant to catch
scores worse than the original. Only the corruptions a scorer's definition targets are asserted for it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop.rewards import Clip, score

pytestmark = pytest.mark.usefixtures("reward_models")

WINDOWS = (24, 4)  # motion.windows plan for 48 frames: [0,24) [20,44) [24,48)


@pytest.fixture(scope="module")
def variants(scene_frames, corrupt):
    f = scene_frames
    return {"original": f, "shuffle": corrupt.shuffle(f), "jitter": corrupt.jitter(f),
            "texture_warp": corrupt.texture_warp(f), "flicker": corrupt.flicker(f),
            "loop": corrupt.artificial_loop(f), "seam": corrupt.seam_at(f, 22), "blur": corrupt.blur(f),
            "tilt": corrupt.tilt_jitter(f)}


@pytest.fixture(scope="module")
def clips(variants, scene_frames):
    keyframes = scene_frames[[0, -1]]
    return {k: Clip(v, keyframes=keyframes, windows=WINDOWS) for k, v in variants.items()}


def _values(clips, name, **options):
    return {k: score(name, c, **options).value for k, c in clips.items()}


CASES = {
    "temporal_lpips": ["shuffle", "texture_warp", "flicker"],
    "flow_smoothness": ["shuffle", "texture_warp", "flicker"],
    "structure_constancy": ["shuffle", "texture_warp", "flicker", "jitter"],
    "keyframe_ssim": ["shuffle", "jitter", "texture_warp", "flicker", "loop", "seam", "blur", "tilt"],
    "seam_consistency": ["seam", "shuffle", "flicker", "jitter"],
    "loop_break": ["loop"],
    "framing": ["tilt", "jitter"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_corruptions_score_worse(name, clips):
    values = _values(clips, name)
    for bad in CASES[name]:
        assert values[bad] < values["original"], (name, bad, values)


def test_temporal_lpips_charges_the_change_the_flow_cannot_vouch_for(clips, scene_frames):
    """A coarse wobble (a new smooth displacement in every frame) is followed by the flow in most pixels and breaks
    its forward-backward check in the rest: those pixels are charged their raw change (leaving them out, as the
    warping error of Lai et al. does, let this wobble cost almost nothing)."""
    from rewardloop.rewards import corruptions

    clean = score("temporal_lpips", clips["original"])
    wobble = score("temporal_lpips", Clip(corruptions.structure_warp(scene_frames, 0)))
    assert wobble.details["valid_fraction_mean"] < clean.details["valid_fraction_mean"] - 0.05
    assert clean.value - wobble.value > 0.02, (clean.value, wobble.value)


def test_novelty_after_k_penalises_loops_and_incoherent_jumps(clips):
    results = {k: score("novelty_after_k", c, k=24) for k, c in clips.items()}
    values = {k: r.value for k, r in results.items()}
    assert results["original"].details["novelty_mean"] > 0.02  # the pan keeps revealing new content
    for bad in ("loop", "shuffle", "jitter", "flicker"):
        assert values[bad] < values["original"], (bad, values)
    # incoherent copies pay a larger coherence tax than the pan (not only a lower novelty)
    for bad in ("shuffle", "jitter", "flicker"):
        assert results[bad].details["tax"] > results["original"].details["tax"], bad


def test_loop_break_is_inverted_when_the_prompt_asks_for_a_loop(clips):
    asks = {k: score("loop_break", c.with_inputs(prompt="a seamless looping animation")).value
            for k, c in clips.items() if k in ("original", "loop")}
    assert asks["loop"] > asks["original"]
    plain = score("loop_break", clips["loop"])
    # an exact 6-frame loop of a slow pan: the clip comes back almost all the way (rho ~0.8)
    assert plain.value < 0.3 and plain.details["dominant_period_frames"] == 6


def test_seam_score_locates_the_bad_join(clips):
    res = score("seam_consistency", clips["seam"])
    clean = score("seam_consistency", clips["original"])
    assert res.details["seam_pairs"] == [(19, 23), (23, 43)]
    assert res.details["worst_pair"][0] == 21  # frame 22 restarts earlier: the transition 21 -> 22 jumps
    # the corrupted join is the first one: it scores below the other join and far below the same join unbroken
    assert float(res.per_item[0]) < float(res.per_item[1])
    assert float(res.per_item[0]) < 0.5 * float(clean.per_item[0])


def test_fvd_lite_orders_corruptions_below_the_original():
    from rewardloop.motion.scene import render_scene

    T = 33
    original = render_scene(torch.linspace(0, 0.4, T), 128, 96, seed=3, motion="pan")
    reference = render_scene(torch.linspace(0.5, 0.9, T), 128, 96, seed=3, motion="pan")
    shuffled = original[torch.randperm(T, generator=torch.Generator().manual_seed(1))]
    frozen = original[:1].expand(T, -1, -1, -1)
    ref_clip = Clip(reference)
    from rewardloop.rewards.fvd_lite import i3d_features

    ref_feats, _ = i3d_features(ref_clip, max_crops=2)
    values = {k: score("fvd_lite", Clip(v), reference_features=ref_feats, max_crops=2).value
              for k, v in {"original": original, "shuffle": shuffled, "frozen": frozen}.items()}
    assert values["shuffle"] < values["original"] and values["frozen"] < values["original"], values
    via_frames = score("fvd_lite", Clip(original, reference=reference), max_crops=2)
    assert via_frames.value == pytest.approx(values["original"], rel=1e-6)  # frames or features: same answer
    assert via_frames.per_item.mean() == pytest.approx(via_frames.value, rel=1e-5)


def _face_clip(img: np.ndarray, cx: int, cy: int, n: int = 8, size: int = 160) -> torch.Tensor:
    x = torch.from_numpy(np.array(img)).float() / 255
    if x.ndim == 2:
        x = x[..., None].expand(-1, -1, 3)
    return torch.stack([x[cy - size // 2 + i:cy + size // 2 + i, cx - size // 2 + 2 * i:cx + size // 2 + 2 * i]
                        for i in range(n)])


def test_identity_lock_face_swap_and_no_face(scene_frames):
    """Real MTCNN detections (the wheel's weights) on skimage's astronaut and cameraman photos. The embedding
    net has random weights here (VGGFace2 weights are not obtainable offline), so only the ordering is
    asserted; with random weights every face embeds almost alike and the margin is small."""
    import skimage.data

    same = _face_clip(skimage.data.astronaut(), 224, 117)
    other = _face_clip(skimage.data.camera(), 226, 155)
    swap = torch.cat([same[:4], other[4:]])
    r_same = score("identity_lock", Clip(same), stride=1)
    r_swap = score("identity_lock", Clip(swap), stride=1)
    assert r_same.applicable and r_same.details["face_fraction"] == 1.0
    assert r_swap.value < r_same.value
    assert float(r_swap.per_item[4:].max()) < float(r_swap.per_item[:4].min())
    mixed = score("identity_lock", Clip(torch.cat([same[:3], torch.full((2, 160, 160, 3), 0.5), same[3:5]])), stride=1)
    assert mixed.applicable and mixed.details["face_fraction"] == pytest.approx(5 / 7)  # some frames without a face
    assert torch.isnan(mixed.per_item[3:5]).all() and "no face in 2" in mixed.note
    none = score("identity_lock", Clip(scene_frames[:9]))
    assert not none.applicable and none.value != none.value  # NaN, not 0
    assert "face" in none.note


def test_identity_keyframes_equal_to_their_frames_are_detected_once(monkeypatch):
    """Inbetweening keeps its anchors: keyframes that are the very frames at their positions are not run
    through MTCNN and the embedding net a second time, with the same result as when they are."""
    import skimage.data

    from rewardloop.rewards import face_detect

    frames = _face_clip(skimage.data.astronaut(), 224, 117, n=6)
    seen = []
    real = face_detect.detect
    monkeypatch.setattr(face_detect, "detect", lambda m, x: seen.append(x.shape[0]) or real(m, x))
    exact = score("identity_lock", Clip(frames, keyframes=frames[[0, -1]].clone()), stride=2)
    # 1e-6 off: other tensors (so detected again), the same 8-bit images MTCNN and the crops are made from.
    nudged = score("identity_lock", Clip(frames, keyframes=frames[[0, -1]] * (1 - 1e-6)), stride=2)
    probes = len(exact.details["probe_frames"])
    assert seen == [probes, probes + 2]
    assert exact.applicable and exact.details["face_fraction"] == 1.0
    # Equal up to float rounding (the embedding net sees batches of other sizes).
    assert exact.value == pytest.approx(nudged.value, abs=1e-6)
    assert torch.allclose(exact.per_item, nudged.per_item, atol=1e-6)


def test_caption_similarity_prefers_matching_captions_with_real_minilm(scene_frames):
    clip = Clip(scene_frames, prompt="a red car driving down a city street")
    good = score("caption_consistency", clip, num_samples=2, captions=["a red car on a street in a city"] * 2)
    bad = score("caption_consistency", clip, num_samples=2, captions=["a bowl of soup on a wooden table"] * 2)
    assert good.value > bad.value + 0.3
    assert good.details["similarity"] == "bi-encoder cosine"


def test_identity_detects_on_a_downscaled_copy_in_one_call_and_crops_full_resolution(monkeypatch):
    """Speed design of identity_lock: MTCNN sees probe frames and keyframes together, scaled to a long side
    <= DETECT_SIZE; the face found there is cut from the full-resolution frame at the same place."""
    import skimage.data

    from rewardloop.rewards import face_detect, identity

    face = _face_clip(skimage.data.astronaut(), 224, 117, n=6)  # 160x160 crops, face ~60% of the frame
    big = torch.nn.functional.interpolate(face.permute(0, 3, 1, 2), size=(640, 640), mode="bilinear",
                                          align_corners=False).permute(0, 2, 3, 1).clamp(0, 1)
    seen = []
    real = face_detect.detect
    monkeypatch.setattr(face_detect, "detect", lambda m, x: seen.append(x.shape) or real(m, x))
    res = score("identity_lock", Clip(big, keyframes=big[[1, -2]]), stride=2)  # keyframes unlike frames 0 / 5
    assert len(seen) == 1 and seen[0][0] == len(res.details["probe_frames"]) + 2  # probes + 2 keyframes, one call
    assert max(seen[0][1:3]) <= identity.DETECT_SIZE
    assert res.applicable and res.details["face_fraction"] == 1.0
    # The box found at 320 px, mapped back, is where a full-resolution detection puts it: MTCNN's own
    # frame-to-frame jitter at one scale is ~4% of the box, so IoU > 0.85 is "the same face, same place".
    down, p_down = identity.largest_faces(Clip(big), big[:3])
    full, p_full = identity.largest_faces(Clip(big), big[:3], detect_size=0)
    assert (p_down > 0.9).all() and (p_full > 0.9).all()
    lo, hi = torch.maximum(down[:, :2], full[:, :2]), torch.minimum(down[:, 2:], full[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(1)
    area = lambda b: (b[:, 2:] - b[:, :2]).prod(1)  # noqa: E731
    iou = inter / (area(down) + area(full) - inter)
    assert iou.min() > 0.85, (iou, down, full)
    assert (full[:, 2] - full[:, 0]).min() > 250  # the face fills most of the 640 px frame: not a speck
    small, _ = identity.largest_faces(Clip(face), face[:2])  # 160 px frames are not scaled at all
    assert torch.allclose(small, identity.largest_faces(Clip(face), face[:2], detect_size=0)[0])


def test_seam_counts_a_join_jump_even_beside_a_bigger_natural_change():
    """A join is the sum of how much its transitions stand out from their neighbours, not its single worst one: a
    clip whose overlap already holds a fast move (a natural big change) still scores lower once that join also
    jumps back a few frames."""
    from rewardloop.motion.scene import render_scene
    from rewardloop.rewards import corruptions

    steps = torch.full((47,), 0.01)
    steps[20] = 0.06  # one fast move in the first join's zone (pairs 19..23 with windows 24/4)
    times = torch.cat([torch.zeros(1), steps.cumsum(0)])
    fast = render_scene(times, 128, 96, seed=3, motion="pan")
    joined = corruptions.seam(fast, at=22, skip=3)  # jumps back 3 steps of 0.01: less than the fast move
    clean, broken = (score("seam_consistency", Clip(v, windows=WINDOWS)) for v in (fast, joined))
    assert clean.details["worst_pair"][0] == broken.details["worst_pair"][0] == 20  # the fast move stands out most
    assert float(broken.per_item[0]) < float(clean.per_item[0])


def test_seam_sees_a_lighting_jump_the_per_pixel_change_hides():
    """A window that starts under other lighting, inside content that changes a lot every frame (untrackable
    motion): the per-pixel change barely stands out there, the frame's mean colour does."""
    from rewardloop.rewards import corruptions
    from rewardloop.rewards import seam as S

    noise = 0.3 + 0.4 * torch.rand(48, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    lit = corruptions.lighting_jump(noise, at=22)  # frames 22.. brighter: pair 21 in the first join's zone
    clean, broken = (score("seam_consistency", Clip(v, windows=WINDOWS)) for v in (noise, lit))
    assert broken.details["worst_pair"][0] == 21
    assert float(broken.per_item[0]) < 0.5 * float(clean.per_item[0])
    c = Clip(lit, windows=WINDOWS)  # the change and motion terms alone would hardly move this join
    a, b = broken.details["seam_pairs"][0]
    without = torch.maximum(S.local_excess(S.transition_change(c), S.EPS),
                            S.local_excess(S.transition_motion(c), S.MOTION_EPS)).clamp(min=0)[a:b + 1].sum()
    assert 1 / (1 + float(without)) > 0.8 * float(clean.per_item[0])


def test_seam_local_excess_is_zero_for_steady_change_and_logs_a_spike():
    from rewardloop.rewards.seam import local_excess

    steady = torch.full((12,), 0.02)
    assert torch.allclose(local_excess(steady, 1e-3), torch.zeros(12), atol=1e-6)
    spike = steady.clone()
    spike[6] = 0.08
    out = local_excess(spike, 1e-3)
    assert float(out[6]) == pytest.approx(float(torch.log(torch.tensor(0.081 / 0.021))), rel=1e-5)
    assert float(out[:5].abs().max()) < 1e-6  # the spike is never the median of a neighbourhood of 4


def test_flow_smoothness_charges_a_hold_moved_into_a_two_to_one_cadence(scene_frames):
    """Many open-model clips show every frame twice. A stutter in such a clip (hold, hold, skip, skip) has less
    acceleration than the regular cadence it breaks, so only the cadence term can tell the two apart."""
    cadence = scene_frames[torch.arange(32) // 2]  # 0,0,1,1,2,2,...
    idx = list(range(32))
    for t in (8, 20):  # a new frame shows its predecessor (an old one) instead: hold, hold, skip, skip
        idx[t] = t - 1
    moved = cadence[idx]
    kf = cadence[[0, -1]]
    regular, broken = (score("flow_smoothness", Clip(v, keyframes=kf)) for v in (cadence, moved))
    assert broken.value < regular.value, (regular.value, broken.value)
    # the regular cadence itself is steady two pairs apart: its cadence term is far below the broken copy's
    assert regular.details["cadence_mean"] < 0.25 * broken.details["cadence_mean"], (regular.details, broken.details)
    # where the hold was moved, the pairs score lower than the same pairs of the regular clip
    assert broken.per_item[6:10].mean() < regular.per_item[6:10].mean()
