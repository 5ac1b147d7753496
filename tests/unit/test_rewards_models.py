"""Model loading from the model folders (real formats, small random models where real weights are not
obtainable offline), the explicit model cache, and clear errors for missing files."""
from __future__ import annotations

import pytest
import torch

from rewardloop import modelfiles
from rewardloop.rewards import Clip, RewardRuntime, default_runtime, models, score

pytestmark = pytest.mark.usefixtures("reward_models")


def test_cache_loads_once_and_clears():
    rt = RewardRuntime()
    a = models.lpips_model("alex", runtime=rt)
    assert models.lpips_model("alex", runtime=rt) is a
    assert ("lpips", "alex", False, "cpu") in rt.models.keys()
    assert rt.clear() >= 1
    assert rt.models.keys() == []
    assert models.lpips_model("alex", runtime=rt) is not a


def test_missing_files_name_file_folder_and_source(tmp_path):
    rt = RewardRuntime([tmp_path])
    with pytest.raises(modelfiles.WeightNotFound) as err:
        models.i3d_model(runtime=rt)
    assert "i3d-kinetics-400.safetensors" in str(err.value) and str(tmp_path / "i3d") in str(err.value)
    assert "install.py --weights" in str(err.value) and "Install Reward Weights" in str(err.value)
    with pytest.raises(modelfiles.WeightNotFound, match="blip-image-captioning-base"):
        models.blip_captioner(runtime=rt)
    with pytest.raises(modelfiles.WeightNotFound, match="facenet-pytorch"):
        models.facenet_models(runtime=rt)


def test_open_clip_arch_comes_from_the_file_name(reward_models):
    net = models.open_clip_model(reward_models.clip_file)
    assert net.arch == "RLTiny-quickgelu" and net.image_size == 32
    with pytest.raises(ValueError, match="no model named"):
        models.open_clip_model("NotAModel.safetensors")


def test_aesthetic_scorer_end_to_end(reward_models, scene_frames):
    res = score("aesthetic", Clip(scene_frames[:10]), clip_weights=reward_models.clip_file, num_samples=4,
                reduce="mean_min")
    assert res.per_item.shape == (4,)
    assert res.value == pytest.approx((res.details["mean"] + res.details["min"]) / 2)
    assert models.aesthetic_head().kind == "mlp"
    assert models.aesthetic_head("sa_0_4_vit_l_14_linear.pth").kind == "linear"


def test_blip_captions_from_a_saved_folder(reward_models, scene_frames):
    clip = Clip(scene_frames[:10], prompt="a city with a tree")
    res = score("caption_consistency", clip, blip=reward_models.blip, num_samples=3)
    assert len(res.details["captions"]) == 3 and all(isinstance(c, str) for c in res.details["captions"])
    assert res.per_item.shape == (3,) and torch.isfinite(res.per_item).all()
    assert -1 <= res.value <= 1


def test_facenet_loader_drops_the_classifier_and_loads_strictly():
    mtcnn, resnet = models.facenet_models()
    assert not hasattr(resnet, "logits") or resnet.logits is None or not resnet.classify
    assert mtcnn.thresholds == [0.6, 0.7, 0.7] and mtcnn.min_face_size == 20
    with torch.no_grad():
        emb = resnet(torch.rand(2, 3, 160, 160))
    assert emb.shape == (2, 512) and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-4)


def test_i3d_features_memoised_on_the_clip(scene_frames):
    from rewardloop.rewards.fvd_lite import crop_starts, i3d_features

    assert crop_starts(15) == [] and crop_starts(16) == [0] and crop_starts(17) == [0, 1]
    assert crop_starts(48) == [0, 16, 32] and len(crop_starts(2000)) == 16
    clip = Clip(scene_frames[:20])
    a, starts = i3d_features(clip, "pool")
    b, _ = i3d_features(clip, "pool")
    assert a is b and a.shape == (2, 1024) and starts == [0, 4]


def test_kvd_kernel_compares_feature_directions_not_norms():
    """A crop's I3D feature norm follows contrast more than motion: scaling crops' features must not move the
    distance, while features pointing elsewhere must."""
    from rewardloop.rewards.fvd_lite import polynomial_kernel, unbiased_mmd2

    g = torch.Generator().manual_seed(0)
    ref = torch.rand(4, 1024, generator=g, dtype=torch.float64)
    near = ref[:3] + 0.05 * torch.rand(3, 1024, generator=g, dtype=torch.float64)
    cos = torch.nn.functional.cosine_similarity(near[:, None], ref[None], dim=2)
    assert torch.allclose(polynomial_kernel(near, ref), (cos + 1) ** 3)
    base, witness = unbiased_mmd2(near, ref)
    scaled, _ = unbiased_mmd2(near * torch.tensor([[0.2], [3.0], [40.0]], dtype=torch.float64), ref)
    assert scaled == pytest.approx(base, abs=1e-12) and witness.mean().item() == pytest.approx(base)
    elsewhere = near.clone()
    elsewhere[:, :512] = 0  # half the channels silent: another direction
    assert unbiased_mmd2(elsewhere, ref)[0] > base + 0.1


def test_reference_i3d_features_are_reused_for_the_same_unchanged_reference(scene_frames, monkeypatch):
    """A retry loop scores every attempt against one reference tensor: its I3D pass must run once, and again
    only when that tensor changes in place or the cache is cleared."""
    from rewardloop.rewards import fvd_lite

    default_runtime().clear()
    passes = []
    real = fvd_lite.i3d_features
    monkeypatch.setattr(fvd_lite, "i3d_features", lambda c, *a, **k: passes.append(c.num_frames) or real(c, *a, **k))
    reference = scene_frames[20:40].clone()
    first = score("fvd_lite", Clip(scene_frames[:20], reference=reference), max_crops=2)
    again = score("fvd_lite", Clip(scene_frames[1:21], reference=reference), max_crops=2)
    assert passes == [20, 20, 20]  # generated, reference, generated: the reference once
    assert first.details["reference_crops"] == again.details["reference_crops"] == 2
    reference.mul_(0.5)  # edited in place: stale features must not be used
    changed = score("fvd_lite", Clip(scene_frames[:20], reference=reference), max_crops=2)
    assert passes == [20, 20, 20, 20, 20] and changed.value != first.value
    default_runtime().clear()
    score("fvd_lite", Clip(scene_frames[:20], reference=reference), max_crops=2)
    assert len(passes) == 7
