"""Per-frame reward chart as an image (PIL only: no plotting dependency), from a scores payload.

Each applicable score is drawn on the clip's frame axis at its item positions, scaled to its own
min..max (the legend gives the aggregate value); the composite, when present, is drawn thicker. Also
returns chart specs for the web extension (`rewardloop_chart` UI output: {title, x_label, series}).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

COLORS = [(95, 179, 255), (255, 179, 71), (123, 211, 137), (255, 111, 145), (195, 155, 255), (244, 226, 133),
          (120, 220, 220), (230, 140, 90), (170, 170, 170), (150, 200, 90), (220, 120, 220), (90, 140, 230),
          (240, 200, 160)]


def _series(payload: dict) -> list[tuple[str, list, list, float | None]]:
    out = []
    agg = payload.get("aggregate")
    if agg and agg.get("applicable"):
        out.append((agg["name"], agg["positions"], agg["per_item"], agg["value"]))
    for name, s in payload.get("scores", {}).items():
        if s.get("applicable") and s.get("per_item"):
            out.append((name, s["positions"], s["per_item"], s["value"]))
    return out


def render_chart(payload: dict, width: int = 768, height: int = 384) -> torch.Tensor:
    """[1, height, width, 3] float32 IMAGE of the per-item values over frames."""
    frames = max(int(payload.get("frames", 1)), 1)
    img = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 40, width - 210, 24, height - 28
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    draw.text((left, 4), "rewards per frame (each curve scaled to its own min..max)", fill=(220, 220, 220), font=font)
    for i in range(0, 5):
        x = left + (right - left) * i / 4
        draw.text((x - 6, bottom + 6), str(round((frames - 1) * i / 4)), fill=(160, 160, 160), font=font)
    series = _series(payload)
    if not series:
        draw.text((left + 10, (top + bottom) // 2), "no applicable scores", fill=(220, 120, 120), font=font)
    for i, (name, pos, vals, value) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        pts = [(p, v) for p, v in zip(pos, vals) if v is not None and math.isfinite(v)]
        if pts:
            vs = np.array([v for _, v in pts])
            lo, hi = float(vs.min()), float(vs.max())
            span = hi - lo if hi - lo > 1e-12 else 1.0
            xy = [(left + (right - left) * (p / max(frames - 1, 1)),
                   bottom - (bottom - top) * (((v - lo) / span) if hi - lo > 1e-12 else 0.5)) for p, v in pts]
            if len(xy) > 1:
                draw.line(xy, fill=color, width=3 if i == 0 and name == "composite" else 1)
            for x, y in xy if len(xy) <= 64 else []:
                draw.rectangle([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=color)
        label = f"{name}: {value:.4g}" if value is not None else f"{name}: n/a"
        draw.text((right + 10, top + 14 * i), label[:32], fill=color, font=font)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def chart_specs(payload: dict) -> list[dict]:
    """Chart specs for the web extension: one chart per score, values on the frame axis (0..T-1)."""
    from .composite import to_frame_axis
    from .result import RewardResult

    frames = max(int(payload.get("frames", 1)), 1)
    specs = []
    for name, pos, vals, value in _series(payload):
        res = RewardResult(name, value if value is not None else math.nan,
                           torch.tensor([math.nan if v is None else v for v in vals]), torch.tensor(pos), "frame",
                           (0.0, 1.0))
        curve = to_frame_axis(res, frames)
        specs.append({"title": f"{name} ({value:.4g})" if value is not None else name, "x_label": "frame",
                      "series": [{"name": name, "values": [v if math.isfinite(v) else None for v in curve.tolist()]}]})
    return specs
