"""The fixed calibration that puts every scorer on one 0..1 scale for the composite (rewards/calibration.py)."""
from __future__ import annotations

import math

import pytest
import torch

from rewardloop.rewards import SCORERS, calibration
from rewardloop.rewards.calibration import BROKEN_LEVEL, CLEAN_LEVEL, Calibration, fit


def test_every_scorer_has_a_calibration_with_its_anchors_in_its_range():
    assert set(calibration.CALIBRATIONS) == set(SCORERS)
    for name, cal in calibration.CALIBRATIONS.items():
        lo, hi = SCORERS[name].value_range
        assert cal.broken < cal.clean, name
        if math.isfinite(lo) and math.isfinite(hi):  # FVD-lite's unbiased estimate can pass its nominal 0
            # the broken anchor may sit below the range: the spread floor widens a curve (seam consistency)
            assert lo <= cal.clean <= hi, name
        assert cal.how, name


@pytest.mark.parametrize("name", sorted(calibration.CALIBRATIONS))
def test_anchors_map_to_the_clean_and_broken_levels_and_order_is_kept(name):
    cal = calibration.get(name)
    assert cal(cal.clean) == pytest.approx(CLEAN_LEVEL) and cal(cal.broken) == pytest.approx(BROKEN_LEVEL)
    raw = torch.linspace(cal.broken - 3 * (cal.clean - cal.broken), cal.clean + 3 * (cal.clean - cal.broken), 50)
    out = cal(raw)
    assert out.dtype == torch.float32 and ((out >= 0) & (out <= 1)).all()
    assert (out[1:] >= out[:-1]).all()  # never changes which of two clips a scorer prefers
    assert out.tolist() == pytest.approx([cal(float(r)) for r in raw.double()], abs=1e-6)
    assert math.isnan(cal(math.nan)) and torch.isnan(cal(torch.tensor([math.nan]))).all()
    assert cal(-1e300) == 0.0 and cal(1e300) == 1.0  # no overflow at the extremes


def test_fit_takes_the_clean_tenth_percentile_and_the_broken_median():
    clean = torch.linspace(0.80, 0.99, 101)
    broken = torch.tensor([0.1, 0.2, 0.3, 0.5, 0.6, math.nan])
    cal = fit(clean.tolist(), broken.tolist(), "test")
    assert cal.clean == pytest.approx(float(torch.quantile(clean.double(), 0.10)))
    assert cal.broken == pytest.approx(0.3)  # NaN (not applicable) left out
    # corruptions that hardly move the scorer: the broken anchor sits twice the clean spread below the clean one
    weak = fit(clean.tolist(), (clean - 0.01).tolist(), "weak")
    spread = float(torch.quantile(clean.double(), 0.5)) - weak.clean
    assert weak.broken == pytest.approx(weak.clean - 2 * spread)
    with pytest.raises(ValueError, match="clean > broken"):
        Calibration(clean=0.2, broken=0.5, how="inverted")
    with pytest.raises(ValueError, match=">= 2 finite"):
        fit([0.9], [0.1, 0.2], "too few")


def test_unknown_scorer_is_a_clear_error():
    with pytest.raises(ValueError, match="no calibration for scorer 'nope'"):
        calibration.get("nope")
