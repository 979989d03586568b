"""OpenTelemetry tracing (`LNSERVE_TRACING=true`, the `otel` extra).

Request spans come from the instrumentation libraries (ASGI for HTTP, the gRPC server interceptor); the data plane
names the model and version on them. The batcher adds, per request, a `queue` span (enqueued until its batch
started) and a `compute` span (the batch's graph call; named `diagnostic` when the batch ran the instrumented
graph), both children of the request span, made when the batch is over from the times it recorded. With tracing
off nothing here runs on the request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

try:
    from opentelemetry import trace as _trace
except ImportError:  # the otel extra is not installed: no trace ids, and LNSERVE_TRACING refuses to start
    _trace = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
_configured = False  # tracing is on in this process (trace ids in log lines)
# perf_counter -> nanoseconds since the epoch, for spans made after the fact
_EPOCH_NS = time.time_ns() - time.perf_counter_ns()


def epoch_ns(perf_counter_s: float) -> int:
    return _EPOCH_NS + int(perf_counter_s * 1e9)


class Tracing:
    def __init__(self, enabled: bool) -> None:
        self.tracer: Any = None
        if not enabled:
            return
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise RuntimeError(
                f"LNSERVE_TRACING needs the otel extra (pip install 'lnserve[otel]'): {exc}"
            ) from exc
        _ensure_provider(trace)
        self.tracer = trace.get_tracer("lnserve")
        global _configured
        _configured = True

    @property
    def on(self) -> bool:
        return self.tracer is not None

    def context(self) -> Any:
        """The current trace context (to parent spans made later), or None with tracing off."""
        if self.tracer is None:
            return None
        from opentelemetry import context

        return context.get_current()

    def annotate(self, model: str, version: str, endpoint: str, reason: str | None) -> None:
        """Name the model, version and outcome on the current request span."""
        if self.tracer is None:
            return
        from opentelemetry import trace

        span = trace.get_current_span()
        span.set_attribute("lnserve.model", model)
        span.set_attribute("lnserve.version", version)
        span.set_attribute("lnserve.endpoint", endpoint)
        if reason is not None:
            span.set_attribute("lnserve.failure", reason)

    def batch(
        self,
        requests: Iterable[tuple[Any, float]],
        started: float,
        finished: float,
        size: int,
        diagnostic: bool,
    ) -> None:
        """`queue` and `compute`/`diagnostic` spans for each (context, enqueued) request of one batch."""
        attributes = {"lnserve.batch_size": size, "lnserve.path": "diagnostic" if diagnostic else "fast"}
        for context, enqueued in requests:
            if context is None:
                continue
            queue = self.tracer.start_span("queue", context=context, start_time=epoch_ns(enqueued))
            queue.end(end_time=epoch_ns(started))
            name = "diagnostic" if diagnostic else "compute"
            span = self.tracer.start_span(
                name, context=context, start_time=epoch_ns(started), attributes=attributes
            )
            span.end(end_time=epoch_ns(finished))


def _ensure_provider(trace: Any) -> None:
    """An SDK provider exporting over OTLP, unless the process set one already (a test, or the OTel distro)."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "lnserve"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing: spans exported over OTLP")


def trace_ids() -> dict[str, str]:
    """The current trace and span ids (for the JSON log lines), or nothing (at once when tracing is off)."""
    if _trace is None or not _configured:
        return {}
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}
