"""The live activation monitor on its own, with a clock the test moves: windows, history, the drift formulas, an
older sidecar without deciles, and the Prometheus counters that carry the same sums."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import generate_latest

from models.sidecar import Sidecar
from service.activations import ActivationMonitor
from service.metrics import ActivationCollector, Metrics
from service.runtime.base import Artifact
from tests.service.helpers import CHATBOT_ARTIFACTS

ARTIFACT = CHATBOT_ARTIFACTS / "chatbot-peri"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def artifact(without_quantiles: bool = False) -> Artifact:
    sidecar = Sidecar.model_validate_json((ARTIFACT / "sidecar.json").read_bytes())
    if without_quantiles:
        for stats in sidecar.reference_activations.values():
            for reference in stats.values():
                reference.quantiles = []
    return Artifact(ARTIFACT, sidecar)


def rows(monitor: ActivationMonitor, n: int, scale: float, seed: int = 0) -> list[np.ndarray]:
    """n requests drawn from the reference distribution itself, shifted by `scale` reference stds.

    Where a statistic has deciles each value falls in a decile bin chosen uniformly (a tenth of the mass each, as at
    training time), uniform inside the bin, the open tails half a std wide; without deciles it is normal with the
    reference mean and std. A Gaussian would not do: real activation statistics are skewed, and their PSI against
    their own deciles is then not near zero."""
    rng = np.random.default_rng(seed)
    ref = monitor.reference
    shape = (n, *ref.mean.shape)
    normal = ref.mean + ref.std * rng.standard_normal(shape)
    lows = np.concatenate([ref.edges[..., :1] - 0.5 * ref.std[..., None], ref.edges], axis=-1)
    highs = np.concatenate([ref.edges, ref.edges[..., -1:] + 0.5 * ref.std[..., None]], axis=-1)
    pick = rng.integers(0, lows.shape[-1], shape)[..., None]
    low = np.take_along_axis(np.broadcast_to(lows, (*shape, lows.shape[-1])), pick, -1)[..., 0]
    high = np.take_along_axis(np.broadcast_to(highs, (*shape, highs.shape[-1])), pick, -1)[..., 0]
    from_deciles = low + (high - low) * rng.random(shape)
    values = np.where(ref.binned, from_deciles, normal) + scale * ref.std
    return list(values.astype(np.float32))


def test_a_window_holds_only_its_seconds_and_history_is_forgotten() -> None:
    clock = Clock()
    monitor = ActivationMonitor(artifact(), history_s=60, clock=clock)
    monitor.observe(rows(monitor, 3, 0.0))
    clock.now += 10
    monitor.observe(rows(monitor, 5, 0.0))
    assert monitor.window(5).aggregate.samples == 5
    assert monitor.window(11).aggregate.samples == 8
    assert monitor.window(5, offset_s=8).aggregate.samples == 3
    clock.now += 55  # the first batch is 65 s old, the second 55 s
    assert monitor.window(60).aggregate.samples == 5
    assert monitor.totals().samples == 8  # the counters keep everything


def test_observe_only_queues_and_a_read_folds() -> None:
    monitor = ActivationMonitor(artifact(), clock=Clock())
    monitor.observe(rows(monitor, 4, 0.0))
    assert monitor._total.samples == 0  # nothing aggregated on the batch worker's path
    assert monitor.window(1).aggregate.samples == 4 and monitor._total.samples == 4


def test_drift_is_the_mean_shift_plus_psi_and_grows_with_the_shift() -> None:
    monitor = ActivationMonitor(artifact(), clock=Clock())
    monitor.observe(rows(monitor, 400, 0.0))
    quiet = monitor.window(1)
    shifted_monitor = ActivationMonitor(artifact(), clock=Clock())
    shifted_monitor.observe(rows(shifted_monitor, 400, 4.0))
    shifted = shifted_monitor.window(1)
    np.testing.assert_allclose(quiet.drift, quiet.mean_shift + quiet.psi)
    assert quiet.drift.max() < 0.25 < 3.0 < shifted.drift.min()
    # 4 std away: the mean shift is about 4, and almost every value is beyond the 90th percentile
    assert shifted.mean_shift == pytest.approx(np.full(len(monitor.layers), 4.0), abs=0.3)
    assert shifted.psi.min() > 3.0


def test_without_deciles_in_the_sidecar_drift_is_the_mean_shift_alone() -> None:
    monitor = ActivationMonitor(artifact(without_quantiles=True), clock=Clock())
    monitor.observe(rows(monitor, 50, 2.0))
    window = monitor.window(1)
    assert np.isnan(window.psi).all()
    np.testing.assert_allclose(window.drift, window.mean_shift)
    layer = monitor.snapshot(1)["layers"][0]
    assert layer["psi"] is None and layer["drift"] == layer["mean_shift"] > 1.0
    assert layer["reference"]["rms"]["quantiles"] == []
    metrics = Metrics()
    metrics.registry.register(ActivationCollector(lambda: [monitor]))
    text = generate_latest(metrics.registry).decode()
    assert "lnserve_activation_bin_total{" not in text  # no bins without deciles
    assert (
        'lnserve_activation_count_total{layer="embed",model="chatbot-peri",statistic="rms",version="1"} 50.0'
        in text
    )


def test_non_finite_statistics_are_counted_and_kept_out_of_the_sums() -> None:
    monitor = ActivationMonitor(artifact(), clock=Clock())
    batch = rows(monitor, 2, 0.0)
    batch[1][3, 2] = np.nan
    monitor.observe(batch)
    window = monitor.window(1)
    assert window.aggregate.nonfinite[3] == 1 and window.aggregate.nonfinite.sum() == 1
    assert window.aggregate.count[3, 2] == 1 and window.aggregate.count[3, 1] == 2
    assert window.aggregate.mean()[3, 2] == pytest.approx(float(batch[0][3, 2]), rel=1e-6)


def test_the_counters_carry_the_windows_sums_and_the_negative_part_separately() -> None:
    monitor = ActivationMonitor(artifact(), clock=Clock())
    values = rows(monitor, 30, 0.0, seed=3)
    monitor.observe(values)
    metrics = Metrics()
    metrics.registry.register(ActivationCollector(lambda: [monitor]))
    samples = {
        (s.name, s.labels.get("layer"), s.labels.get("statistic"), s.labels.get("bin")): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }
    column = np.array([v[0, 0] for v in values], dtype=np.float64)  # embed, mean: of both signs
    key = ("lnserve_activation_{}_total", "embed", "mean", None)
    positive = samples[(key[0].format("positive_sum"), *key[1:])]
    negative = samples[(key[0].format("negative_sum"), *key[1:])]
    assert positive == pytest.approx(column[column > 0].sum()) and negative == pytest.approx(
        -column[column < 0].sum()
    )
    assert positive > 0 and negative > 0
    bins = [samples[("lnserve_activation_bin_total", "embed", "mean", str(b))] for b in range(1, 11)]
    assert sum(bins) == 30
    assert samples[("lnserve_activation_samples_total", None, None, None)] == 30
