"""One shared `lnserve serve` subprocess on a free port for the protocol tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.service.helpers import served_subprocess

SERVER_ENV = {
    "LNSERVE_MAX_BATCH_SIZE": "16",
    "LNSERVE_MAX_QUEUE_DELAY_US": "2000",
    "LNSERVE_ACTIVATION_SAMPLE_RATE": "0",  # the live aggregates then hold exactly what the tests asked for
    "LNSERVE_LOG_FORMAT": "json",
    "LNSERVE_STRICT_READINESS": "true",  # ready = every bundled model, as the tests use them all
}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with served_subprocess(SERVER_ENV, log_path, timeout_s=180) as base:
        yield base


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30.0) as http:
        yield http
