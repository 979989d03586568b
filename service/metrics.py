"""Prometheus metrics (names fixed by the team rules), one `CollectorRegistry` per app."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

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
        model, endpoint, layer = "model", "endpoint", "layer"
        self.request_success = counter("request_success", "Successful inference requests.", model, endpoint)
        self.request_failure = counter(
            "request_failure", "Failed inference requests.", model, endpoint, "reason"
        )
        self.request_duration = histogram("request_duration_seconds", "Whole request time.", model, endpoint)
        self.queue_duration = histogram(
            "queue_duration_seconds", "Time a request waited in the batch queue.", model
        )
        self.compute_duration = histogram(
            "compute_duration_seconds", "Inference time of one batch.", model, "path"
        )
        self.batch_size = histogram(
            "batch_size", "Requests per executed batch.", model, buckets=BATCH_BUCKETS
        )
        self.pending_requests = gauge("pending_requests", "Requests queued or running.", model)
        self.model_load_duration = gauge(
            "model_load_duration_seconds", "Time to verify, load and warm up.", model
        )
        self.model_ready = gauge("model_ready", "1 when the model serves, else 0.", model)
        self.nonfinite_outputs = counter(
            "nonfinite_outputs",
            "Items whose output was not finite (answered with an error, never null).",
            model,
        )
        self.activation = gauge(
            "activation",
            "Live mean of an activation statistic over sampled requests.",
            model,
            layer,
            "statistic",
        )
        self.activation_reference = gauge(
            "activation_reference", "Reference mean of the statistic (sidecar).", model, layer, "statistic"
        )
        self.activation_drift = gauge(
            "activation_drift", "Drift of the live statistics, per layer.", model, layer
        )
        self.activation_nonfinite = counter(
            "activation_nonfinite", "Non-finite statistics seen.", model, layer
        )
        self.activation_samples = counter(
            "activation_samples", "Requests whose statistics were aggregated.", model
        )
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
