"""Rolling-origin evaluation on the held-out tails: the RNN against statsforecast baselines.

Metrics per series (averaged over its origins), then aggregated over series:
- MASE: MAE of the median / in-sample MAE of the seasonal naive forecast (lag m; lag 1 when m = 1) on the
  history before the origin; aggregated by the geometric mean.
- sMAPE (%): mean of 200 |y - f| / (|y| + |f|); arithmetic mean.
- pinball: mean pinball loss over horizons and quantiles, divided by the same MASE denominator so series are
  comparable; arithmetic mean.
Baselines see at most the last BASELINE_HISTORY values (speed; the RNN sees its context_length).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.forecaster.windows import EvalWindows

BASELINES = ("naive", "seasonal_naive", "auto_ets", "auto_arima")
BASELINE_HISTORY = 600


def mase_denominator(history: np.ndarray, m: int) -> float:
    m = m if len(history) > m else 1
    scale = float(np.mean(np.abs(history[m:] - history[:-m]))) if len(history) > m else 0.0
    return scale if scale > 0 else max(float(np.mean(np.abs(history))), 1e-8) * 1e-3


def scores(
    y: np.ndarray, q: np.ndarray, quantiles: list[float], history: np.ndarray, m: int
) -> dict[str, float]:
    """y [h], q [h, Q] in original units."""
    denom = mase_denominator(history, m)
    f = q[:, quantiles.index(0.5)]
    err = y[:, None] - q  # [h, Q]
    tau = np.asarray(quantiles)[None, :]
    pinball = np.maximum(tau * err, (tau - 1) * err).mean()
    smape = np.mean(200 * np.abs(y - f) / np.maximum(np.abs(y) + np.abs(f), 1e-12))
    return {
        "mase": float(np.mean(np.abs(y - f)) / denom),
        "smape": float(smape),
        "pinball": float(pinball / denom),
    }


def _levels(quantiles: list[float]) -> list[int]:
    return sorted({round(abs(1 - 2 * t) * 100) for t in quantiles if t != 0.5})


def baseline_quantiles(name: str, history: np.ndarray, m: int, h: int, quantiles: list[float]) -> np.ndarray:
    """[h, Q] quantiles of one statsforecast model (prediction intervals at the matching levels)."""
    from statsforecast.models import AutoARIMA, AutoETS, Naive, SeasonalNaive

    y = history[-BASELINE_HISTORY:].astype(np.float64)
    m = m if len(y) > 2 * m else 1
    model = {
        "naive": lambda: Naive(),
        "seasonal_naive": lambda: SeasonalNaive(season_length=m),
        "auto_ets": lambda: AutoETS(season_length=m),
        "auto_arima": lambda: AutoARIMA(season_length=m),
    }[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model.forecast(y=y, h=h, level=_levels(quantiles))
    cols = []
    for t in quantiles:
        level = round(abs(1 - 2 * t) * 100)
        cols.append(out["mean"] if t == 0.5 else out[f"{'lo' if t < 0.5 else 'hi'}-{level}"])
    return np.sort(np.stack(cols, axis=-1), axis=-1)  # [h, Q]


def baseline_table(
    windows: EvalWindows, quantiles: list[float], cache: Path | None = None
) -> dict[str, list[np.ndarray]]:
    """Forecasts of every baseline for every window, cached as JSON (they do not depend on the RNN)."""
    key = f"{len(windows.origins)}:{quantiles}"
    if cache is not None and cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return {k: [np.asarray(a) for a in v] for k, v in stored["forecasts"].items()}
    out: dict[str, list[np.ndarray]] = {name: [] for name in BASELINES}
    for s, o in zip(windows.series, windows.origins, strict=True):
        for name in BASELINES:
            out[name].append(baseline_quantiles(name, s.values[:o], s.season_length, s.horizon, quantiles))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": key, "forecasts": {k: [a.tolist() for a in v] for k, v in out.items()}}
        cache.write_text(json.dumps(payload))
    return out


def aggregate(windows: EvalWindows, forecasts: list[np.ndarray], quantiles: list[float]) -> dict:
    """Per-series means over origins, then gmean MASE / mean sMAPE / mean pinball over series and per dataset."""
    per_series: dict[str, list[dict[str, float]]] = {}
    dataset_of: dict[str, str] = {}
    for s, o, q in zip(windows.series, windows.origins, forecasts, strict=True):
        h = min(s.horizon, len(q))  # a model with a shorter max_horizon is scored on what it forecasts
        y = s.values[o : o + h]
        per_series.setdefault(s.name, []).append(scores(y, q[:h], quantiles, s.values[:o], s.season_length))
        dataset_of[s.name] = s.dataset
    rows = {n: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for n, v in per_series.items()}

    def summary(names: list[str]) -> dict[str, float]:
        mase = np.array([rows[n]["mase"] for n in names])
        return {
            "mase_gmean": float(np.exp(np.mean(np.log(np.maximum(mase, 1e-8))))),
            "smape": float(np.mean([rows[n]["smape"] for n in names])),
            "pinball": float(np.mean([rows[n]["pinball"] for n in names])),
            "n_series": len(names),
        }

    datasets = sorted(set(dataset_of.values()))
    by_dataset = {d: summary([n for n in rows if dataset_of[n] == d]) for d in datasets}
    balanced = float(np.exp(np.mean([np.log(v["mase_gmean"]) for v in by_dataset.values()])))
    return {"all": summary(list(rows)) | {"mase_gmean_dataset_balanced": balanced}, "by_dataset": by_dataset}


def evaluation_table(
    windows: EvalWindows,
    rnn_forecasts: list[np.ndarray],
    quantiles: list[float],
    cache: Path | None = None,
) -> dict:
    """{model: aggregate} for the RNN ("forecaster") and every baseline, plus the time the baselines took."""
    start = time.perf_counter()
    base = baseline_table(windows, quantiles, cache)
    table = {"forecaster": aggregate(windows, rnn_forecasts, quantiles)}
    table |= {name: aggregate(windows, base[name], quantiles) for name in BASELINES}
    return {"models": table, "baseline_seconds": round(time.perf_counter() - start, 1)}


def rnn_forecasts(
    windows: EvalWindows, predict: Callable[[dict[str, np.ndarray]], np.ndarray]
) -> list[np.ndarray]:
    """predict(feeds) -> quantiles in scaled units; returns per window [max_horizon, Q] in original units."""
    from models.forecaster.features import to_original_units

    q = to_original_units(predict(windows.batch.feeds), windows.batch.scales)
    return list(q)


def format_table(result: dict) -> str:
    """A Markdown table of the headline numbers, one row per model."""
    lines = [
        "| model | MASE (gmean) | MASE (gmean of dataset gmeans) | sMAPE % | scaled pinball |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, agg in result["models"].items():
        a = agg["all"]
        lines.append(
            f"| {name} | {a['mase_gmean']:.3f} | {a['mase_gmean_dataset_balanced']:.3f} | "
            f"{a['smape']:.2f} | {a['pinball']:.3f} |"
        )
    return "\n".join(lines)


def format_by_dataset(result: dict) -> str:
    """A Markdown table of MASE (gmean over each dataset's series), one row per dataset, one column per model."""
    models = list(result["models"])
    first = result["models"][models[0]]["by_dataset"]
    lines = ["| dataset | series | " + " | ".join(models) + " |", "| --- | ---: |" + " ---: |" * len(models)]
    for dataset, row in first.items():
        cells = " | ".join(f"{result['models'][m]['by_dataset'][dataset]['mase_gmean']:.3f}" for m in models)
        lines.append(f"| {dataset} | {row['n_series']} | {cells} |")
    return "\n".join(lines)
