"""Prometheus metrics (names fixed by the team rules), one `CollectorRegistry` per app."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.activations import ActivationMonitor

log = logging.getLogger(__name__)

# `_created` samples double the series of every counter and histogram and no dashboard or rule reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class GpuCollector(Collector):
    """GPU memory and utilisation through NVML, read at scrape time; registered only when NVML sees a GPU.

    A GPU that stops answering NVML (driver reset, device lost) drops out of the scrape instead of failing it."""

    def __init__(self, nvml: Any, count: int) -> None:
        self._nvml = nvml
        self._count = count

    def collect(self) -> Iterable[GaugeMetricFamily]:
        used = GaugeMetricFamily("lnserve_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"])
        total = GaugeMetricFamily("lnserve_gpu_memory_total_bytes", "GPU memory in all.", labels=["gpu"])
        utilisation = GaugeMetricFamily(
            "lnserve_gpu_utilization_ratio", "GPU utilisation, 0..1.", labels=["gpu"]
        )
        for index in range(self._count):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                busy = self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
            except self._nvml.NVMLError as exc:
                log.warning("NVML cannot read GPU %d: %s", index, exc)
                continue
            used.add_metric([str(index)], float(memory.used))
            total.add_metric([str(index)], float(memory.total))
            utilisation.add_metric([str(index)], busy)
        yield used
        yield total
        yield utilisation


class ActivationCollector(Collector):
    """The live activation sums since start as counters, read at scrape time (docs/monitoring.md).

    Counters, not gauges, so that PromQL can take any window (`rate`) and add replicas up (`sum`): per model, layer
    and statistic the count of finite values, the sum of the positive values and of the magnitudes of the negative
    ones (a counter must not go down) and the counts per reference-decile bin (for PSI); the reference as gauges.
    """

    def __init__(self, monitors: Callable[[], Iterable[ActivationMonitor]]) -> None:
        self._monitors = monitors

    def collect(self) -> Iterable[Metric]:
        stat_labels = ["model", "version", "layer", "statistic"]
        samples = _counter_family(
            "activation_samples", "Requests whose statistics were aggregated.", ["model", "version"]
        )
        count = _counter_family("activation_count", "Finite values of the statistic aggregated.", stat_labels)
        positive = _counter_family("activation_positive_sum", "Sum of the positive values.", stat_labels)
        negative = _counter_family(
            "activation_negative_sum", "Sum of |value| of the negative values.", stat_labels
        )
        bins = _counter_family(
            "activation_bin",
            "Values per reference-decile bin: bin 1 is (-inf, q10], bin 10 is (q90, inf).",
            [*stat_labels, "bin"],
        )
        nonfinite = _counter_family(
            "activation_nonfinite", "Requests with a non-finite statistic.", ["model", "version", "layer"]
        )
        ref_mean = _gauge_family(
            "activation_reference", "Reference mean of the statistic (sidecar).", stat_labels
        )
        ref_std = _gauge_family(
            "activation_reference_std", "Reference std of the statistic (sidecar).", stat_labels
        )
        for monitor in self._monitors():
            totals, reference = monitor.totals(), monitor.reference
            # plain Python numbers: formatting numpy scalars one by one is several times slower
            sums = [totals.count.tolist(), totals.positive.tolist(), totals.negative.tolist()]
            binned, bin_counts = reference.binned.tolist(), totals.bins.tolist()
            ref = [reference.mean.tolist(), reference.std.tolist()]
            model = [monitor.model, monitor.version]
            samples.add_metric(model, totals.samples)
            for i, layer in enumerate(monitor.layers):
                nonfinite.add_metric([*model, layer.name], float(totals.nonfinite[i]))
                for j, stat in enumerate(monitor.statistics):
                    labels = [*model, layer.name, stat]
                    for family, values in zip((count, positive, negative), sums, strict=True):
                        family.add_metric(labels, values[i][j])
                    if binned[i][j]:
                        for b, value in enumerate(bin_counts[i][j], start=1):
                            bins.add_metric([*labels, str(b)], value)
                    if math.isfinite(ref[0][i][j]):
                        ref_mean.add_metric(labels, ref[0][i][j])
                        ref_std.add_metric(labels, ref[1][i][j])
        yield from (samples, count, positive, negative, bins, nonfinite, ref_mean, ref_std)


def _counter_family(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(f"lnserve_{name}", doc, labels=labels)


def _gauge_family(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"lnserve_{name}", doc, labels=labels)


def _nvml_collector() -> GpuCollector | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        count = int(pynvml.nvmlDeviceGetCount())
    except Exception:  # no NVML library or no GPU: the GPU gauges are simply absent
        return None
    return GpuCollector(pynvml, count) if count else None


class Metrics:
    """All service metrics, registered in this instance's own registry so several apps can coexist."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        counter, gauge, histogram = self._counter, self._gauge, self._histogram
        model, version, endpoint = "model", "version", "endpoint"
        self.request_success = counter(
            "request_success", "Successful inference requests.", model, version, endpoint
        )
        self.request_failure = counter(
            "request_failure", "Failed inference requests.", model, version, endpoint, "reason"
        )
        self.request_duration = histogram(
            "request_duration_seconds", "Whole request time.", model, version, endpoint
        )
        self.queue_duration = histogram(
            "queue_duration_seconds", "Time a request waited in the batch queue.", model, version
        )
        self.compute_duration = histogram(
            "compute_duration_seconds", "Inference time of one batch.", model, version, "path"
        )
        self.batch_size = histogram(
            "batch_size", "Requests per executed batch.", model, version, buckets=BATCH_BUCKETS
        )
        self.pending_requests = gauge("pending_requests", "Requests queued or running.", model, version)
        self.model_load_duration = gauge(
            "model_load_duration_seconds", "Time to verify, load and warm up.", model, version
        )
        self.model_ready = gauge(
            "model_ready", "1 when the model version serves, else 0 (loading or refused).", model, version
        )
        self.nonfinite_outputs = counter(
            "nonfinite_outputs",
            "Items whose output was not finite (answered with an error, never null).",
            model,
            version,
        )
        # the process's own CPU, memory, file descriptors and the Python runtime, as every exporter has them
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        gpu = _nvml_collector()
        if gpu is not None:
            self.registry.register(gpu)

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(f"lnserve_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(f"lnserve_{name}", doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, *labels: str, buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(f"lnserve_{name}", doc, labels, buckets=buckets, registry=self.registry)
