"""The classical component, in numpy only (the service runs it): the M3 Theta method, vectorised over a batch.

Rows are right-aligned in [B, T] arrays with a mask (1 = real value), so step t of every row has the same phase
relative to the forecast origin: phase(t) = (t - T) mod m, and forecast step h (1-based) has phase (h - 1) mod m.

Per row (Assimakopoulos & Nikolopoulos 2000, as in forecast::thetaf):
1. a 90% test of the autocorrelation at lag m decides whether the row is seasonal;
2. if so, classical multiplicative decomposition (centred moving average of order m, ratios averaged per phase)
   gives m seasonal indices, normalised to mean 1; otherwise all indices are 1;
3. on the deseasonalised series: simple exponential smoothing (alpha chosen on a grid by the one-step squared
   error) plus half the slope of a least-squares line: theta_h = level + b/2 * ((h - 1) + (1 - (1 - a)^n) / a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHAS = np.array([0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
Z_90 = 1.645  # one-sided 90% normal quantile of the seasonality test


@dataclass(frozen=True)
class Decomposition:
    season: np.ndarray  # [B, m] multiplicative indices by phase (mean 1; all 1 when not seasonal)
    seasonal: np.ndarray  # [B] bool: the test passed
    level: np.ndarray  # [B] SES level at the origin (deseasonalised units)
    slope: np.ndarray  # [B] least-squares slope of the deseasonalised series per step
    alpha: np.ndarray  # [B] chosen smoothing weight
    n: np.ndarray  # [B] number of real values

    def theta(self, horizon: int) -> np.ndarray:
        """[B, horizon] the Theta forecast, deseasonalised."""
        h = np.arange(horizon)[None, :]  # [1, H]
        a, n = self.alpha[:, None], self.n[:, None]  # [B, 1]
        return self.level[:, None] + 0.5 * self.slope[:, None] * (h + (1 - (1 - a) ** n) / a)


def phases(length: int, m: int) -> np.ndarray:
    """Phase of each of `length` right-aligned steps: (t - length) mod m."""
    return (np.arange(length) - length) % m


def seasonality_test(x: np.ndarray, mask: np.ndarray, m: int) -> np.ndarray:
    """[B] bool: |r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n), the test of forecast::thetaf (n >= 2m)."""
    n = mask.sum(1)  # [B]
    mean = (x * mask).sum(1) / np.maximum(n, 1)  # [B]
    c = (x - mean[:, None]) * mask  # [B, T]; 0 on padding
    var = (c * c).sum(1)  # [B]
    r = (
        np.stack([(c[:, k:] * c[:, :-k]).sum(1) for k in range(1, m + 1)], 1)
        / np.maximum(var, 1e-300)[:, None]
    )
    limit = Z_90 * np.sqrt((1 + 2 * (r[:, :-1] ** 2).sum(1)) / np.maximum(n, 1))  # [B]
    return (n >= 2 * m) & (var > 0) & (np.abs(r[:, -1]) > limit)


def seasonal_indices(x: np.ndarray, mask: np.ndarray, m: int) -> np.ndarray:
    """[B, m] multiplicative indices by phase from a centred moving average (x > 0 on real steps)."""
    B, T = x.shape
    w = np.full(m + 1, 1.0 / m) if m % 2 == 0 else np.full(m, 1.0 / m)
    if m % 2 == 0:
        w[0] = w[-1] = 0.5 / m  # the 2 x m moving average of an even season
    k = len(w)
    if k > T:
        return np.ones((B, m))
    windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=1)  # [B, T - k + 1, k]
    cma = windows @ w  # [B, T - k + 1], centred at t = j + k // 2
    valid = np.lib.stride_tricks.sliding_window_view(mask, k, axis=1).min(-1) > 0  # [B, T - k + 1]
    centre = np.arange(T - k + 1) + k // 2
    ratio = np.where(valid, x[:, centre] / np.where(valid, cma, 1.0), 0.0)  # [B, T - k + 1]
    onehot = phases(T, m)[centre][:, None] == np.arange(m)[None, :]  # [T - k + 1, m]
    total, count = ratio @ onehot, valid.astype(np.float64) @ onehot  # [B, m]
    season = np.where(count > 0, total / np.maximum(count, 1), 1.0)  # [B, m]
    return season / season.mean(1, keepdims=True)


def _ses_weights(length: int) -> np.ndarray:
    """[A, T, T]: level_t = sum_k W[a, t, k] y_k for SES started at y_0 (lower triangular, rows sum to 1)."""
    t, k = np.arange(length)[:, None], np.arange(length)[None, :]
    a = ALPHAS[:, None, None]
    w = np.where(k <= t, a * (1 - a) ** np.maximum(t - k, 0), 0.0)  # [A, T, T]
    w[:, :, 0] = (1 - a[:, :, 0]) ** np.arange(length)[None, :]  # the start value's weight
    return w


_WEIGHTS: dict[int, np.ndarray] = {}


def ses(y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Simple exponential smoothing on a grid of alphas: (level [B], alpha [B]) of the least one-step SSE.

    The level starts at the first real value. Padding is filled with that value, so the level stays there and
    the padding steps add no error: the result equals SES run on the real values alone. The recursion is linear,
    so all levels of all alphas are one matrix product (no Python loop over time)."""
    B, T = y.shape
    first = mask.argmax(1)  # [B]
    y = np.where(mask > 0, y, y[np.arange(B), first][:, None])  # [B, T]
    if T not in _WEIGHTS:
        _WEIGHTS[T] = _ses_weights(T)
    levels = np.tensordot(y, _WEIGHTS[T], axes=([1], [2]))  # [B, A, T]
    err = y[:, None, 1:] - levels[:, :, :-1]  # [B, A, T - 1]: one-step errors
    best = (err * err).sum(-1).argmin(1)  # [B]
    return levels[np.arange(B), best, -1], ALPHAS[best]


def least_squares_slope(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B] slope per step of the least-squares line through the real values (0 for a single value)."""
    t = np.arange(y.shape[1], dtype=np.float64)[None, :]
    n = np.maximum(mask.sum(1), 1)
    tm, ym = (t * mask).sum(1) / n, (y * mask).sum(1) / n
    dt = (t - tm[:, None]) * mask
    return (dt * (y - ym[:, None])).sum(1) / np.maximum((dt * dt).sum(1), 1e-12)


def decompose(x: np.ndarray, mask: np.ndarray, m: np.ndarray) -> Decomposition:
    """x [B, T] right-aligned, positive on real steps; m [B] season lengths (rows may differ)."""
    B, T = x.shape
    m_max = int(m.max()) if B else 1
    season = np.ones((B, m_max))
    seasonal = np.zeros(B, dtype=bool)
    for period in np.unique(m):
        rows = np.flatnonzero(m == period)
        if period <= 1:
            continue
        test = seasonality_test(x[rows], mask[rows], int(period))
        if test.any():
            hit = rows[test]
            idx = seasonal_indices(x[hit], mask[hit], int(period))  # [b, period]
            season[hit, :] = idx[:, np.arange(m_max) % period]  # only the first `period` columns are read
            seasonal[hit] = True
    deseason = x / take_phase(season, m, np.arange(T)[None, :] - T)  # [B, T]
    deseason = np.where(mask > 0, deseason, 0.0)
    level, alpha = ses(deseason, mask)
    return Decomposition(season, seasonal, level, least_squares_slope(deseason, mask), alpha, mask.sum(1))


def take_phase(season: np.ndarray, m: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """season [B, m_max] indexed at offsets [B or 1, K] (steps relative to the origin: -1 = last value,
    0 = first forecast step), each row with its own m -> [B, K]."""
    rows = np.arange(season.shape[0])[:, None]  # [B, 1]
    return season[rows, offsets % np.maximum(m, 1)[:, None]]
