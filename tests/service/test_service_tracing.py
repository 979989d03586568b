"""OpenTelemetry with the SDK's in-memory exporter, against a real server: the request span (ASGI instrumentation)
named with model and version, its `queue` and `compute` / `diagnostic` children, and trace ids in the JSON logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.logging import JsonFormatter
from service.settings import Settings
from tests.service.helpers import model_folder, serve_in_thread

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the process's first: set ours (it can be set only once)
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    models = model_folder(tmp_path_factory.mktemp("tracing"), ["chatbot-peri"])
    settings = Settings(model_dir=models, warmup=False, tracing=True, activation_sample_rate=0.0)
    with serve_in_thread(settings) as base:
        yield base


def spans_of(trace_id: int) -> dict[str, ReadableSpan]:
    return {span.name: span for span in EXPORTER.get_finished_spans() if span.context.trace_id == trace_id}


@pytest.mark.parametrize(("statistics", "compute"), [(False, "compute"), (True, "diagnostic")])
def test_a_request_has_a_span_with_queue_and_compute_children(
    server: str, statistics: bool, compute: str
) -> None:
    EXPORTER.clear()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("service.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        response = httpx.post(
            server + "/v1/chat", json={"message": "i forgot my password", "return_activations": statistics}
        )
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    assert response.status_code == 200
    root = next(s for s in EXPORTER.get_finished_spans() if s.name == "POST /v1/chat")
    spans = spans_of(root.context.trace_id)
    assert {"queue", compute} <= set(spans) and (
        "diagnostic" if compute == "compute" else "compute"
    ) not in spans
    assert spans["queue"].parent.span_id == spans[compute].parent.span_id == root.context.span_id
    assert spans["queue"].end_time <= spans[compute].start_time <= spans[compute].end_time <= root.end_time
    assert spans[compute].attributes["lnserve.path"] == ("diagnostic" if statistics else "fast")
    assert root.attributes["lnserve.model"] == "chatbot-peri" and root.attributes["lnserve.version"] == "1"
    line = json.loads(next(ln for ln in stream.getvalue().splitlines() if "POST /v1/chat" in ln))
    assert line["trace_id"] == format(root.context.trace_id, "032x")
    assert line["span_id"] == format(root.context.span_id, "016x")


def test_a_failed_request_names_its_reason_on_the_span(server: str) -> None:
    EXPORTER.clear()
    assert httpx.post(server + "/v1/chat", json={"message": "hi", "model": "nope"}).status_code == 404
    root = next(s for s in EXPORTER.get_finished_spans() if s.name == "POST /v1/chat")
    assert root.attributes["lnserve.failure"] == "not_found" and "queue" not in spans_of(
        root.context.trace_id
    )


def test_without_tracing_log_lines_carry_no_trace_ids() -> None:
    record = logging.LogRecord("service.access", logging.INFO, __file__, 1, "hello", (), None)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


def test_the_opentelemetry_packages_are_an_optional_extra() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("opentelemetry")]
    assert any(d.startswith("opentelemetry-sdk") for d in project["optional-dependencies"]["otel"])
