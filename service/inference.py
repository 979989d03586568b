"""What an inference request does, whatever protocol it came in by: resolve, check, batch, sample statistics."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import InvalidInput
from service.repository import ModelEntry, ModelRepository
from service.runtime.base import FloatArray
from service.runtime.chatbot import ChatItem, ChatResult
from service.runtime.forecaster import ForecasterRuntime, ForecastItem, interpolate_quantiles
from service.schemas import Activations, LayerStatistics


@dataclass(frozen=True)
class Forecast:
    levels: list[float]
    quantiles: FloatArray  # (horizon, n_levels), input units
    median: FloatArray  # (horizon,)
    activations: FloatArray | None


class Inference:
    def __init__(self, repository: ModelRepository, sample_rate: float, seed: int | None = None) -> None:
        self.repository = repository
        self.sample_rate = sample_rate
        self._random = random.Random(seed)

    def _diagnostic(self, requested: bool) -> bool:
        """Requested statistics always run the instrumented graph; other traffic at the sample rate."""
        return requested or (self.sample_rate > 0 and self._random.random() < self.sample_rate)

    def _observe(self, entry: ModelEntry, activations: list[FloatArray | None]) -> None:
        assert entry.runtime is not None
        for stats in activations:
            if stats is not None:
                entry.runtime.monitor.observe(stats)

    async def chat(
        self, model: str, texts: list[str], return_activations: bool
    ) -> tuple[ModelEntry, list[ChatResult]]:
        entry = self.repository.get(model, kind="chatbot")
        assert entry.batcher is not None
        items = [ChatItem(text, self._diagnostic(return_activations)) for text in texts]
        results: list[ChatResult] = await entry.batcher.submit_many(items)
        self._observe(entry, [result.activations for result in results])
        return entry, results

    async def forecast(
        self,
        model: str,
        series: list[FloatArray],
        horizon: int | None,
        season_length: int | None,
        quantiles: list[float] | None,
        return_activations: bool,
    ) -> tuple[ModelEntry, list[Forecast]]:
        entry = self.repository.get(model, kind="forecaster")
        runtime = entry.runtime
        assert isinstance(runtime, ForecasterRuntime) and entry.batcher is not None
        horizon = runtime.max_horizon if horizon is None else horizon
        levels = runtime.quantile_levels if quantiles is None else sorted(set(quantiles))
        self._check_forecast(runtime, series, horizon, levels)
        season = season_length or runtime.default_season_length
        items = [
            ForecastItem(np.asarray(s, dtype=np.float32), season, self._diagnostic(return_activations))
            for s in series
        ]
        results = await entry.batcher.submit_many(items)
        self._observe(entry, [result.activations for result in results])
        forecasts = []
        for result in results:
            values = result.quantiles[:horizon]  # (horizon, n_model_levels)
            chosen = interpolate_quantiles(runtime.quantile_levels, values, levels)
            median = interpolate_quantiles(runtime.quantile_levels, values, [0.5])[:, 0]
            forecasts.append(
                Forecast(levels, chosen, median, result.activations if return_activations else None)
            )
        return entry, forecasts

    @staticmethod
    def _check_forecast(
        runtime: ForecasterRuntime, series: list[FloatArray], horizon: int, levels: list[float]
    ) -> None:
        if horizon > runtime.max_horizon:
            raise InvalidInput(
                f"horizon: {horizon} is beyond the model's maximum horizon of {runtime.max_horizon}"
            )
        lowest, highest = min(runtime.quantile_levels), max(runtime.quantile_levels)
        outside = [q for q in levels if not lowest <= q <= highest]
        if outside:
            raise InvalidInput(f"quantiles: {outside} outside the model's range [{lowest:g}, {highest:g}]")
        for row, values in enumerate(series):
            if len(values) < runtime.min_length:
                raise InvalidInput(
                    f"series: at least {runtime.min_length} points are needed (row {row} has {len(values)})"
                )
            if not np.isfinite(values).all():
                raise InvalidInput(f"series: row {row} has non-finite values")


def activations_payload(model: str, entry: ModelEntry, stats: FloatArray) -> Activations:
    """A request's own statistics in the contract's shape (non-finite values become null)."""
    config: dict[str, Any] = entry.artifact.sidecar.get("config", {})
    statistics = entry.artifact.statistics
    layers = []
    for layer, row in zip(entry.artifact.layers, stats, strict=True):
        values = {
            stat: (float(v) if np.isfinite(v) else None) for stat, v in zip(statistics, row, strict=True)
        }
        layers.append(LayerStatistics(index=layer.index, name=layer.name, kind=layer.kind, **values))
    return Activations(
        model=model,
        norm_placement=config.get("norm_placement"),
        norm_type=config.get("norm_type"),
        residual_scale=config.get("residual_scale"),
        layers=layers,
    )
