"""Forecaster runtime: inputs built by the artifact's numpy-only feature module, quantiles back in input units."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from service.runtime.base import ArtifactError, FloatArray, Runtime, split_paths


@dataclass(frozen=True)
class ForecastItem:
    series: FloatArray  # (T,)
    season_length: int
    diagnostic: bool = False


@dataclass(frozen=True)
class ForecastResult:
    quantiles: FloatArray  # (max_horizon, n_model_quantiles), input units, sorted along the last axis
    activations: FloatArray | None  # (n_layers, n_statistics)


def interpolate_quantiles(levels: list[float], values: FloatArray, wanted: list[float]) -> FloatArray:
    """Quantiles at `wanted` levels, linear between the model's levels; `values` is (H, n_levels)."""
    out = np.empty((values.shape[0], len(wanted)), dtype=np.float32)  # (H, n_wanted)
    for j, level in enumerate(wanted):
        out[:, j] = [np.interp(level, levels, row) for row in values]
    return out


class ForecasterRuntime(Runtime[ForecastItem, ForecastResult]):
    def _load_extras(self) -> None:
        block = self.artifact.sidecar["forecaster"]
        self.context_length = int(block["context_length"])
        self.max_horizon = int(block["max_horizon"])
        self.quantile_levels = [float(q) for q in block["quantiles"]]
        self.default_season_length = int(block.get("season_length", 1))
        self.min_length = int(block.get("min_length", 8))
        try:
            self.features: ModuleType = importlib.import_module(str(block["features"]))
        except ImportError as exc:
            raise ArtifactError(f"cannot import the feature module {block['features']!r}: {exc}") from exc
        self._takes_max_horizon = "max_horizon" in inspect.signature(self.features.make_inputs).parameters

    def warmup_batches(self, batch_size: int) -> list[list[ForecastItem]]:
        t = np.arange(self.context_length, dtype=np.float32)
        series = (100 + 10 * np.sin(2 * np.pi * t / 12) + t).astype(np.float32)
        return [
            [ForecastItem(series, 12, diagnostic=diag) for _ in range(batch_size)] for diag in (False, True)
        ]

    def predict(self, items: list[ForecastItem]) -> list[ForecastResult]:
        results: list[ForecastResult | None] = [None] * len(items)
        for path, indices in zip(
            ("fast", "diagnostic"), split_paths([i.diagnostic for i in items]), strict=True
        ):
            if not indices:
                continue
            quantiles, activations = self._run(path, [items[i] for i in indices])
            for row, index in enumerate(indices):
                stats = activations[row] if activations is not None else None
                results[index] = ForecastResult(quantiles[row], stats)
        return [result for result in results if result is not None]

    def _run(self, path: str, items: list[ForecastItem]) -> tuple[FloatArray, FloatArray | None]:
        extra = {"max_horizon": self.max_horizon} if self._takes_max_horizon else {}
        feeds, scales = self.features.make_inputs(
            [item.series for item in items],
            [item.season_length for item in items],
            self.context_length,
            **extra,
        )
        outputs = ["quantiles"] if path == "fast" else ["quantiles", "activations"]
        values = self.run_graph(path, feeds, outputs)
        quantiles = np.asarray(
            self.features.to_original_units(values[0], scales), dtype=np.float32
        )  # (B, H, Q)
        return quantiles, (values[1] if path == "diagnostic" else None)
