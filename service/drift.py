"""Drift of live activation statistics from the sidecar's reference (formulas: docs/monitoring.md).

Per layer l and statistic s, over the requests of a window:
- mean shift  |live mean - reference mean| / (reference std + EPS), in reference standard deviations;
- PSI         sum over the 10 reference-decile bins b of (p_b - e_b) ln(p_b / e_b), with e_b = 0.1 (the bins are
              the reference deciles) and p_b = (n_b + 0.5) / (n + 5) the window's fraction in bin b with half a
              count added to every bin (Jeffreys' prior): a few requests cannot make PSI large by themselves;
- drift(l)    mean over statistics of the mean shift + mean over statistics of the PSI.

The recording rules in deploy/prometheus/rules.yaml compute exactly these from the exported counters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.sidecar import REFERENCE_LEVELS
from service.runtime.base import Artifact

EPS = 1e-6
PSI_PRIOR = (
    0.5  # counts added to every bin: PSI is infinite with an empty bin, and large for a handful of requests
)
N_BINS = len(REFERENCE_LEVELS) + 1
EXPECTED = np.diff([0.0, *REFERENCE_LEVELS, 1.0])  # 0.1 each: the reference's mass per decile bin
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReferenceTable:
    """The sidecar's reference as arrays: mean and std [L, S], decile edges [L, S, 9] (NaN where missing)."""

    mean: Array
    std: Array
    edges: Array

    @classmethod
    def of(cls, artifact: Artifact) -> ReferenceTable:
        layers, statistics = artifact.layers, artifact.statistics
        shape = (len(layers), len(statistics))
        mean, std = np.full(shape, np.nan), np.full(shape, np.nan)
        edges = np.full((*shape, N_BINS - 1), np.nan)
        for i, layer in enumerate(layers):
            for j, stat in enumerate(statistics):
                entry = artifact.sidecar.reference_activations.get(layer.name, {}).get(stat)
                if entry is None:
                    continue
                mean[i, j], std[i, j] = entry.mean, entry.std
                # Older sidecars have no deciles, and tied deciles make no bins: such a statistic gets no PSI.
                if len(entry.quantiles) == N_BINS - 1 and np.all(np.diff(entry.quantiles) > 0):
                    edges[i, j] = entry.quantiles
        return cls(mean, std, edges)

    @property
    def binned(self) -> npt.NDArray[np.bool_]:
        """[L, S]: statistics with decile bins (and so a PSI)."""
        return np.asarray(np.isfinite(self.edges).all(axis=2))

    def bin_of(self, values: Array) -> npt.NDArray[np.int64]:
        """values [N, L, S] -> bin index [N, L, S] in 0..9: 0 is (-inf, q10], 9 is (q90, inf)."""
        return np.asarray((values[..., None] > self.edges[None]).sum(axis=3), dtype=np.int64)


def mean_shift(live_mean: Array, reference: ReferenceTable) -> Array:
    """[L, S] in reference standard deviations; NaN without samples or reference."""
    return np.asarray(np.abs(live_mean - reference.mean) / (np.nan_to_num(reference.std) + EPS))


def psi(bins: Array, reference: ReferenceTable) -> Array:
    """bins [L, S, 10] counts -> PSI [L, S]; NaN without samples or without decile bins."""
    total = bins.sum(axis=2, keepdims=True)
    fraction = (bins + PSI_PRIOR) / (total + PSI_PRIOR * N_BINS)
    value = ((fraction - EXPECTED) * np.log(fraction / EXPECTED)).sum(axis=2)
    return np.where(reference.binned & (total[..., 0] > 0), value, np.nan)


def layer_mean(values: Array) -> Array:
    """[L, S] -> [L]: the mean over the finite entries of each layer; NaN where none is finite."""
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(finite, values, 0.0).sum(axis=1) / count, np.nan)


def layer_drift(shift: Array, distance: Array) -> tuple[Array, Array, Array]:
    """Per layer: (drift, mean shift, PSI); a layer without PSI drifts by its mean shift alone."""
    by_layer_shift, by_layer_psi = layer_mean(shift), layer_mean(distance)
    return by_layer_shift + np.nan_to_num(by_layer_psi), by_layer_shift, by_layer_psi
