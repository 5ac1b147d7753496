"""Bad and unusual input: clear ValueErrors or correct results, never a crash; long clips in bounded memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rewardloop.rewards import Clip, SCORERS, composite, score
from rewardloop.rewards import calibration

pytestmark = pytest.mark.usefixtures("reward_models")
PACK_ROOT = Path(__file__).resolve().parents[2]


def test_empty_batch():
    with pytest.raises(ValueError, match="empty"):
        Clip(torch.zeros(0, 32, 32, 3))


@pytest.mark.parametrize("bad,match", [(float("nan"), "NaN or infinite.*frame 2"), (float("inf"), "NaN or infinite")])
def test_nan_inf_name_the_frame(bad, match):
    frames = torch.rand(4, 32, 32, 3)
    frames[2, 5, 5, 1] = bad
    with pytest.raises(ValueError, match=match):
        Clip(frames)


def test_out_of_range_and_0_255_hint():
    with pytest.raises(ValueError, match="divide by 255"):
        Clip(torch.rand(3, 32, 32, 3) * 255)
    with pytest.raises(ValueError, match="0..1"):
        Clip(torch.rand(3, 32, 32, 3) - 0.5)


@pytest.mark.parametrize("shape,match", [((32, 32, 3), "batch"), ((3, 3, 32, 32), "channels"),
                                         ((2, 8, 8, 3), "16x16"), ((2, 32, 32, 2), "channels")])
def test_bad_shapes(shape, match):
    with pytest.raises(ValueError, match=match):
        Clip(torch.rand(shape))


def test_integer_frames_are_refused():
    with pytest.raises(ValueError, match="uint8|float32"):
        Clip((torch.rand(2, 32, 32, 3) * 255).to(torch.uint8))


def test_grayscale_and_rgba_give_the_rgb_answer(scene_frames):
    rgb = scene_frames[:10]
    luma = rgb.mean(-1, keepdim=True)
    gray3 = Clip(luma.expand(-1, -1, -1, 3).contiguous(), keyframes=luma[[0]].expand(-1, -1, -1, 3))
    gray1 = Clip(luma, keyframes=luma[[0]])
    assert score("temporal_lpips", gray1).value == pytest.approx(score("temporal_lpips", gray3).value, abs=1e-6)
    assert score("keyframe_ssim", gray1).value == pytest.approx(score("keyframe_ssim", gray3).value, abs=1e-6)
    rgba = torch.cat([rgb, torch.rand(10, *rgb.shape[1:3], 1)], -1)  # alpha is ignored
    assert score("structure_constancy", Clip(rgba)).value == pytest.approx(score("structure_constancy", Clip(rgb)).value,
                                                                            abs=1e-6)


def test_one_frame_clip(scene_frames):
    """Pair-based scorers say "not applicable"; per-frame ones still answer; the composite excludes, never zeros."""
    one = Clip(scene_frames[:1], keyframes=scene_frames[:1])
    for name in ("temporal_lpips", "flow_smoothness", "structure_constancy", "loop_break", "seam_consistency",
                 "novelty_after_k"):
        res = score(name, one)
        assert not res.applicable and res.note, name
    assert score("keyframe_ssim", one).value == pytest.approx(1.0)
    assert score("framing", one).applicable
    agg, _ = composite(one, {"keyframe_ssim": 1.0, "temporal_lpips": 1.0})
    assert agg.value == pytest.approx(calibration.get("keyframe_ssim")(1.0))  # SSIM 1 alone, calibrated
    assert agg.details["excluded"]["temporal_lpips"].startswith("not applicable")


def test_keyframe_size_mismatch(scene_frames):
    frames = scene_frames[:8]  # 128x96 (4:3)
    half = torch.nn.functional.interpolate(frames[[0, -1]].permute(0, 3, 1, 2), size=(48, 64), mode="bilinear",
                                           antialias=True).permute(0, 2, 3, 1)
    res = score("keyframe_ssim", Clip(frames, keyframes=half))  # same aspect: resized, noted
    assert "resized" in res.note and 0.5 < res.value <= 1
    with pytest.raises(ValueError, match="aspect ratio"):
        score("keyframe_ssim", Clip(frames, keyframes=torch.rand(2, 64, 64, 3)))
    with pytest.raises(ValueError, match="positions"):
        score("keyframe_ssim", Clip(frames, keyframes=frames[[0, 1]], keyframe_positions=[0, 9]))
    with pytest.raises(ValueError, match="one position per keyframe"):
        score("keyframe_ssim", Clip(frames, keyframes=frames[[0, 1]], keyframe_positions=[0]))


def test_default_keyframe_positions(scene_frames):
    """Without positions: 1 keyframe -> frame 0, 2 -> first and last (the same frame of a one-frame clip, as a
    retry loop's one-frame segment is scored against both anchors), more -> spread evenly, too many -> an error."""
    frames = scene_frames[:9]
    assert score("keyframe_ssim", Clip(frames, keyframes=frames[[4, 8]])).details["positions"] == [0, 8]
    assert score("keyframe_ssim", Clip(frames, keyframes=frames[[0, 1, 2]])).details["positions"] == [0, 4, 8]
    one = score("keyframe_ssim", Clip(frames[:1], keyframes=frames[[0, 0]]))
    assert one.details["positions"] == [0, 0] and one.value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 keyframes do not fit a clip of 2 frames"):
        score("keyframe_ssim", Clip(frames[:2], keyframes=frames[:3]))


def test_never_normalised_across_the_batch(scene_frames, corrupt):
    """A clip's score does not depend on what else is scored (no batch statistics anywhere)."""
    a = scene_frames[:12]
    alone = {n: score(n, Clip(a)).value for n in ("temporal_lpips", "flow_smoothness", "structure_constancy", "framing")}
    Clip(corrupt.shuffle(scene_frames))  # other work in between must not matter
    again = {n: score(n, Clip(a)).value for n in alone}
    assert alone == again


def test_unknown_options_are_clear_errors(scene_frames):
    clip = Clip(scene_frames[:10])
    with pytest.raises(ValueError, match="unknown scorer"):
        score("nope", clip)
    with pytest.raises(ValueError, match="loop_mode"):
        score("loop_break", clip, loop_mode="sometimes")
    with pytest.raises(ValueError, match="weights must be"):
        composite(clip, {"temporal_lpips": -1})
    with pytest.raises(ValueError, match="overlap must be"):
        score("seam_consistency", clip.with_inputs(windows=(8, 8)))


def test_all_scorers_registered_with_documented_ranges():
    assert len(SCORERS) == 13
    for s in SCORERS.values():
        assert s.value_range[0] < s.value_range[1] and s.fn.__module__.startswith("rewardloop.rewards.")
        assert "Value" in (sys.modules[s.fn.__module__].__doc__ or ""), s.name  # definition + range documented


LONG_SCRIPT = textwrap.dedent("""
    import json, resource, runpy, sys, torch
    runpy.run_path(sys.argv[1] + "/pack_import.py")["import_pack"]()
    from rewardloop.rewards import Clip, score
    T, H, W = 2000, 180, 320
    base = torch.rand(H + T, W, 3, generator=torch.Generator().manual_seed(0))
    # a 1-px-per-frame vertical pan over one tall image: T frames as a strided view of (H+T) rows
    frames = base.as_strided((T, H, W, 3), (W * 3, W * 3, 3, 1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seen = []
    clip = Clip(frames, analysis_size=64, flow_method="dis_ultrafast",
                progress=lambda stage, done, total: seen.append(stage))
    out = {n: score(n, clip).value for n in ("flow_smoothness", "loop_break", "seam_consistency")}
    out["logical_gb"] = frames.numel() * 4 / 1e9
    out["peak_growth_gb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1e6
    out["stages"] = sorted(set(seen))
    print(json.dumps(out))
""")


def test_2000_frame_clip_runs_in_bounded_memory(tmp_path):
    """2000 frames whose float32 copy would be 1.4 GB: validated, downscaled and scored chunk by chunk. Peak
    memory growth stays a small fraction of that (the full-1080p variant is in benchmarks/bench_rewards.py)."""
    script = tmp_path / "long.py"
    script.write_text(LONG_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, str(script), str(PACK_ROOT)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["logical_gb"] > 1.3
    assert out["peak_growth_gb"] < 0.5, out
    assert 0 < out["flow_smoothness"] <= 1 and 0 < out["loop_break"] <= 1
    assert {"optical flow", "occlusion masks"} <= set(out["stages"])


def test_tiny_frames_never_crash_any_scorer(reward_models):
    """20x16 frames: every scorer returns a value or 'not applicable', never a torch shape error."""
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(20, 16, 20, 3, generator=g)
    clip = Clip(frames, keyframes=frames[[0, -1]], prompt="noise", reference=torch.rand(20, 16, 20, 3, generator=g),
                windows=(8, 2))
    options = {"clip_score": {"weights": reward_models.clip_file}, "aesthetic": {"clip_weights": reward_models.clip_file},
               "caption_consistency": {"blip": reward_models.blip}, "novelty_after_k": {"k": 8}}
    for name in SCORERS:
        res = score(name, clip, **options.get(name, {}))
        assert res.applicable or res.note, name
        assert res.applicable == (res.value == res.value), name  # NaN exactly when not applicable
    assert not score("temporal_lpips", clip).applicable


def test_frames_are_copied_to_the_scoring_device_once_within_the_budget(scene_frames):
    """A GPU clip of CPU frames reads them from one device copy (checked on the 'meta' device: no GPU here);
    over half the cache budget it reads the host frames chunk by chunk instead."""
    frames = scene_frames[:6]
    clip = Clip(frames, device="meta")
    source = clip.frames_source()
    assert source.device.type == "meta" and source.shape == frames.shape and source.dtype == torch.float32
    assert clip.frames_source() is source  # made once, shared
    assert clip.with_inputs(prompt="x").frames_source() is source
    assert clip.frames_at([1, 3]).device.type == "meta"
    tight = Clip(frames, device="meta", cache_budget_bytes=frames.numel() * 4)  # the copy needs half the budget
    assert tight.frames_source() is tight.frames
    on_cpu = Clip(frames)
    assert on_cpu.frames_source() is on_cpu.frames  # already where the scorers run: no copy
