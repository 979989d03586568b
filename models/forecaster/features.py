"""Inputs of the forecaster graph, shared by training and serving (numpy only: the service imports it).

ES-RNN-style normalisation (Smyl 2020): each series is divided by its own level and seasonality, and the network
works on the log of what remains. Per row, on the last HISTORY values:

1. values <= 0 anywhere: the row is shifted by c = -min + mean|x| (so the log exists); otherwise c = 0;
2. the M3 Theta method (classical.py) gives multiplicative seasonal indices s (by phase; 1 when the 90%
   seasonality test fails), the SES level L at the origin and the Theta forecast theta_h (deseasonalised);
3. the network sees z_t = log((x_t + c) / (s_t L)) and predicts quantiles of z_{T+h} around the anchor
   log(theta_h / L); `to_original_units` maps them back: L * s_{T+h} * exp(q) - c.

Feeds (float32):
- ``context``  [batch, context_length]  z_t of the latest values, left-padded with 0
- ``mask``     [batch, context_length]  1 = real value, 0 = padding
- ``seasonal`` [batch, context_length]  log s_t (0 on padding and for non-seasonal rows)
- ``anchor``   [batch, max_horizon]     log(theta_h / L): the Theta forecast in the network's space
- ``static``   [batch, N_STATIC]        season length one-hot (1 / 4 / 12 / other), seasonal test, SES alpha,
                                        log(n) / 5, 10 * slope / L, shifted flag

`scales` (the state `to_original_units` needs) is [batch, 2 + max_horizon]: L, c, then s for each forecast step.
"""

from __future__ import annotations

import numpy as np

from models.forecaster.classical import decompose, take_phase

MAX_HORIZON = 24
HISTORY = 144  # values the classical statistics see (12 years of months); the network sees context_length
INPUT_NAMES = ("context", "mask", "seasonal", "anchor", "static")
N_STATIC = 10
THETA_FLOOR = 0.05  # a falling Theta line is floored at 5% of the level before the log


def _stack(series_list: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    x, mask = np.zeros((len(series_list), length)), np.zeros((len(series_list), length))
    for i, series in enumerate(series_list):
        values = np.asarray(series, dtype=np.float64).reshape(-1)[-length:]
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("every series needs at least one value, all finite")
        x[i, length - values.size :], mask[i, length - values.size :] = values, 1.0
    return x, mask


def make_inputs(
    series_list: list[np.ndarray],
    season_lengths: list[int],
    context_length: int,
    max_horizon: int = MAX_HORIZON,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Feeds for the graph (float32, keyed by input name) and the per-row state for `to_original_units`."""
    if len(series_list) != len(season_lengths):
        raise ValueError("series_list and season_lengths differ in length")
    T = max(HISTORY, context_length)
    x, mask = _stack(series_list, T)  # [B, T] right-aligned
    n = mask.sum(1)  # [B]
    m = np.array([max(int(k), 1) for k in season_lengths])  # [B]
    abs_mean = (np.abs(x) * mask).sum(1) / n
    low = np.where(mask > 0, x, np.inf).min(1)
    shift = np.where(low > 0, 0.0, -low + np.where(abs_mean > 0, abs_mean, 1.0))  # [B]
    xp = np.where(mask > 0, x + shift[:, None], 1.0)  # [B, T] positive; padding 1 is never read
    dec = decompose(xp, mask, m)
    level = dec.level  # [B] > 0: a convex combination of positive values
    s_hist = take_phase(dec.season, m, np.arange(T)[None, :] - T)  # [B, T]
    z = np.log(xp / (s_hist * level[:, None])) * mask  # [B, T]
    theta = dec.theta(max_horizon)  # [B, H]
    anchor = np.log(np.maximum(theta, THETA_FLOOR * level[:, None]) / level[:, None])  # [B, H]
    s_future = take_phase(dec.season, m, np.arange(max_horizon)[None, :])  # [B, H]
    static = np.stack(
        [
            m == 1,
            m == 4,
            m == 12,
            (m != 1) & (m != 4) & (m != 12),
            dec.seasonal,
            dec.alpha,
            np.log(n) / 5,
            np.clip(10 * dec.slope / level, -3, 3),
            shift > 0,
        ],
        axis=1,
    ).astype(np.float64)
    spare = np.zeros((static.shape[0], N_STATIC - static.shape[1]))  # one spare column, always 0
    static = np.concatenate([static, spare], axis=1)
    C = context_length
    feeds = {
        "context": z[:, -C:],
        "mask": mask[:, -C:],
        "seasonal": np.log(s_hist[:, -C:]) * mask[:, -C:],
        "anchor": anchor,
        "static": static,
    }
    scales = np.concatenate([level[:, None], shift[:, None], s_future], axis=1)  # [B, 2 + H]
    return {k: v.astype(np.float32) for k, v in feeds.items()}, scales


def to_original_units(quantiles: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """[batch, horizon, n_quantiles] in the network's log space -> original units (float64)."""
    q = np.clip(np.asarray(quantiles, dtype=np.float64), -30.0, 30.0)
    horizon = q.shape[1]
    level, shift, season = scales[:, 0], scales[:, 1], scales[:, 2 : 2 + horizon]
    return level[:, None, None] * season[:, :, None] * np.exp(q) - shift[:, None, None]


def to_model_units(y: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Targets [batch, horizon] in original units -> the network's log space (the inverse of the above; values
    that fall below -c are floored at 0.1% of the level first)."""
    horizon = y.shape[1]
    level, shift, season = scales[:, :1], scales[:, 1:2], scales[:, 2 : 2 + horizon]
    return np.log(np.maximum(y + shift, 1e-3 * level * season) / (level * season))
