"""The competition evaluation: the served forecaster against statsforecast baselines on the official splits.

Each test set (M3 monthly / quarterly, M1 monthly, Tourism monthly) is forecast from the training parts `x` and
scored on the test parts `xx` (metrics.py). The forecaster runs through the service's own runtime
(`ForecasterRuntime`: the sidecar's feature module, the fast ONNX graph, the inverse transform), so what is scored
is what is served. The numpy Theta component alone is reported too, and the baselines are fitted by statsforecast
(baselines.py).

The other official splits of the same packages (M3 yearly / other, M1 quarterly / yearly, Tourism quarterly /
yearly; `--sets`) are scored the same way: nothing was designed or chosen on them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from models.forecaster.baselines import baselines
from models.forecaster.data import OTHER_SETS, TEST_SETS, TestSeries, test_set
from models.forecaster.features import make_inputs, to_original_units
from models.forecaster.metrics import band_coverage, score

ROWS = (
    "forecaster",
    "theta_component",
    "seasonal_naive",
    "auto_ets",
    "auto_theta",
    "auto_arima",
    "combination",
)
METRICS = (
    ("mase", "MASE", 3),
    ("smape", "sMAPE %", 2),
    ("pinball", "scaled pinball", 3),
    ("coverage_80", "10–90% coverage", 3),
)
BATCH = 64
BAND_SCALES = (0.9, 0.85)  # narrower bands the coverage table also scores
TAIL_MIN_HISTORY = 12  # a training tail is forecast only from at least this many values


def load_runtime(folder: Path):  # type: ignore[no-untyped-def]
    """The service's own runtime of the artifact in `folder` (the one `/v1/forecast` runs), on the CPU."""
    from models.sidecar import read
    from service.kinds.forecaster.runtime import ForecasterRuntime
    from service.runtime.base import Artifact, RuntimeOptions

    runtime = ForecasterRuntime(Artifact(folder, read(folder / "sidecar.json")), RuntimeOptions("cpu", 1))
    runtime.load()
    return runtime


def served_forecasts(runtime, series: list[TestSeries]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """[n, max_horizon, Q] in original units, through the service runtime in batches (the fast graph)."""
    out = []
    for lo in range(0, len(series), BATCH):
        items = [runtime.item(s.x.astype(np.float32), s.season_length) for s in series[lo : lo + BATCH]]
        for outcome in runtime.predict(items, False):
            if isinstance(outcome, Exception):
                raise outcome
            out.append(outcome.result.quantiles)
    return np.stack(out).astype(np.float64)


def theta_forecasts(series: list[TestSeries], context_length: int, max_horizon: int, n_q: int) -> np.ndarray:
    """The classical component alone: the Theta forecast for every quantile (a point forecast)."""
    feeds, scales = make_inputs(
        [s.x for s in series], [s.season_length for s in series], context_length, max_horizon
    )
    return to_original_units(np.repeat(feeds["anchor"][:, :, None], n_q, axis=-1), scales)


def training_tails(series: list[TestSeries]) -> list[TestSeries]:
    """The last horizon of each training part as a forecast window, from what precedes it: the same forecast one
    horizon earlier, scored on data the series has already shown (never the test part). Series whose training
    part is too short to keep TAIL_MIN_HISTORY values are left out."""
    return [
        TestSeries(s.name, s.x[: -len(s.xx)], s.x[-len(s.xx) :], s.season_length)
        for s in series
        if len(s.x) - len(s.xx) >= TAIL_MIN_HISTORY
    ]


def coverage_study(runtime, series: list[TestSeries], forecasts: np.ndarray) -> dict:  # type: ignore[no-untyped-def]
    """The 10–90% band on the test part at full width and narrowed (BAND_SCALES), and on the training tails."""
    quantiles = runtime.quantile_levels
    futures = [s.xx for s in series]
    tails = training_tails(series)
    return {
        "test": band_coverage(futures, forecasts, quantiles),
        "narrowed": {str(k): band_coverage(futures, forecasts, quantiles, k) for k in BAND_SCALES},
        "training_tail": band_coverage([s.xx for s in tails], served_forecasts(runtime, tails), quantiles),
        "n_tails": len(tails),
    }


def format_coverage(results: dict) -> str:
    head = (
        "### Coverage of the 10–90% band\n\n"
        "The forecaster's band on the test part, the same band narrowed around its median, and on each series' "
        "training tail (its last horizon, forecast from what precedes it).\n\n"
        "| set | test | "
        + " | ".join(f"test, band x {k}" for k in BAND_SCALES)
        + " | training tail (series) |\n| --- |"
        + " ---: |" * (2 + len(BAND_SCALES))
    )
    rows = [
        f"| {name} | {c['test']:.3f} | "
        + " | ".join(f"{c['narrowed'][str(k)]:.3f}" for k in BAND_SCALES)
        + f" | {c['training_tail']:.3f} ({c['n_tails']}) |"
        for name, c in ((n, r["coverage"]) for n, r in results.items())
    ]
    return head + "\n" + "\n".join(rows)


def evaluate_set(name: str, runtime, cache_dir: Path, recompute: bool, n_jobs: int = 1) -> dict:  # type: ignore[no-untyped-def]
    series = test_set(name)
    quantiles = runtime.quantile_levels
    start = time.perf_counter()
    forecasts = {"forecaster": served_forecasts(runtime, series)}
    served_seconds = time.perf_counter() - start
    forecasts["theta_component"] = theta_forecasts(
        series, runtime.config.context_length, runtime.max_horizon, len(quantiles)
    )
    base, base_seconds = (
        baselines(name, series, quantiles, cache_dir, recompute, n_jobs) if n_jobs else ({}, 0.0)
    )
    forecasts |= base
    args = ([s.x for s in series], [s.xx for s in series], [s.season_length for s in series])
    table = {row: score(*args, forecasts[row], quantiles) for row in ROWS if row in forecasts}
    return {
        "models": table,
        "coverage": coverage_study(runtime, series, forecasts["forecaster"]),
        "n_series": len(series),
        "horizon": len(series[0].xx),
        "forecaster_seconds": round(served_seconds, 2),
        "baseline_seconds": round(base_seconds, 1),
        "forecasts": forecasts,
    }


def format_table(name: str, result: dict) -> str:
    head = f"### {name} ({result['n_series']} series, h = {result['horizon']})\n\n"
    lines = [
        "| model | " + " | ".join(label for _, label, _ in METRICS) + " |",
        "| --- |" + " ---: |" * len(METRICS),
    ]
    for row, agg in result["models"].items():
        cells = []
        for key, _, digits in METRICS:
            value = (
                "—"
                if row == "theta_component" and key in ("pinball", "coverage_80")
                else f"{agg[key]:.{digits}f}"
            )
            cells.append(value)
        label = f"**{row}**" if row == "forecaster" else row
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


def run_evaluation(
    folder: Path, cache_dir: Path, recompute: bool, out: Path | None, sets: list[str], n_jobs: int = 1
) -> dict:
    runtime = load_runtime(folder)
    results, report = {}, []
    for name in sets:
        results[name] = evaluate_set(name, runtime, cache_dir, recompute, n_jobs)
        report.append(format_table(name, results[name]))
        print(report[-1] + "\n", flush=True)
    report.append(format_coverage(results))
    print(report[-1] + "\n", flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n\n".join(report) + "\n")
        summary = {
            n: {"models": r["models"], "coverage": r["coverage"], "baseline_seconds": r["baseline_seconds"]}
            for n, r in results.items()
        }
        out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
        forecasts = {f"{n}/{m}": f for n, r in results.items() for m, f in r["forecasts"].items()}
        np.savez(cache_dir.parent / f"{out.stem}_forecasts.npz", **forecasts)  # git-ignored, for inspection
    return results


ALL_SETS = list(TEST_SETS)
OTHER = list(OTHER_SETS)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifact", type=Path, default=Path("models/forecaster/artifacts/forecaster"))
    parser.add_argument("--sets", nargs="+", default=ALL_SETS, choices=ALL_SETS + OTHER)
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/forecaster/baselines"))
    parser.add_argument(
        "--recompute-baselines", action="store_true", help="refit statsforecast (no cache read)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/forecaster/evaluation.md"))
    parser.add_argument(
        "--n-jobs", type=int, default=1, help="statsforecast worker processes (0: no baselines)"
    )
    args = parser.parse_args()
    run_evaluation(args.artifact, args.cache_dir, args.recompute_baselines, args.out, args.sets, args.n_jobs)


if __name__ == "__main__":
    main()
