"""statsforecast baselines on a competition test set: seasonal naive, AutoETS, AutoTheta, AutoARIMA and their
combination (the mean of ETS, Theta and ARIMA, quantile by quantile).

Forecasts are cached per test set in a git-ignored folder only to iterate quickly; `make eval-forecaster` passes
`recompute=True`, so the published tables always come from baselines fitted in the same run.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from models.forecaster.data import TestSeries

MODELS = ("seasonal_naive", "auto_ets", "auto_theta", "auto_arima")
COMBINED = ("auto_ets", "auto_theta", "auto_arima")


def _levels(quantiles: list[float]) -> list[int]:
    return sorted({round(abs(1 - 2 * t) * 100) for t in quantiles if t != 0.5})


def fit(series: list[TestSeries], quantiles: list[float], n_jobs: int = 1) -> dict[str, np.ndarray]:
    """{model: [n_series, h, Q]} for every baseline and "combination"."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    m, h = series[0].season_length, len(series[0].xx)
    frames = [
        pd.DataFrame({"unique_id": i, "ds": np.arange(len(s.x)), "y": s.x}) for i, s in enumerate(series)
    ]
    models = [
        SeasonalNaive(season_length=m, alias="seasonal_naive"),
        AutoETS(season_length=m, alias="auto_ets"),
        AutoTheta(season_length=m, alias="auto_theta"),
        AutoARIMA(season_length=m, alias="auto_arima"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sf = StatsForecast(models=models, freq=1, n_jobs=n_jobs)
        out = sf.forecast(df=pd.concat(frames), h=h, level=_levels(quantiles))
    out = out.sort_values(["unique_id", "ds"])
    result = {}
    for name in MODELS:
        cols = []
        for t in quantiles:
            level = round(abs(1 - 2 * t) * 100)
            cols.append(out[name] if t == 0.5 else out[f"{name}-{'lo' if t < 0.5 else 'hi'}-{level}"])
        q = np.stack([c.to_numpy(np.float64) for c in cols], axis=-1).reshape(len(series), h, len(quantiles))
        result[name] = np.sort(q, axis=-1)
    result["combination"] = np.mean([result[n] for n in COMBINED], axis=0)
    return result


def baselines(
    name: str,
    series: list[TestSeries],
    quantiles: list[float],
    cache_dir: Path,
    recompute: bool,
    n_jobs: int = 1,
) -> tuple[dict[str, np.ndarray], float]:
    """The baselines of one test set and the seconds their fit took (0 when read from the cache)."""
    path = cache_dir / f"{name}.npz"
    key = np.asarray([len(series), *quantiles, *(len(s.x) for s in series)], dtype=np.float64)
    if path.exists() and not recompute:
        stored = dict(np.load(path))
        if np.array_equal(stored.pop("key"), key):
            return stored, 0.0
    start = time.perf_counter()
    result = fit(series, quantiles, n_jobs)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, key=key, **result)
    return result, seconds
