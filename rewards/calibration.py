"""Calibration: each scorer's raw value mapped onto 0..1, so that a threshold on the composite means the same
thing whatever the weights.

Every scorer has its own scale (SSIM -1..1, CLIPScore 0..2.5, aesthetic ~1..10, FVD-lite unbounded). The
composite averages *calibrated* values, each a logistic function of the raw value fixed by two anchors:

    calibrated(raw) = 1 / (1 + exp(-(raw - mid) / scale)),   mid = (clean + broken) / 2,
                      scale = (clean - broken) / (2 * logit(CLEAN_LEVEL))

    clean   the raw value reached by 90% of clean clips (their 10th percentile)       -> 0.85
            (keyframe SSIM, which is exactly 1 on a clip whose ends are its own keyframes: the clips after
            one H.264 round trip at libx264's default quality, the least any saved or delivered video loses)
    broken  the median raw value of the corrupted copies the scorer exists to catch  -> 0.15,
            but at least twice the clean clips' own spread (median - 10th percentile) below `clean`
The floor keeps a scorer whose own corruptions barely move it (or, like framing, are not really its defects)
from a calibration steeper than clean clips vary among themselves: noise would then swing its 0..1 value.

So a calibrated 0.85 reads "as good as nine clean clips in ten", 0.5 "halfway to typical breakage", and a
composite threshold of 0.85 is a "clean clip" line for any weights. The map is strictly increasing: it never
changes which of two clips a scorer prefers. It is fixed (never fitted to the batch being scored).

The anchors below were measured on real AI-generated clips (the animated WebP outputs of current video models
in the registry packages comfyui-workflow-templates-media-assets-01/-02), 33 frames, long side 256, with the
scorers' default settings, against the corruptions of `rewards.corruptions`;
`python benchmarks/reward_validity.py --conditions 33 --every 2 --calibrate` reproduces them. Scorers whose real weights cannot be obtained
offline (CLIP, BLIP, facenet) carry provisional anchors taken from their published scales (`measured=False`):
re-measure them with the script once you have the weights. Options that change a scorer's scale (e.g.
temporal_lpips with net="vgg", another analysis_size, another FVD-lite reference) shift its raw values, so the
calibration is exact only at the defaults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CLEAN_LEVEL = 0.85   # calibrated value of the clean anchor
BROKEN_LEVEL = 1 - CLEAN_LEVEL
CLEAN_QUANTILE = 0.10  # clean anchor: the raw value 90% of clean clips reach


@dataclass(frozen=True)
class Calibration:
    clean: float    # raw value mapped to CLEAN_LEVEL
    broken: float   # raw value mapped to BROKEN_LEVEL
    how: str        # one line: where the anchors come from
    measured: bool = True  # False: provisional (no real weights offline)

    def __post_init__(self):
        if not (math.isfinite(self.clean) and math.isfinite(self.broken) and self.clean > self.broken):
            raise ValueError(f"a calibration needs finite anchors with clean > broken, got {self.clean}, {self.broken}")

    @property
    def mid(self) -> float:
        return (self.clean + self.broken) / 2

    @property
    def scale(self) -> float:
        return (self.clean - self.broken) / (2 * math.log(CLEAN_LEVEL / BROKEN_LEVEL))

    def __call__(self, raw):
        """Calibrated value(s) of a float or a tensor (NaN stays NaN)."""
        if isinstance(raw, torch.Tensor):
            return torch.sigmoid((raw.double() - self.mid) / self.scale).to(torch.float32)
        raw = float(raw)
        if math.isnan(raw):
            return math.nan
        z = (raw - self.mid) / self.scale
        return 1 / (1 + math.exp(-z)) if z > -700 else 0.0

    def to_dict(self) -> dict:
        return {"clean": self.clean, "broken": self.broken, "measured": self.measured, "how": self.how}


def fit(clean_values, broken_values, how: str, measured: bool = True) -> Calibration:
    """Anchors from raw values of clean clips and of their corrupted copies (see the module docstring); NaN (not
    applicable) values are left out."""
    clean = torch.as_tensor(list(clean_values), dtype=torch.float64)
    broken = torch.as_tensor(list(broken_values), dtype=torch.float64)
    clean, broken = clean[torch.isfinite(clean)], broken[torch.isfinite(broken)]
    if clean.numel() < 2 or broken.numel() < 2:
        raise ValueError(f"calibration needs >= 2 finite clean and broken values, got {clean.numel()} and "
                         f"{broken.numel()}")
    anchor = float(torch.quantile(clean, CLEAN_QUANTILE))
    spread = float(torch.quantile(clean, 0.5)) - anchor
    floor = anchor - max(2 * spread, 1e-6 * max(1.0, abs(anchor)))
    return Calibration(anchor, min(float(torch.quantile(broken, 0.5)), floor), how, measured)


_HOW = ("45 real AI clips of the registry media, 33 frames, long side 256, default settings "
        "(benchmarks/reward_validity.py --conditions 33 --every 2 --calibrate)")

_PROVISIONAL = "provisional (no real weights offline): "

CALIBRATIONS: dict[str, Calibration] = {
    "keyframe_ssim": Calibration(clean=0.9249, broken=0.7553, how=_HOW + "; clean: the clips' H.264 round trip"),
    "temporal_lpips": Calibration(clean=0.8346, broken=0.6611, how=_HOW),
    "flow_smoothness": Calibration(clean=0.2319, broken=0.1474, how=_HOW),
    "fvd_lite": Calibration(clean=0.08232, broken=-0.4952, how=_HOW + "; reference: each clip's whole shot"),
    "structure_constancy": Calibration(clean=0.7466, broken=0.6086, how=_HOW),
    "seam_consistency": Calibration(clean=0.1666, broken=-0.1437, how=_HOW + "; windows 21/9"),
    "loop_break": Calibration(clean=0.9781, broken=0.04271, how=_HOW),
    "framing": Calibration(clean=0.4547, broken=0.1079, how=_HOW),
    "novelty_after_k": Calibration(clean=-0.204, broken=-0.3733, how=_HOW),
    "identity_lock": Calibration(clean=0.6, broken=0.2, measured=False,
                                 how=_PROVISIONAL + "cosine of the same person's faces is ~0.6-1 with the VGGFace2 "
                                 "weights, of different people ~0-0.3"),
    "clip_score": Calibration(clean=0.75, broken=0.4, measured=False,
                              how=_PROVISIONAL + "good text-image matches score ~0.75-0.9 with ViT-B/32 (Hessel "
                              "et al. 2021), unrelated pairs ~0.4 (cosine ~0.15)"),
    "caption_consistency": Calibration(clean=0.5, broken=0.1, measured=False,
                                       how=_PROVISIONAL + "related sentences score ~0.5-0.9 with all-MiniLM-L6-v2, "
                                       "unrelated ~0-0.2"),
    "aesthetic": Calibration(clean=5.0, broken=4.0, measured=False,
                             how=_PROVISIONAL + "ordinary photographs score ~4.5-5.5 on the LAION head, "
                             "LAION's aesthetic subsets start at 5-6"),
}


def get(name: str) -> Calibration:
    try:
        return CALIBRATIONS[name]
    except KeyError:
        raise ValueError(f"no calibration for scorer {name!r}") from None
