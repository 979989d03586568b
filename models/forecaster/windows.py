"""Turning series into batches: a pool of training windows before each series' validation tail, and the
validation windows (the last horizon of each training part).

Batches are built with features.make_inputs, the very function the service calls, so training and serving
preprocessing cannot diverge. Targets are mapped into the network's log space with features.to_model_units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.forecaster.data import HORIZON, Series
from models.forecaster.features import make_inputs, to_model_units

MIN_CONTEXT = 8
CHUNK = 4096  # rows per make_inputs call when building a pool


@dataclass(frozen=True)
class Batch:
    feeds: dict[str, np.ndarray]  # the graph inputs, float32
    scales: np.ndarray  # [B, 2 + H] the state to_original_units needs
    target: np.ndarray  # [B, H] in the network's log space (0 where missing)
    target_mask: np.ndarray  # [B, H]

    def __len__(self) -> int:
        return len(self.target)

    def take(self, idx: np.ndarray) -> Batch:
        return Batch(
            {k: v[idx] for k, v in self.feeds.items()},
            self.scales[idx],
            self.target[idx],
            self.target_mask[idx],
        )


def make_batch(
    histories: list[np.ndarray],
    futures: list[np.ndarray],
    season_lengths: list[int],
    context_length: int,
    max_horizon: int,
) -> Batch:
    """Row i: context = histories[i], target = futures[i] (at most max_horizon values, the rest masked)."""
    parts = []
    for lo in range(0, len(histories), CHUNK):
        sl = slice(lo, lo + CHUNK)
        feeds, scales = make_inputs(histories[sl], season_lengths[sl], context_length, max_horizon)
        y = np.zeros((len(scales), max_horizon))
        mask = np.zeros((len(scales), max_horizon), dtype=np.float32)
        for i, f in enumerate(futures[sl]):
            y[i, : len(f)], mask[i, : len(f)] = f[:max_horizon], 1.0
        target = np.where(mask > 0, to_model_units(y, scales), 0.0).astype(np.float32)
        parts.append(Batch(feeds, scales, target, mask))
    return Batch(
        {k: np.concatenate([p.feeds[k] for p in parts]) for k in parts[0].feeds},
        np.concatenate([p.scales for p in parts]),
        np.concatenate([p.target for p in parts]),
        np.concatenate([p.target_mask for p in parts]),
    )


def fit_part(s: Series) -> np.ndarray:
    """What training may use of a series: everything before its validation tail."""
    return s.values[: -HORIZON[s.freq]]


def training_pool(
    series: list[Series], context_length: int, max_horizon: int, per_series: int, seed: int
) -> Batch:
    """Up to `per_series` windows per series, origins drawn uniformly; targets never reach the validation tail."""
    rng = np.random.default_rng(seed)
    histories, futures, seasons = [], [], []
    for s in series:
        values = fit_part(s)
        if len(values) <= MIN_CONTEXT:
            continue
        origins = np.arange(MIN_CONTEXT, len(values))
        if len(origins) > per_series:
            origins = rng.choice(origins, per_series, replace=False)
        for o in np.sort(origins):
            histories.append(values[:o])
            futures.append(values[o : o + max_horizon])
            seasons.append(s.season_length)
    return make_batch(histories, futures, seasons, context_length, max_horizon)


@dataclass(frozen=True)
class Windows:
    """Forecast windows with their truth: the validation tails, or a test set (x -> xx)."""

    names: list[str]
    histories: list[np.ndarray]
    futures: list[np.ndarray]
    season_lengths: list[int]
    groups: list[str]  # "M3/monthly", ...: metrics are reported per group

    def batch(self, context_length: int, max_horizon: int) -> Batch:
        return make_batch(self.histories, self.futures, self.season_lengths, context_length, max_horizon)


VALIDATION_GROUPS = ("M3/monthly", "M1/monthly", "M3/quarterly", "M3/yearly")


def validation_windows(series: list[Series]) -> Windows:
    """The last horizon of each M1 / M3 training part, forecast from what precedes it."""
    rows = [
        s for s in series if f"{s.dataset}/{s.freq}" in VALIDATION_GROUPS and len(fit_part(s)) >= MIN_CONTEXT
    ]
    return Windows(
        [s.name for s in rows],
        [fit_part(s) for s in rows],
        [s.values[len(fit_part(s)) :] for s in rows],
        [s.season_length for s in rows],
        [f"{s.dataset}/{s.freq}" for s in rows],
    )
