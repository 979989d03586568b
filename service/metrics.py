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
    """GPU memory and utilisation through NVML, read at scrape time; registered only when NVML sees a GPU."""

    def __init__(self, nvml: Any, count: int) -> None:
        self._nvml = nvml
        self._count = count

    def collect(self) -> Iterable[GaugeMetricFamily]:
        memory = GaugeMetricFamily("lnserve_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"])
        utilisation = GaugeMetricFamily(
            "lnserve_gpu_utilization_ratio", "GPU utilisation, 0..1.", labels=["gpu"]
        )
        for index in range(self._count):
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
            memory.add_metric([str(index)], float(self._nvml.nvmlDeviceGetMemoryInfo(handle).used))
            utilisation.add_metric([str(index)], self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
        yield memory
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
        r = self.registry
        self.request_success = Counter(
            "lnserve_request_success", "Successful inference requests.", ["model", "endpoint"], registry=r
        )
        self.request_failure = Counter(
            "lnserve_request_failure",
            "Failed inference requests.",
            ["model", "endpoint", "reason"],
            registry=r,
        )
        self.request_duration = Histogram(
            "lnserve_request_duration_seconds",
            "Whole request time.",
            ["model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "lnserve_queue_duration_seconds",
            "Time a request waited in the batch queue.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_duration = Histogram(
            "lnserve_compute_duration_seconds",
            "Inference time of one batch.",
            ["model", "path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "lnserve_batch_size", "Requests per executed batch.", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.pending_requests = Gauge(
            "lnserve_pending_requests", "Requests queued or running.", ["model"], registry=r
        )
        self.model_load_duration = Gauge(
            "lnserve_model_load_duration_seconds",
            "Time to verify, load and warm up a model.",
            ["model"],
            registry=r,
        )
        self.model_ready = Gauge(
            "lnserve_model_ready", "1 when the model serves, else 0.", ["model"], registry=r
        )
        self.nonfinite_outputs = Counter(
            "lnserve_nonfinite_outputs",
            "Items whose model output was not finite (answered with an error, never as null or Infinity).",
            ["model"],
            registry=r,
        )
        self.activation = Gauge(
            "lnserve_activation",
            "Live mean of an activation statistic over sampled requests.",
            ["model", "layer", "statistic"],
            registry=r,
        )
        self.activation_reference = Gauge(
            "lnserve_activation_reference",
            "Reference mean of the statistic on the validation set (sidecar).",
            ["model", "layer", "statistic"],
            registry=r,
        )
        self.activation_drift = Gauge(
            "lnserve_activation_drift",
            "Drift of the live statistics from the reference, per layer.",
            ["model", "layer"],
            registry=r,
        )
        self.activation_nonfinite = Counter(
            "lnserve_activation_nonfinite",
            "Non-finite activation statistics seen.",
            ["model", "layer"],
            registry=r,
        )
        self.activation_samples = Counter(
            "lnserve_activation_samples",
            "Requests whose statistics fed the live aggregates.",
            ["model"],
            registry=r,
        )
        gpu = _nvml_collector()
        if gpu is not None:
            r.register(gpu)
