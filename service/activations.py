"""Live activation statistics per model: mergeable sums of the sampled requests, per second and since start.

Each sampled request contributes one `[n_layers, n_statistics]` matrix (its own statistics from the diagnostic
graph). What is kept per layer and statistic is mergeable, so windows, replicas and Prometheus can add it up: the
count of finite values, the sums of the positive values, of the magnitudes of the negative ones and of the squares,
and the counts per reference-decile bin. One `Aggregate` per second of the last `history_s` seconds answers
`GET /v1/models/{name}/activations?window_s=N`; one since start feeds the Prometheus counters.

The batch worker only queues each batch's rows (`observe`); `fold` adds them up later, on a read or from the data
plane's aggregation task, so the statistics cost a batch no more than an append.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from service import drift
from service.drift import N_BINS, ReferenceTable
from service.runtime.base import Artifact

Array = npt.NDArray[np.float64]
DEFAULT_WINDOW_S = 300  # the window of the API by default, and of the recording rules (5m)


@dataclass
class Aggregate:
    """Mergeable sums over some requests: [L, S] per layer and statistic, bins [L, S, 10], nonfinite [L]."""

    count: Array
    positive: Array
    negative: Array
    squares: Array
    bins: Array
    nonfinite: Array
    samples: int = 0

    @classmethod
    def empty(cls, n_layers: int, n_statistics: int) -> Aggregate:
        shape = (n_layers, n_statistics)
        zeros = np.zeros
        return cls(
            zeros(shape), zeros(shape), zeros(shape), zeros(shape), zeros((*shape, N_BINS)), zeros(n_layers)
        )

    def add(self, values: Array, reference: ReferenceTable) -> None:
        """values [N, L, S]: the rows of N requests."""
        finite = np.isfinite(values)
        clean = np.where(finite, values, 0.0)
        self.count += finite.sum(axis=0)
        self.positive += np.maximum(clean, 0.0).sum(axis=0)
        self.negative += np.maximum(-clean, 0.0).sum(axis=0)
        self.squares += (clean * clean).sum(axis=0)
        one_hot = reference.bin_of(clean)[..., None] == np.arange(N_BINS)  # [N, L, S, 10]
        self.bins += (one_hot & finite[..., None]).sum(axis=0)
        self.nonfinite += (~finite).any(axis=2).sum(axis=0)
        self.samples += len(values)

    def merge(self, other: Aggregate) -> None:
        for name in ("count", "positive", "negative", "squares", "bins", "nonfinite"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.samples += other.samples

    def mean(self) -> Array:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, (self.positive - self.negative) / self.count, np.nan)

    def std(self) -> Array:
        """Spread of the statistic across the requests (population std)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            variance = np.where(self.count > 0, self.squares / self.count, np.nan) - self.mean() ** 2
        return np.sqrt(np.maximum(variance, 0.0))


@dataclass
class Window:
    """What one window's sums say: the API payload's numbers."""

    seconds: int
    aggregate: Aggregate
    drift: Array = field(init=False)
    mean_shift: Array = field(init=False)
    psi: Array = field(init=False)
    reference: ReferenceTable

    def __post_init__(self) -> None:
        shift = drift.mean_shift(self.aggregate.mean(), self.reference)
        self.drift, self.mean_shift, self.psi = drift.layer_drift(
            shift, drift.psi(self.aggregate.bins, self.reference)
        )


class ActivationMonitor:
    """Thread-safe: `observe` from the batch worker, `fold` / `window` / `totals` from anywhere."""

    def __init__(
        self, artifact: Artifact, history_s: int = 900, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.model = artifact.name
        self.version = artifact.version
        self.layers = artifact.layers
        self.statistics = artifact.statistics
        self.reference = ReferenceTable.of(artifact)
        self.history_s = history_s
        self._clock = clock
        self._shape = (len(self.layers), len(self.statistics))
        self._pending: list[tuple[float, Sequence[npt.NDArray[np.float32]]]] = []
        self._seconds: deque[tuple[int, Aggregate]] = deque()
        self._total = Aggregate.empty(*self._shape)
        self._queue_lock = threading.Lock()
        self._lock = threading.Lock()

    def observe(self, rows: Sequence[npt.NDArray[np.float32]]) -> None:
        """Queue the `[n_layers, n_statistics]` statistics of each item of a batch (cheap: the worker's path)."""
        if rows:
            with self._queue_lock:  # the clock inside the lock: the queue stays in time order
                self._pending.append((self._clock(), rows))

    def fold(self) -> None:
        """Add the queued rows to their seconds and to the totals; forget seconds older than the history."""
        with self._queue_lock:
            pending, self._pending = self._pending, []
        with self._lock:
            # one vectorised add per second of traffic, however many batches it had
            for second, group in itertools.groupby(pending, key=lambda entry: int(entry[0])):
                batch = Aggregate.empty(*self._shape)
                rows = [row for _, batch_rows in group for row in batch_rows]
                batch.add(np.asarray(rows, dtype=np.float64), self.reference)
                self._second(second).merge(batch)
                self._total.merge(batch)
            horizon = int(self._clock()) - self.history_s
            while self._seconds and self._seconds[0][0] <= horizon:
                self._seconds.popleft()

    def _second(self, second: int) -> Aggregate:
        """The sums of this second (rows arrive in time order, so it is the last one or a new one)."""
        if not self._seconds or self._seconds[-1][0] != second:
            self._seconds.append((second, Aggregate.empty(*self._shape)))
        return self._seconds[-1][1]

    def window(self, seconds: int, offset_s: int = 0) -> Window:
        """The `seconds` seconds that end `offset_s` seconds ago (0: the last ones, the current one included)."""
        self.fold()
        total = Aggregate.empty(*self._shape)
        end = int(self._clock()) - offset_s
        with self._lock:
            for at, aggregate in self._seconds:
                if end - seconds < at <= end:
                    total.merge(aggregate)
        return Window(seconds, total, self.reference)

    def totals(self) -> Aggregate:
        """Since start (a copy): what the Prometheus counters show."""
        self.fold()
        with self._lock:
            copy = Aggregate.empty(*self._shape)
            copy.merge(self._total)
        return copy

    def snapshot(self, window_s: int = DEFAULT_WINDOW_S, offset_s: int = 0) -> dict[str, Any]:
        """The JSON body of `GET /v1/models/{name}/activations?window_s=N&offset_s=M`."""
        window, totals = self.window(window_s, offset_s), self.totals()
        live, spread = window.aggregate.mean(), window.aggregate.std()
        reference = self.reference
        layers = []
        for i, layer in enumerate(self.layers):
            stats = list(enumerate(self.statistics))
            layers.append(
                {
                    "index": layer.index,
                    "name": layer.name,
                    "kind": layer.kind,
                    "drift": _number(window.drift[i]),
                    "mean_shift": _number(window.mean_shift[i]),
                    "psi": _number(window.psi[i]),
                    "nonfinite": int(window.aggregate.nonfinite[i]),
                    "nonfinite_total": int(totals.nonfinite[i]),
                    "live": {stat: _number(live[i, j]) for j, stat in stats},
                    "live_std": {stat: _number(spread[i, j]) for j, stat in stats},
                    "reference": {
                        stat: {
                            "mean": _number(reference.mean[i, j]),
                            "std": _number(reference.std[i, j]),
                            "quantiles": [_number(q) for q in reference.edges[i, j] if math.isfinite(q)],
                        }
                        for j, stat in stats
                    },
                }
            )
        return {
            "model": self.model,
            "window_s": window_s,
            "offset_s": offset_s,
            "samples": window.aggregate.samples,
            "samples_total": totals.samples,
            "statistics": self.statistics,
            "layers": layers,
        }


def _number(value: float | np.floating[Any]) -> float | None:
    return float(value) if np.isfinite(value) else None
