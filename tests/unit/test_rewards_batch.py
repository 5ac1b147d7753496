"""Scoring a batch of clips in one call (rewards.batch, `reward_function(...).batch`): the same results as scoring
each clip alone, with every shared analysis computed once for the whole batch; the batched MTCNN crops give the
library's boxes; the batched flow equals each clip's own."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop import rewards
from rewardloop.motion import optical_flow
from rewardloop.motion.scene import render_scene
from rewardloop.rewards import batch as rbatch
from rewardloop.rewards import caption, clip_embed, face_detect, fvd_lite, temporal_lpips


def _with_face(frames: torch.Tensor, x: int) -> torch.Tensor:
    """The scikit-image astronaut's face (public domain), 48 px, pasted at column x: real MTCNN detections."""
    import skimage.data

    face = torch.from_numpy(skimage.data.astronaut()[37:197, 144:304]).float() / 255
    face = torch.nn.functional.interpolate(face.permute(2, 0, 1)[None], size=(48, 48), mode="bilinear",
                                           antialias=True)[0].permute(1, 2, 0)
    out = frames.clone()
    out[:, 4:52, x:x + 48] = face
    return out.clamp(0, 1)


def _clips(count: int = 2, frames: int = 17) -> list[torch.Tensor]:
    return [_with_face(render_scene(torch.linspace(0, 0.4, frames), 128, 96, seed=3 * i, motion="pan"), 4 + 3 * i)
            for i in range(count)]


def _counting(monkeypatch, module, name: str, calls: dict) -> None:
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_a_batch_scores_every_clip_as_alone_with_each_analysis_run_once(reward_models, monkeypatch):
    """All 13 scorers (test weights: real LPIPS, I3D, MTCNN and LAION heads; small random CLIP, BLIP, face
    embedder) in the composite, fp32, on 2 clips with their own prompts and keyframes: every component of every
    clip equals scoring that clip alone (1e-5), and flow, LPIPS, CLIP, BLIP, the text model, I3D and MTCNN each ran
    once for the whole batch."""
    clips = _clips()
    reference = render_scene(torch.linspace(0.4, 0.8, 20), 128, 96, seed=1, motion="pan")
    inputs = [{"prompt": p, "keyframes": c[[0, -1]].clone(), "reference": reference, "windows": (8, 4)}
              for p, c in zip(["a city skyline", "a face in front of a city"], clips)]
    weights = {name: 1.0 for name in rewards.SCORERS}
    options = {"clip_score": {"weights": reward_models.clip_file},
               "aesthetic": {"clip_weights": reward_models.clip_file},
               "caption_consistency": {"blip": reward_models.blip}, "novelty_after_k": {"k": 8},
               "fvd_lite": {"max_crops": 2}}
    fn = rewards.reward_function("composite", weights=weights, options=options, precision="fp32")
    alone = [fn(c, **i) for c, i in zip(clips, inputs)]

    calls: dict[str, int] = {}
    for module, name in ((optical_flow, "bidirectional_flows"), (temporal_lpips, "lpips_distance"),
                         (clip_embed, "embed_frames"), (caption, "caption_clips"), (caption, "text_similarities"),
                         (fvd_lite, "clip_features"), (face_detect, "detect")):
        _counting(monkeypatch, module, name, calls)
    monkeypatch.setattr(rewards.Clip, "_compute_flow", lambda *a: pytest.fail("a clip computed its own flow"))
    together = fn.batch(torch.stack(clips), inputs)

    assert calls == {"bidirectional_flows": 1, "lpips_distance": 1, "embed_frames": 1, "caption_clips": 1,
                     "text_similarities": 1, "clip_features": 1, "detect": 1}, calls
    for one, batched in zip(alone, together):
        assert one.applicable and not one.details["excluded"], one.details["excluded"]
        assert batched.value == pytest.approx(one.value, abs=1e-5)
        for name, part in one.details["components"].items():
            assert batched.details["components"][name]["value"] == pytest.approx(part["value"], abs=1e-5), name
        assert torch.allclose(batched.per_item, one.per_item, atol=1e-5)
    assert alone[0].details["components"]["identity_lock"]["value"] > 0  # faces were found and compared
    assert alone[0].value != pytest.approx(alone[1].value, abs=1e-3)  # two different clips, not one repeated


def test_single_scorers_in_a_batch_and_clips_of_other_sizes(reward_models):
    """A scorer's batch form equals its single form, also for clips of different sizes and lengths in one batch
    (grouped for the networks that need one size)."""
    big, small = _clips(1)[0], _clips(1, frames=12)[0][:, :64, :96]
    applied = set()
    for name, options in (("temporal_lpips", {}), ("identity_lock", {"stride": 4}),
                          ("clip_score", {"weights": reward_models.clip_file}),
                          ("structure_constancy", {})):
        fn = rewards.reward_function(name, options=options, precision="fp32")
        together = fn.batch([big, small], {"prompt": "a face"})
        for frames, batched in zip((big, small), together):
            one = fn(frames, prompt="a face")
            assert batched.applicable == one.applicable, name
            if one.applicable:
                applied.add((name, frames.shape[1]))
                assert batched.value == pytest.approx(one.value, abs=1e-5), name
                assert torch.allclose(batched.per_item, one.per_item, atol=1e-5, equal_nan=True), name
    assert {(n, 96) for n in ("temporal_lpips", "identity_lock", "clip_score", "structure_constancy")} <= applied
    assert ("temporal_lpips", 64) in applied  # the second size was scored too


def test_batch_inputs_are_checked_and_a_bad_clip_is_named():
    fn = rewards.reward_function("flow_smoothness")
    frames = torch.rand(2, 4, 32, 32, 3)
    with pytest.raises(ValueError, match=r"\[B,T,H,W,C\]"):
        fn.batch(frames[0])
    with pytest.raises(ValueError, match="3 sets of clip inputs given for 2 clips"):
        fn.batch(frames, [{}, {}, {}])
    with pytest.raises(ValueError, match=r"unknown clip input\(s\) \['promt'\]"):
        fn.batch(frames, {"promt": "x"})
    bad = [frames[0], frames[1] * 3]
    with pytest.raises(ValueError, match="clip 1 of the batch: frames .*0..1"):
        fn.batch(bad)
    with pytest.raises(ValueError, match=r"unknown clip setting\(s\) \['analysis'\]"):
        rewards.reward_function("composite", analysis=128)


def test_batched_flow_equals_each_clips_own_and_survives_a_cleared_runtime(scene_frames):
    """One thread-pool map over the pairs of all clips (none across two clips) gives each clip's own flow; a batch
    flow cancelled by runtime.clear() before it ran is computed by each clip when it needs it."""
    a, b = scene_frames[:6], scene_frames[20:29]
    both = optical_flow.bidirectional_flows([a, b], "dis_fast", workers=2)
    for clip, pair in zip((a, b), both):
        own = optical_flow.bidirectional_flow(clip, "dis_fast", workers=1)
        assert torch.equal(pair.forward, own.forward) and torch.equal(pair.backward, own.backward)
    with pytest.raises(ValueError, match="one frame size"):
        optical_flow.bidirectional_flows([a, b[:, :64]])
    runtime = rewards.RewardRuntime()
    clips = [rewards.Clip(x, flow_method="dis_fast", runtime=runtime) for x in (a, b)]
    assert rbatch.start_flows(clips) == 2 and not any(c.needs_flow() for c in clips)
    runtime.clear()  # cancels the batch job if it had not started; else it finished
    for clip, x in zip(clips, (a, b)):
        expected = rewards.Clip(x, flow_method="dis_fast").flow()
        assert torch.equal(clip.flow().forward, expected.forward)


def test_batched_mtcnn_finds_the_librarys_boxes_on_real_faces():
    """The re-implemented stages (all candidate crops from one summed-area table) against facenet-pytorch's own
    detect() with the wheel's real weights, on the astronaut photo and on a textured scene with her face pasted in."""
    import skimage.data

    from rewardloop.rewards import models

    mtcnn, _ = models.facenet_models()
    photo = torch.nn.functional.interpolate(torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float(),
                                            size=(240, 240), mode="area")[0].permute(1, 2, 0)
    scene = (_clips(1, frames=3)[0] * 255).round()
    images = torch.cat([photo.round()[None], torch.nn.functional.interpolate(
        scene.permute(0, 3, 1, 2), size=(240, 320), mode="bilinear").permute(0, 2, 3, 1).round()[:, :240, :240]])
    images = images.clamp(0, 255).to(torch.uint8)
    ours, our_probs = face_detect.detect(mtcnn, images)
    theirs, their_probs = mtcnn.detect(images.numpy())
    for mine, lib, p_mine, p_lib in zip(ours, theirs, our_probs, their_probs):
        assert lib is not None and mine is not None
        lib, p_lib = np.asarray(lib, dtype=np.float32), np.asarray(p_lib, dtype=np.float32)
        assert mine.shape == lib.shape
        assert np.abs(mine - lib).max() < 1e-3  # pixels
        assert np.abs(p_mine - p_lib).max() < 1e-5
    empty, _ = face_detect.detect(mtcnn, torch.full((1, 64, 64, 3), 128, dtype=torch.uint8))
    assert empty == [None]


def test_area_crops_equal_torch_area_resize():
    """The summed-area crops are F.interpolate(mode="area") of each crop, down- and upscaled."""
    images = torch.randint(0, 256, (2, 3, 40, 50)).float()
    table = face_detect.summed_area(images)
    boxes = [(0, 3, 30, 5, 44), (1, 0, 40, 0, 50), (1, 10, 17, 20, 29)]  # (image, y0, y1, x0, x1)
    i, y0, y1, x0, x1 = (torch.tensor(v) for v in zip(*boxes))
    got = face_detect.area_crops(table, i, y0, y1, x0, x1, 24)
    for k, (n, a, b, c, d) in enumerate(boxes):
        want = torch.nn.functional.interpolate(images[n:n + 1, :, a:b, c:d], size=(24, 24), mode="area")[0]
        assert torch.allclose(got[k], want, atol=1e-4)
