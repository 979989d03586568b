"""Forecaster runtime: each series' inputs built by the artifact's numpy-only feature module, quantiles back in
input units per series (so a series whose forecast overflows fails alone)."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from service.errors import InvalidInput, LnserveError, NonFiniteOutput
from service.runtime.base import ArtifactError, FloatArray, Outcome, Runtime, with_activations


class ForecasterBlock(BaseModel):
    """The sidecar's `forecaster` block."""

    context_length: int = Field(ge=1)
    max_horizon: int = Field(ge=1)
    quantiles: list[float] = Field(min_length=1)
    features: str
    season_length: int = Field(default=1, ge=1)
    min_length: int = Field(default=8, ge=1)


@dataclass(frozen=True)
class ForecastItem:
    feeds: dict[str, np.ndarray]  # one row of every graph input, [1, ...]
    state: Any  # the feature module's per-row state for `to_original_units`


@dataclass(frozen=True)
class ForecastResult:
    quantiles: FloatArray  # (max_horizon, n_model_quantiles), input units, sorted along the last axis


def interpolate_quantiles(levels: list[float], values: FloatArray, wanted: list[float]) -> FloatArray:
    """Quantiles at `wanted` levels, linear between the model's levels (held at the end levels beyond them, as
    `np.interp`); `values` is (H, n_levels). One weighted sum of two columns per wanted level, for every step."""
    grid = np.asarray(levels, dtype=np.float64)
    if grid.size == 1:
        return np.repeat(values[:, :1], len(wanted), axis=1).astype(np.float32)
    x = np.clip(np.asarray(wanted, dtype=np.float64), grid[0], grid[-1])
    upper = np.clip(np.searchsorted(grid, x, side="right"), 1, grid.size - 1)  # (n_wanted,)
    lower = upper - 1
    weight = (x - grid[lower]) / (grid[upper] - grid[lower])
    out = values[:, lower] * (1.0 - weight) + values[:, upper] * weight  # (H, n_wanted)
    return out.astype(np.float32)


class ForecasterRuntime(Runtime[ForecastItem, ForecastResult]):
    def prepare(self) -> None:
        block = self.config = self.block(ForecasterBlock)
        self.max_horizon = block.max_horizon
        self.quantile_levels = block.quantiles
        try:
            self.features: ModuleType = importlib.import_module(block.features)
        except ImportError as exc:
            raise ArtifactError(f"cannot import the feature module {block.features!r}: {exc}") from exc
        takes = inspect.signature(self.features.make_inputs).parameters
        self._extra = {"max_horizon": block.max_horizon} if "max_horizon" in takes else {}

    def item(self, series: FloatArray, season_length: int | None, row: int = 0) -> ForecastItem:
        """One series' graph inputs; a series the feature module cannot take is that request's own 422."""
        if len(series) < self.config.min_length:
            raise InvalidInput(
                f"series: at least {self.config.min_length} points are needed (row {row} has {len(series)})"
            )
        if not np.isfinite(series).all():
            raise InvalidInput(f"series: row {row} has non-finite values")
        season = season_length or self.config.season_length
        try:
            feeds, state = self.features.make_inputs(
                [series], [season], self.config.context_length, **self._extra
            )
        except (ValueError, FloatingPointError) as exc:
            raise InvalidInput(f"series: row {row} cannot be forecast: {exc}") from None
        return ForecastItem(feeds, state)

    def warmup_batches(self, batch_size: int) -> list[list[ForecastItem]]:
        t = np.arange(self.config.context_length, dtype=np.float32)
        series = (100 + 10 * np.sin(2 * np.pi * t / 12) + t).astype(np.float32)
        return [[self.item(series, 12) for _ in range(batch_size)]]

    def feeds(self, items: list[ForecastItem]) -> dict[str, np.ndarray]:
        return {name: np.concatenate([item.feeds[name] for item in items]) for name in items[0].feeds}

    def predict(self, items: list[ForecastItem], diagnostic: bool) -> list[Outcome[ForecastResult]]:
        (scaled,), activations = self.run_graph(diagnostic, self.feeds(items), ["quantiles"])
        results: list[ForecastResult | LnserveError] = []
        for row, item in enumerate(items):
            with np.errstate(over="ignore", invalid="ignore"):
                values = np.asarray(self.features.to_original_units(scaled[row : row + 1], item.state))[0]
            if not np.isfinite(values).all() or np.abs(values).max() > np.finfo(np.float32).max:
                results.append(
                    NonFiniteOutput(f"model {self.name} produced a non-finite forecast for this series")
                )
                continue
            results.append(ForecastResult(values.astype(np.float32)))
        return with_activations(results, activations)
