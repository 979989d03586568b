"""Live activation statistics per model: aggregates of sampled requests, compared with the sidecar's reference.

Each sampled request contributes one `[n_layers, n_statistics]` matrix (its own statistics from the diagnostic
graph). The live value of a statistic is the mean of that matrix entry over the samples; a layer's drift is the mean
over statistics of |live mean - reference mean| / (reference std + eps).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from service.metrics import Metrics
from service.runtime.base import Artifact

EPS = 1e-6


class ActivationMonitor:
    """Thread-safe running sums for one model; `publish` copies them into the Prometheus gauges."""

    def __init__(self, artifact: Artifact) -> None:
        self.model = artifact.name
        self.layers = artifact.layers
        self.statistics = artifact.statistics
        reference = artifact.sidecar.reference_activations
        shape = (len(self.layers), len(self.statistics))
        self._ref_mean = np.full(shape, np.nan)
        self._ref_std = np.full(shape, np.nan)
        for i, layer in enumerate(self.layers):
            for j, stat in enumerate(self.statistics):
                entry = reference.get(layer.name, {}).get(stat)
                if entry is not None:
                    self._ref_mean[i, j] = entry.mean
                    self._ref_std[i, j] = entry.std
        self._sum = np.zeros(shape)
        self._count = np.zeros(shape, dtype=np.int64)
        self._nonfinite = np.zeros(len(self.layers), dtype=np.int64)
        self._published_nonfinite = np.zeros(len(self.layers), dtype=np.int64)
        self._samples = 0
        self._published_samples = 0
        self._lock = threading.Lock()

    def observe(self, rows: Sequence[npt.NDArray[np.float32]]) -> None:
        """Add the `[n_layers, n_statistics]` statistics of each item of a batch."""
        if not rows:
            return
        values = np.asarray(rows, dtype=np.float64)  # (N, n_layers, n_statistics)
        finite = np.isfinite(values)
        with self._lock:
            self._sum += np.where(finite, values, 0.0).sum(axis=0)
            self._count += finite.sum(axis=0)
            self._nonfinite += (~finite).any(axis=2).sum(axis=0)
            self._samples += len(rows)

    def live(self) -> npt.NDArray[np.float64]:
        with self._lock, np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._count > 0, self._sum / np.maximum(self._count, 1), np.nan)

    def drift(self) -> npt.NDArray[np.float64]:
        """Per layer; NaN until a sample arrived or where the sidecar has no reference."""
        score = np.abs(self.live() - self._ref_mean) / (np.nan_to_num(self._ref_std, nan=0.0) + EPS)
        valid = np.isfinite(score)
        with np.errstate(invalid="ignore"):
            return np.where(
                valid.any(axis=1), np.where(valid, score, 0.0).sum(axis=1) / valid.sum(axis=1), np.nan
            )

    def snapshot(self) -> dict[str, Any]:
        """The JSON body of `GET /v1/models/{name}/activations`."""
        live, drift = self.live(), self.drift()
        with self._lock:
            samples, nonfinite = self._samples, self._nonfinite.copy()
        layers = []
        for i, layer in enumerate(self.layers):
            layers.append(
                {
                    "index": layer.index,
                    "name": layer.name,
                    "kind": layer.kind,
                    "drift": _finite_or_none(drift[i]),
                    "nonfinite": int(nonfinite[i]),
                    "live": {stat: _finite_or_none(live[i, j]) for j, stat in enumerate(self.statistics)},
                    "reference": {
                        stat: {
                            "mean": _finite_or_none(self._ref_mean[i, j]),
                            "std": _finite_or_none(self._ref_std[i, j]),
                        }
                        for j, stat in enumerate(self.statistics)
                    },
                }
            )
        return {"model": self.model, "samples": samples, "statistics": self.statistics, "layers": layers}

    def publish(self, metrics: Metrics) -> None:
        """Copy the aggregates into the gauges (called at scrape time, so requests never pay for it)."""
        live, drift = self.live(), self.drift()
        with self._lock:
            new_samples = self._samples - self._published_samples
            new_nonfinite = self._nonfinite - self._published_nonfinite
            self._published_samples, self._published_nonfinite = self._samples, self._nonfinite.copy()
        metrics.activation_samples.labels(self.model).inc(new_samples)
        for i, layer in enumerate(self.layers):
            metrics.activation_nonfinite.labels(self.model, layer.name).inc(int(new_nonfinite[i]))
            if np.isfinite(drift[i]):
                metrics.activation_drift.labels(self.model, layer.name).set(float(drift[i]))
            for j, stat in enumerate(self.statistics):
                if np.isfinite(live[i, j]):
                    metrics.activation.labels(self.model, layer.name, stat).set(float(live[i, j]))
                if np.isfinite(self._ref_mean[i, j]):
                    metrics.activation_reference.labels(self.model, layer.name, stat).set(
                        float(self._ref_mean[i, j])
                    )


def _finite_or_none(value: float | np.floating[Any]) -> float | None:
    return float(value) if np.isfinite(value) else None
