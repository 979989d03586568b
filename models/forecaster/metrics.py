"""Forecast accuracy as the competitions score it (numpy only).

- MASE (M4 definition): MAE of the median over the horizon / in-sample MAE of the seasonal naive forecast with
  lag m on the training part (lag 1 when the series is not longer than m); arithmetic mean over series.
- sMAPE (%): mean over the horizon of 200 |y - f| / (|y| + |f|); arithmetic mean over series.
- scaled pinball: mean pinball loss over horizon and quantiles / the same MASE denominator; mean over series.
- coverage: share of the truth inside the 10–90% band (the 0.1 and 0.9 quantiles), over all series and steps.
"""

from __future__ import annotations

import numpy as np


def mase_denominator(history: np.ndarray, m: int) -> float:
    m = m if len(history) > m else 1
    scale = float(np.mean(np.abs(history[m:] - history[:-m]))) if len(history) > m else 0.0
    return scale if scale > 0 else max(float(np.mean(np.abs(history))), 1e-8) * 1e-3


def series_scores(
    y: np.ndarray, q: np.ndarray, quantiles: list[float], history: np.ndarray, m: int
) -> dict[str, float]:
    """y [h], q [h, Q] in original units."""
    denom = mase_denominator(history, m)
    f = q[:, quantiles.index(0.5)]
    err = y[:, None] - q  # [h, Q]
    tau = np.asarray(quantiles)[None, :]
    pinball = np.maximum(tau * err, (tau - 1) * err).mean()
    smape = np.mean(200 * np.abs(y - f) / np.maximum(np.abs(y) + np.abs(f), 1e-12))
    inside = (y >= q[:, quantiles.index(0.1)]) & (y <= q[:, quantiles.index(0.9)])
    return {
        "mase": float(np.mean(np.abs(y - f)) / denom),
        "smape": float(smape),
        "pinball": float(pinball / denom),
        "coverage_80": float(inside.mean()),
    }


def score(
    histories: list[np.ndarray],
    futures: list[np.ndarray],
    season_lengths: list[int],
    forecasts: np.ndarray | list[np.ndarray],
    quantiles: list[float],
) -> dict[str, float]:
    """Means over series of every metric; forecasts [n, >= h, Q] (cut to each series' horizon)."""
    # a model with a shorter max_horizon than the set's horizon (the tiny test models) is scored on what it forecasts
    rows = [
        series_scores(y[: len(q)], np.asarray(q)[: len(y)], quantiles, x, m)
        for x, y, m, q in zip(histories, futures, season_lengths, forecasts, strict=True)
    ]
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return out | {"n_series": len(rows)}


def band_coverage(
    futures: list[np.ndarray],
    forecasts: np.ndarray | list[np.ndarray],
    quantiles: list[float],
    scale: float = 1.0,
) -> float:
    """Coverage of the 10–90% band (mean over series, as `score`) with both edges' distances from the median
    multiplied by `scale`: 0.9 is the band made 10% narrower around the same median."""
    i10, i50, i90 = quantiles.index(0.1), quantiles.index(0.5), quantiles.index(0.9)
    shares = []
    for y, q in zip(futures, forecasts, strict=True):
        q = np.asarray(q)[: len(y)]
        mid = q[:, i50]
        low, high = mid + scale * (q[:, i10] - mid), mid + scale * (q[:, i90] - mid)
        shares.append(float(((y >= low) & (y <= high)).mean()))
    return float(np.mean(shares))
