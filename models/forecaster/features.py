"""Inputs of the forecaster graph, shared by training and serving (numpy only: the service imports it).

Each series becomes one row of four float32 feeds, all in *scaled units* (values divided by the row's scale,
the mean |x| of the real context, so any series scale works and the output is rescaled with the same number):

- ``context``      [batch, context_length]  the most recent values, left-padded with 0 when shorter
- ``mask``         [batch, context_length]  1 = real value, 0 = padding
- ``seasonal_lag`` [batch, context_length]  the value one season earlier (x[t - m]); x[t] itself where the
                                            series has no value a season back (so the seasonal difference is 0)
- ``anchor``       [batch, max_horizon]     a seasonal naive forecast: the average of the last (up to 3) full
                                            seasons, moved to the level of the last season, repeated (the last
                                            value when m = 1); the network predicts around it

m is the row's season length; when the real context is not longer than m (a season cannot be seen), m = 1.
"""

from __future__ import annotations

import numpy as np

MAX_HORIZON = 24
SEASONS_AVERAGED = 3
INPUT_NAMES = ("context", "mask", "seasonal_lag", "anchor")


def _scale(values: np.ndarray) -> float:
    scale = float(np.mean(np.abs(values)))
    return scale if np.isfinite(scale) and scale > 1e-12 else 1.0


def _row(
    values: np.ndarray, season_length: int, context_length: int, max_horizon: int
) -> tuple[np.ndarray, ...]:
    x = values[-context_length:]  # [n]
    n = len(x)
    m = season_length if 1 <= season_length < n else 1
    lag = np.concatenate([x[:m], x[:-m]])  # [n]: x[t - m], or x[t] for the first season
    k = min(n // m, SEASONS_AVERAGED) if m > 1 else 1
    seasons = x[n - k * m :].reshape(k, m)  # [k, m]: the last k full seasons
    # their average pattern (less noisy than one season) moved to the level of the last season
    last_season = seasons.mean(0) + seasons[-1].mean() - seasons.mean()  # [m]
    anchor = last_season[np.arange(max_horizon) % m]  # [max_horizon]
    pad = context_length - n
    return (
        np.pad(x, (pad, 0)),
        np.pad(np.ones(n), (pad, 0)),
        np.pad(lag, (pad, 0)),
        anchor,
    )


def make_inputs(
    series_list: list[np.ndarray],
    season_lengths: list[int],
    context_length: int,
    max_horizon: int = MAX_HORIZON,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Feeds for the graph (float32, keyed by input name) and the per-row scales (float64 [batch])."""
    if len(series_list) != len(season_lengths):
        raise ValueError("series_list and season_lengths differ in length")
    rows, scales = [], np.ones(len(series_list), dtype=np.float64)
    for i, (series, m) in enumerate(zip(series_list, season_lengths, strict=True)):
        values = np.asarray(series, dtype=np.float64).reshape(-1)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("every series needs at least one value, all finite")
        scales[i] = _scale(values[-context_length:])
        rows.append(_row(values / scales[i], int(m), context_length, max_horizon))
    feeds = {name: np.stack([r[k] for r in rows]).astype(np.float32) for k, name in enumerate(INPUT_NAMES)}
    return feeds, scales


def to_original_units(quantiles: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """[batch, horizon, n_quantiles] in scaled units -> original units (float64)."""
    return np.asarray(quantiles, dtype=np.float64) * np.asarray(scales, dtype=np.float64)[:, None, None]
