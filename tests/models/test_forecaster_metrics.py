"""The competition metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from models.forecaster.metrics import band_coverage, score

QUANTILES = [0.1, 0.5, 0.9]


def band(median: np.ndarray, half_width: float) -> np.ndarray:
    return np.stack([median - half_width, median, median + half_width], axis=1)


def test_mase_and_coverage_of_a_hand_computed_case() -> None:
    history = np.array([1.0, 3.0, 2.0, 4.0])  # lag-1 naive in-sample MAE: (2 + 1 + 2) / 3
    truth = np.array([5.0, 7.0])
    forecast = band(np.array([4.0, 4.0]), 2.0)  # errors 1 and 3; 7 lies outside [2, 6]
    got = score([history], [truth], [1], [forecast], QUANTILES)
    assert got["mase"] == pytest.approx(2.0 / (5 / 3))
    assert got["coverage_80"] == pytest.approx(0.5)


def test_band_coverage_narrows_the_band_around_the_median() -> None:
    truth = [np.array([10.0, 12.0, 14.0, 19.0]), np.array([0.0, 0.0])]
    forecasts = [band(np.full(4, 10.0), 5.0), band(np.full(2, 1.0), 2.0)]
    # full width: [5, 15] holds 3 of 4, [-1, 3] holds 2 of 2
    assert band_coverage(truth, forecasts, QUANTILES) == pytest.approx((0.75 + 1.0) / 2)
    # x 0.5: [7.5, 12.5] holds 10 and 12; [0, 2] still holds 0 (edges count)
    assert band_coverage(truth, forecasts, QUANTILES, 0.5) == pytest.approx((0.5 + 1.0) / 2)
    # forecasts longer than the truth are cut to it, as in `score`
    long = [band(np.full(6, 10.0), 5.0), band(np.full(6, 1.0), 0.5)]
    assert band_coverage(truth, long, QUANTILES) == pytest.approx((0.75 + 0.0) / 2)
