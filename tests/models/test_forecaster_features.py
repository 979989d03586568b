"""The numpy-only input builder shared by training and the service, and its classical (Theta) component."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models.forecaster.classical import ALPHAS, decompose, seasonality_test, ses, take_phase
from models.forecaster.features import (
    INPUT_NAMES,
    N_STATIC,
    make_inputs,
    to_model_units,
    to_original_units,
)


def _seasonal(n: int = 96, m: int = 12, trend: float = 1.0) -> np.ndarray:
    t = np.arange(n)
    pattern = 1 + 0.3 * np.sin(2 * np.pi * np.arange(m) / m)
    return (200 + trend * t) * pattern[t % m]


def test_features_module_imports_neither_torch_nor_pandas() -> None:
    code = "import sys, models.forecaster.features; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_feeds_have_the_declared_names_shapes_and_left_padding() -> None:
    feeds, scales = make_inputs(
        [np.arange(1.0, 11.0), _seasonal()], [1, 12], context_length=16, max_horizon=6
    )
    assert list(feeds) == list(INPUT_NAMES)
    assert all(v.dtype == np.float32 for v in feeds.values())
    assert feeds["context"].shape == feeds["mask"].shape == feeds["seasonal"].shape == (2, 16)
    assert feeds["anchor"].shape == (2, 6) and feeds["static"].shape == (2, N_STATIC)
    assert scales.shape == (2, 2 + 6)
    np.testing.assert_array_equal(feeds["mask"][0], [0] * 6 + [1] * 10)
    assert not feeds["context"][0, :6].any() and not feeds["seasonal"][0, :6].any()


def test_inputs_are_scale_free_and_the_inverse_scales_back() -> None:
    series = [_seasonal(), np.abs(np.random.default_rng(0).normal(5, 2, 30))]
    feeds, scales = make_inputs(series, [12, 1], 24, 12)
    feeds_k, scales_k = make_inputs([1000 * s for s in series], [12, 1], 24, 12)
    for name in INPUT_NAMES:
        np.testing.assert_allclose(feeds_k[name], feeds[name], atol=1e-5)
    q = np.random.default_rng(1).normal(0, 0.1, (2, 12, 3))
    np.testing.assert_allclose(to_original_units(q, scales_k), 1000 * to_original_units(q, scales), rtol=1e-9)


def test_a_multiplicative_seasonal_series_is_recognised_and_its_anchor_continues_it() -> None:
    x = _seasonal(n=120, trend=0.0)
    feeds, scales = make_inputs([x[:96]], [12], context_length=24, max_horizon=24)
    assert feeds["static"][0, 4] == 1.0  # the seasonality test passed
    assert np.abs(feeds["context"]).max() < 1e-6  # level x season explains every value: log residual 0
    theta = to_original_units(feeds["anchor"][:, :, None], scales)[0, :, 0]
    np.testing.assert_allclose(theta, x[96:], rtol=1e-6)


def test_white_noise_is_not_seasonal_and_a_short_series_is_never() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(10, 1, (2, 60))
    mask = np.ones_like(x)
    assert not seasonality_test(x, mask, 12).any()
    short = np.tile(_seasonal(n=20)[None], (1, 1))
    assert not seasonality_test(short, np.ones_like(short), 12).any()  # fewer than 2 seasons


def test_ses_on_padded_rows_equals_the_recursion_on_the_real_values() -> None:
    rng = np.random.default_rng(2)
    y = rng.lognormal(size=(2, 30))
    mask = np.ones_like(y)
    mask[1, :12] = 0.0
    level, alpha = ses(y, mask)
    for row, start in ((0, 0), (1, 12)):
        values = y[row, start:]
        best = (np.inf, 0.0, 0.0)
        for a in ALPHAS:
            lev, sse = values[0], 0.0
            for v in values[1:]:
                sse += (v - lev) ** 2
                lev += a * (v - lev)
            best = min(best, (sse, lev, a))
        assert level[row] == pytest.approx(best[1]) and alpha[row] == best[2]


def test_theta_of_a_straight_line_is_half_its_slope_above_the_smoothed_level() -> None:
    y = 100 + 2.0 * np.arange(40.0)
    dec = decompose(y[None], np.ones((1, 40)), np.array([1]))
    assert dec.slope[0] == pytest.approx(2.0)
    theta = dec.theta(3)[0]
    np.testing.assert_allclose(np.diff(theta), 1.0)  # half the slope per step


def test_non_positive_series_are_shifted_and_round_trip() -> None:
    series = [np.array([-3.0, 0.0, 2.0, 5.0, -1.0, 4.0, 0.0, 3.0]), np.zeros(8)]
    feeds, scales = make_inputs(series, [1, 1], context_length=8, max_horizon=4)
    assert all(np.isfinite(v).all() for v in feeds.values())
    assert scales[0, 1] > 3.0 and scales[1, 1] == 1.0  # shift c = -min + mean|x| (1 for an all-zero row)
    assert feeds["static"][:, 8].tolist() == [1.0, 1.0]
    y = np.array([[1.0, -2.0, 0.0, 7.0], [0.0, 0.5, -0.5, 0.0]])
    np.testing.assert_allclose(
        to_original_units(to_model_units(y, scales)[..., None], scales)[..., 0], y, atol=1e-9
    )


def test_constant_series_gives_a_flat_anchor_and_non_finite_values_are_refused() -> None:
    feeds, scales = make_inputs([np.full(30, 42.0)], [12], context_length=12, max_horizon=6)
    np.testing.assert_allclose(to_original_units(feeds["anchor"][:, :, None], scales)[0, :, 0], 42.0)
    with pytest.raises(ValueError, match="finite"):
        make_inputs([np.array([1.0, np.nan])], [1], context_length=4)


def test_take_phase_reads_each_rows_own_season_length() -> None:
    season = np.arange(24, dtype=np.float64).reshape(2, 12)  # row 0: m = 12, row 1: m = 4 (first 4 columns)
    m = np.array([12, 4])
    offsets = np.arange(-6, 6)[None, :]  # -1 = the last value's phase, 0 = the first forecast step's
    got = take_phase(season, m, offsets)
    expected = [[season[r, o % m[r]] for o in range(-6, 6)] for r in range(2)]
    np.testing.assert_array_equal(got, expected)
    per_row = np.stack([np.arange(-3, 0), np.arange(0, 3)])  # [B, K] offsets, one row each
    np.testing.assert_array_equal(take_phase(season, m, per_row), [[9, 10, 11], [12, 13, 14]])
