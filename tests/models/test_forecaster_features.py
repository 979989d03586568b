"""The numpy-only input builder shared by training and the service."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models.forecaster.features import INPUT_NAMES, make_inputs, to_original_units


def test_features_module_imports_neither_torch_nor_pandas() -> None:
    code = "import sys, models.forecaster.features; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_short_series_is_left_padded_and_scaled_by_mean_abs() -> None:
    feeds, scales = make_inputs([np.array([2.0, 4.0, 6.0])], [1], context_length=5, max_horizon=3)
    assert list(feeds) == list(INPUT_NAMES)
    assert all(v.dtype == np.float32 for v in feeds.values())
    assert scales.tolist() == [4.0]
    np.testing.assert_array_equal(feeds["context"], [[0, 0, 0.5, 1.0, 1.5]])
    np.testing.assert_array_equal(feeds["mask"], [[0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(feeds["seasonal_lag"], [[0, 0, 0.5, 0.5, 1.0]])
    np.testing.assert_array_equal(feeds["anchor"], [[1.5, 1.5, 1.5]])


def test_long_series_is_truncated_to_the_latest_context_with_seasonal_lag_and_anchor() -> None:
    series = np.arange(1.0, 21.0)  # 1..20
    feeds, scales = make_inputs([series], [4], context_length=8, max_horizon=6)
    window = np.arange(13.0, 21.0)
    assert scales[0] == pytest.approx(window.mean())
    np.testing.assert_allclose(feeds["context"][0] * scales[0], window, rtol=1e-6)
    # inside the window the first season has no value a season back: its lag is the value itself
    np.testing.assert_allclose(
        feeds["seasonal_lag"][0] * scales[0], [13, 14, 15, 16, 13, 14, 15, 16], rtol=1e-6
    )
    np.testing.assert_allclose(feeds["anchor"][0] * scales[0], [17, 18, 19, 20, 17, 18], rtol=1e-6)


def test_season_longer_than_the_series_falls_back_to_the_last_value() -> None:
    feeds, _ = make_inputs([np.array([1.0, 2.0, 3.0])], [12], context_length=6, max_horizon=2)
    np.testing.assert_allclose(feeds["anchor"], [[1.5, 1.5]])


def test_zero_series_gets_unit_scale_and_rejects_non_finite_values() -> None:
    _, scales = make_inputs([np.zeros(4)], [1], context_length=4)
    assert scales.tolist() == [1.0]
    with pytest.raises(ValueError, match="finite"):
        make_inputs([np.array([1.0, np.nan])], [1], context_length=4)


def test_to_original_units_multiplies_each_row_by_its_scale() -> None:
    q = np.ones((2, 3, 2), dtype=np.float32)
    out = to_original_units(q, np.array([2.0, 10.0]))
    assert out.dtype == np.float64
    assert out[0].max() == 2.0 and out[1].min() == 10.0
