"""One shared `lnserve serve` subprocess on a free port for the protocol tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.service.helpers import free_port, start_subprocess, wait_until

SERVER_ENV = {
    "LNSERVE_MAX_BATCH_SIZE": "16",
    "LNSERVE_MAX_QUEUE_DELAY_US": "2000",
    "LNSERVE_ACTIVATION_SAMPLE_RATE": "0",  # the live aggregates then hold exactly what the tests asked for
    "LNSERVE_LOG_FORMAT": "json",
    "LNSERVE_STRICT_READINESS": "true",  # ready = every bundled model, as the tests use them all
}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    process = start_subprocess(port, SERVER_ENV, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(base + "/v2/health/ready", timeout_s=180, process=process)
    except Exception:
        process.kill()
        raise RuntimeError(f"server did not become ready:\n{log_path.read_text()[-4000:]}") from None
    yield base
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30.0) as http:
        yield http
