"""Reward charts (rewards/chart.py): the specs the canvas draws and the Reward Report's PNG."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rewardloop.rewards.chart import attempts_chart, chart_specs, render_chart, ticks, y_domain

BG = np.array([24, 24, 28]) / 255.0


def score(name, per_item, positions, kind="frame", rng=(0.0, 1.0), value=None):
    return {"name": name, "value": float(np.nanmean(per_item)) if value is None else value, "applicable": True,
            "note": "", "range": list(rng), "item_kind": kind, "per_item": per_item, "positions": positions,
            "details": {}}


def payload(frames=33):
    ssim = score("keyframe_ssim", [1.0, 0.97, 0.99, 1.0, 1.0], [0, 8, 16, 24, 32], "keyframe", (-1.0, 1.0))
    lpips = score("temporal_lpips", [0.9 + 0.01 * (i % 3) for i in range(frames - 1)],
                  [i + 0.5 for i in range(frames - 1)], "pair", (-math.inf, 1.0))
    flow = score("flow_smoothness", [0.5] * frames, list(range(frames)))
    framing = score("framing", [0.7] * frames, list(range(frames)))
    agg = score("composite", [0.8] * frames, list(range(frames)), rng=(-math.inf, 1.0), value=0.7983)
    na = {"name": "identity_lock", "value": None, "applicable": False, "note": "no face", "range": [-1, 1],
          "item_kind": "frame", "per_item": [], "positions": [], "details": {}}
    return {"version": 1, "frames": frames, "aggregate": agg,
            "scores": {s["name"]: s for s in (ssim, lpips, flow, framing, na)}}


def test_panels_group_scores_by_scale_and_keep_item_positions():
    specs = chart_specs(payload())
    assert [s["panel"] for s in specs] == ["composite", "keyframe_ssim", "temporal_lpips", "rewards in 0..1"]
    comp = specs[0]
    assert comp["refs"] == [{"value": 0.7983, "label": "value 0.7983"}]  # the value the title states, drawn
    ssim = specs[1]["series"][0]
    # measured at 5 keyframes: 5 points at those frames, not a 33-point interpolated line
    assert ssim["style"] == "points" and ssim["x"] == [0, 8, 16, 24, 32] and len(ssim["y"]) == 5
    assert specs[2]["series"][0]["x"][0] == 0.5 and specs[2]["y_label"] == "reward (<= 1)"
    assert [s["name"] for s in specs[3]["series"]] == ["flow_smoothness", "framing"]
    assert all(s["x_min"] == 0 and s["x_max"] == 32 and s["integer_x"] for s in specs)
    assert "identity_lock" not in {x["name"] for s in specs for x in s["series"]}  # not applicable: not drawn


def test_a_scorer_node_gets_one_panel_for_its_score():
    p = payload()
    p["aggregate"] = p["scores"]["keyframe_ssim"]
    p["scores"] = {"keyframe_ssim": p["scores"]["keyframe_ssim"]}
    assert [s["panel"] for s in chart_specs(p)] == ["keyframe_ssim"]


def test_attempt_charts_count_from_one_and_label_the_threshold():
    spec = attempts_chart([0.5, None, 0.9], 0.85)
    assert spec["series"][0]["x"] == [1, 2, 3] and spec["x_min"] == 1 and spec["x_max"] == 3
    assert spec["x_label"] == "attempt (1 = first)" and spec["threshold_label"] == "threshold 0.85"
    assert "threshold" not in attempts_chart([3, 1], None, "segment", "attempts")


@pytest.mark.parametrize("values,rng,expect_flat", [
    ([1.0, 0.99999, 0.99998, 1.0], (-1.0, 1.0), True),   # a 1e-5 wiggle is a flat line, not a zigzag
    ([0.2, 0.9], (0.0, 1.0), False),
    ([-120.0, -119.99], (-math.inf, 0.0), True),          # unbounded: relative to the value
])
def test_y_range_never_blows_up_a_tiny_spread(values, rng, expect_flat):
    lo, hi = y_domain(values, rng)
    spread = (max(values) - min(values)) / (hi - lo)
    assert lo <= min(values) and hi >= max(values)
    assert (spread < 0.01) == expect_flat, (lo, hi, spread)
    if rng[1] == 1.0:
        assert hi <= 1.0  # a bounded reward's window stays in its range
    assert y_domain(values, rng, threshold=0.85)[0] <= 0.85 <= y_domain(values, rng, threshold=0.85)[1]


def test_ticks_are_round_numbers_inside_the_range():
    assert ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert ticks(0.95, 1.0) == pytest.approx([0.95, 0.96, 0.97, 0.98, 0.99, 1.0])


def _ink(img, x0, x1, y0, y1):
    """Pixels in the box that differ from the background."""
    region = img[y0:y1, x0:x1]
    return int((np.abs(region - BG).max(axis=-1) > 0.15).sum())


def test_png_has_a_y_axis_per_panel_and_draws_a_flat_line_flat():
    p = payload()
    img = render_chart(p)[0].numpy()
    n = len(chart_specs(p))
    assert img.shape == (22 + n * 150, 768, 3)
    for k in range(n):  # tick labels left of every panel's plot
        top = 22 + k * 150
        assert _ink(img, 0, 54, top + 16, top + 120) > 40, k
    # flow_smoothness is exactly 0.5 everywhere: in its panel it is one row of pixels, not a full-height zigzag
    blue = np.array([95, 179, 255]) / 255.0
    top = 22 + 3 * 150
    rows = np.where((np.abs(img[top + 16: top + 120, 60:530] - blue).max(axis=-1) < 0.05).any(axis=1))[0]
    assert len(rows) and rows.max() - rows.min() <= 6, rows


def test_png_without_applicable_scores_says_so():
    p = {"version": 1, "frames": 9, "scores": {}}
    img = render_chart(p)[0].numpy()
    assert img.shape == (172, 768, 3) and _ink(img, 60, 300, 90, 110) > 20
