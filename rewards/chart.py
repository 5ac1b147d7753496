"""Reward charts: the chart specs the web extension draws on nodes (`rewardloop_chart` UI output) and the Reward
Report's PNG, from the same grouping.

A spec is one chart panel: {panel, title, x_label, y_label, x_min, x_max, integer_x, range, threshold,
threshold_label, refs: [{value, label}], series: [{name, x, y, style, value, range, about}]}. Scores are grouped
into panels by their documented range, so rewards on different scales never share a y axis; each score keeps its
item positions (keyframe SSIM is drawn at the keyframes, not interpolated over every frame). The PNG is drawn with
PIL (one small image does not justify a plotting dependency in every user's ComfyUI); its ticks follow the same
1-2-5 rule as the canvas charts (web/lib/chart_math.js).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

COLORS = [(95, 179, 255), (255, 179, 71), (123, 211, 137), (255, 111, 145), (195, 155, 255), (244, 226, 133),
          (120, 220, 220), (230, 140, 90), (170, 170, 170), (150, 200, 90), (220, 120, 220), (90, 140, 230),
          (240, 200, 160)]
# Item kinds measured at a few positions are drawn as points there; per-frame and per-pair values as lines.
POINT_KINDS = ("keyframe", "sample", "seam", "crop")


def _finite(v) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def range_text(lo, hi) -> str:
    lo, hi = _finite(lo), _finite(hi)
    if lo is not None and hi is not None:
        return f"{lo:g}..{hi:g}"
    if hi is not None:
        return f"<= {hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    return "unbounded"


def _about(name: str) -> str:
    from .registry import SCORERS

    s = SCORERS.get(name)
    return s.summary if s is not None else ""


def _series(name: str, score: dict) -> dict:
    kind = score.get("item_kind", "frame")
    rng = score.get("range") or [None, None]
    return {"name": name, "x": list(score.get("positions", [])), "y": list(score.get("per_item", [])),
            "style": "points" if kind in POINT_KINDS else "line", "value": score.get("value"),
            "range": rng, "about": _about(name)}


def chart_specs(payload: dict) -> list[dict]:
    """Chart panels of a scores payload: the composite (if any) first, then one panel per documented range."""
    frames = max(int(payload.get("frames", 1)), 1)
    base = {"x_label": "frame", "x_min": 0, "x_max": frames - 1, "integer_x": True}
    panels = []
    agg = payload.get("aggregate")
    # a scorer node's aggregate is its one score (drawn below); a composite's is the weighted curve
    if agg and agg.get("applicable") and agg.get("per_item") and agg.get("name") not in payload.get("scores", {}):
        s = _series(agg["name"], agg)
        s["about"] = "per frame: the included components' curves, weighted like the value"
        value = agg.get("value")
        panels.append({**base, "panel": agg["name"], "title": f"{agg['name']} = {_fmt(value)}",
                       "y_label": "reward", "range": s["range"], "series": [s],
                       "refs": [{"value": value, "label": f"value {_fmt(value)}"}] if value is not None else []})
    groups: dict[tuple, list[dict]] = {}
    for name, score in payload.get("scores", {}).items():
        if score.get("applicable") and score.get("per_item"):
            s = _series(name, score)
            groups.setdefault(tuple(s["range"]), []).append(s)
    for rng, series in groups.items():
        scale = range_text(*rng)
        if len(series) == 1:
            s = series[0]
            title, panel = f"{s['name']} = {_fmt(s['value'])}", s["name"]
        else:
            title = panel = f"rewards in {scale}"
        panels.append({**base, "panel": panel, "title": title, "y_label": f"reward ({scale})", "range": list(rng),
                       "series": series, "refs": []})
    return panels


def attempts_chart(rewards: list, threshold: float | None, what: str = "attempt", name: str = "reward") -> dict:
    """Reward per attempt (or candidate, segment), numbered from 1 as people count them."""
    spec = {"panel": f"{name} per {what}", "title": f"{name} per {what}", "x_label": f"{what} (1 = first)",
            "y_label": name, "x_min": 1, "x_max": max(len(rewards), 1), "integer_x": True, "range": None,
            "series": [{"name": name, "x": list(range(1, len(rewards) + 1)), "y": list(rewards), "style": "line"}],
            "refs": []}
    if threshold is not None and _finite(threshold) is not None:
        spec.update(threshold=float(threshold), threshold_label=f"threshold {float(threshold):g}")
    return spec


def _fmt(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.4g}"


# ---------------------------------------------------------------------------------------------- PNG
def nice_step(lo: float, hi: float, count: int) -> float:
    raw = (hi - lo) / max(count, 1)
    if not raw > 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    err = raw / power
    return (10 if err >= 7.07 else 5 if err >= 3.16 else 2 if err >= 1.41 else 1) * power


def y_domain(values: list[float], rng=None, threshold=None, min_span_fraction: float = 0.05) -> tuple[float, float]:
    """The y range a panel is drawn with: a spread below 5% of the documented range (or of the value, when
    unbounded) stays a flat line instead of a full-height zigzag; ends rounded out to nice ticks."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if threshold is not None and math.isfinite(threshold):
        vals.append(threshold)
    if not vals:
        return 0.0, 1.0
    lo, hi = dmin, dmax = min(vals), max(vals)
    bounded = rng is not None and _finite(rng[0]) is not None and _finite(rng[1]) is not None and rng[1] > rng[0]
    scale = (rng[1] - rng[0]) if bounded else max(abs(lo), abs(hi), 1e-9)
    min_span = scale * min_span_fraction
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
        if bounded:  # inside the documented range where the data are
            if hi > max(rng[1], dmax):
                lo, hi = lo - (hi - max(rng[1], dmax)), max(rng[1], dmax)
            if lo < min(rng[0], dmin):
                lo, hi = min(rng[0], dmin), hi + (min(rng[0], dmin) - lo)
    else:
        pad = (hi - lo) * 0.06
        lo, hi = lo - pad, hi + pad
        if bounded:
            lo, hi = max(lo, min(rng[0], dmin)), min(hi, max(rng[1], dmax))
    step = nice_step(lo, hi, 4)
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step


def ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    step = nice_step(lo, hi, count)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _tick_label(v: float, step: float) -> str:
    decimals = max(0, min(8, -math.floor(math.log10(step) + 1e-9))) if step > 0 else 0
    return f"{v:.{decimals}f}"


def render_chart(payload: dict, width: int = 768, panel_height: int = 150) -> torch.Tensor:
    """[1, H, W, 3] float32 IMAGE: one panel per chart spec, each with its own y axis, frame ticks and legend."""
    specs = chart_specs(payload)
    font = ImageFont.load_default()
    header = 22
    height = header + max(len(specs), 1) * panel_height
    img = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(img)
    draw.text((8, 5), f"rewards over {int(payload.get('frames', 1))} frames (one panel per scale)",
              fill=(220, 220, 220), font=font)
    if not specs:
        draw.text((60, header + panel_height // 2), "no applicable scores", fill=(220, 120, 120), font=font)
    for k, spec in enumerate(specs):
        top = header + k * panel_height
        _draw_panel(draw, font, spec, (58, top + 16, width - 230, top + panel_height - 30))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def _draw_panel(draw, font, spec: dict, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    draw.text((left, top - 14), f"{spec['title']}   y: {spec['y_label']}", fill=(220, 220, 220), font=font)
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    values = [v for s in spec["series"] for v in s["y"]] + [r["value"] for r in spec.get("refs", [])]
    lo, hi = y_domain(values, spec.get("range"), spec.get("threshold"))
    span = hi - lo or 1.0
    x0, x1 = spec["x_min"], max(spec["x_max"], spec["x_min"] + 1)

    def sx(x):
        return left + (right - left) * (x - x0) / (x1 - x0)

    def sy(y):
        return bottom - (bottom - top) * (y - lo) / span

    step = nice_step(lo, hi, 4)
    for t in ticks(lo, hi):
        y = sy(t)
        draw.line([(left, y), (right, y)], fill=(48, 48, 54))
        draw.line([(left - 4, y), (left, y)], fill=(160, 160, 160))
        label = _tick_label(t, step)
        draw.text((left - 8 - draw.textlength(label, font=font), y - 6), label, fill=(160, 160, 160), font=font)
    xstep = max(1.0, round(nice_step(x0, x1, 6)))
    x = math.ceil(x0 / xstep) * xstep
    while x <= x1 + 1e-9:
        draw.line([(sx(x), bottom), (sx(x), bottom + 4)], fill=(160, 160, 160))
        draw.text((sx(x) - 6, bottom + 6), f"{x:g}", fill=(160, 160, 160), font=font)
        x += xstep
    draw.text((right - 30, bottom + 16), spec["x_label"], fill=(140, 140, 140), font=font)
    lines = [(r["value"], r["label"], (200, 200, 200)) for r in spec.get("refs", [])]
    if spec.get("threshold") is not None:
        lines.append((spec["threshold"], spec.get("threshold_label", "threshold"), (255, 85, 85)))
    for value, label, color in lines:
        _dashed(draw, sy(value), left, right, color)
        draw.text((right - 4 - draw.textlength(label, font=font), sy(value) - 12), label, fill=color, font=font)
    for i, s in enumerate(spec["series"]):
        color = COLORS[i % len(COLORS)]  # per panel, like the canvas chart
        pts = [(sx(px), sy(py)) for px, py in zip(s["x"], s["y"]) if py is not None and math.isfinite(py)]
        if s["style"] == "line" and len(pts) > 1:
            draw.line(pts, fill=color, width=2 if s["name"] == "composite" else 1)
        if s["style"] == "points" or len(pts) <= 40:
            r = 3 if s["style"] == "points" else 1.5
            for px, py in pts:
                draw.ellipse([px - r, py - r, px + r, py + r], fill=color)
        rng = s.get("range")
        label = f"{s['name']}: {_fmt(s.get('value'))}" + (f" ({range_text(*rng)})" if rng else "")
        draw.text((right + 10, top + 14 * i), label[:34], fill=color, font=font)


def _dashed(draw, y: float, left: int, right: int, color: tuple) -> None:
    for x in range(left, right, 8):
        draw.line([(x, y), (min(x + 4, right), y)], fill=color)
