"""Connections as a slow, careless or hostile client sees them: deadlines for headers, bodies and idle keep-alive,
a cap on open connections, crashes that leave the connection usable, hosts, redirects and request ids.

Raw sockets, so that what travels on the wire (and when the server closes) is what is asserted."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.connections import MAX_HEADER_BYTES
from service.settings import Settings
from tests.service.helpers import model_folder, serve_in_thread

TIMEOUT_S = 1.0


def crashing_app(settings: Settings) -> FastAPI:
    """The real app plus one route with a bug in it."""
    app = create_app(settings)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    return app


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        model_dir=model_folder(tmp_path_factory.mktemp("limited"), ["chatbot-peri"]),
        warmup=False,
        header_timeout_s=TIMEOUT_S,
        body_timeout_s=TIMEOUT_S,
        keep_alive_timeout_s=1,
        allowed_hosts=["127.0.0.1", "*.lnserve.test"],
    )
    with serve_in_thread(settings, app=crashing_app(settings)) as base:
        yield base


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def request(path: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def response(sock: socket.socket) -> http.client.HTTPResponse:
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    answer.read()  # the body stays available as answer.body
    return answer


def read(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


def closed_after(sock: socket.socket, trickle: bytes = b"", every_s: float = 0.2) -> float:
    """Seconds until the server closes `sock`, sending `trickle` one byte at a time meanwhile."""
    started = time.monotonic()
    sock.settimeout(every_s)
    for byte in [trickle[i : i + 1] for i in range(len(trickle))] or [b""] * 100:
        try:
            if byte:
                sock.sendall(byte)
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    raise AssertionError("the server never closed the connection")


def test_a_connection_that_never_sends_headers_is_closed_at_the_header_timeout(limited: str) -> None:
    with connect(limited) as sock:
        waited = closed_after(sock)
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 1.5


def test_slowloris_headers_are_cut_off_at_the_header_timeout(limited: str) -> None:
    slow = request("/v2/health/live") + b"X-Padding: " + b"a" * 50  # never ends its headers
    with connect(limited) as sock:
        waited = closed_after(sock, slow[:-2], every_s=0.1)
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 1.5


def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed(limited: str) -> None:
    head = (
        "POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        "content-length: 100\r\n\r\n"
    )
    with connect(limited) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + b'{"message": "hel')  # and then nothing more
        status, headers, body = read(sock)
        waited = time.monotonic() - started
        assert sock.recv(1) == b""
    assert status == 408 and headers["connection"] == "close"
    assert json.loads(body) == {"error": f"the request body did not arrive within {TIMEOUT_S:g} s"}
    assert TIMEOUT_S * 0.9 <= waited < TIMEOUT_S + 1.5


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(limited: str) -> None:
    with connect(limited) as sock:
        sock.sendall(request("/v2/health/live"))
        assert read(sock)[0] == 200
        waited = closed_after(sock)
    assert 0.9 <= waited < 2.5


def test_a_crash_is_a_json_500_and_the_keep_alive_connection_stays_usable(limited: str) -> None:
    with connect(limited) as sock:
        sock.sendall(request("/crash"))
        status, headers, body = read(sock)
        sock.sendall(request("/v2/health/live"))  # same connection
        after = read(sock)
    assert status == 500 and json.loads(body) == {"error": "internal server error"}
    assert headers.get("connection") != "close"
    assert after[0] == 200 and json.loads(after[2]) == {"live": True}


def test_oversized_headers_get_431_and_malformed_requests_400_in_the_error_shape(limited: str) -> None:
    with connect(limited) as sock:
        sock.sendall(request("/v2/health/live", extra=f"X-Big: {'a' * (MAX_HEADER_BYTES + 1)}\r\n"))
        big = read(sock)
    with connect(limited) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")  # no colon
        malformed = read(sock)
    assert big[0] == 431 and json.loads(big[2]) == {
        "error": f"request headers exceed {MAX_HEADER_BYTES} bytes"
    }
    assert malformed[0] == 400 and set(json.loads(malformed[2])) == {"error"}


def test_a_host_that_is_not_served_is_refused(limited: str) -> None:
    evil = httpx.get(limited + "/v2/health/live", headers={"Host": "evil.example"})
    sub = httpx.get(limited + "/v2/health/live", headers={"Host": "api.lnserve.test:8000"})
    assert evil.status_code == 400 and evil.json() == {"error": "host 'evil.example' is not served here"}
    assert sub.status_code == 200


def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_host_header(server: str) -> None:
    response = httpx.get(server + "/v1/models/", headers={"Host": "evil.example"})
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json() == {"error": "Not Found"}


@pytest.mark.parametrize(
    ("given", "kept"),
    [("trace-01.ab:9_x", True), ("a" * 128, True), ("a" * 129, False), ("x y", False), ('a"<b>', False)],
)
def test_a_request_id_is_kept_when_it_is_a_sane_token_and_replaced_otherwise(
    server: str, given: str, kept: bool
) -> None:
    answered = httpx.get(server + "/v2/health/live", headers={"X-Request-ID": given}).headers["x-request-id"]
    if kept:
        assert answered == given
    else:
        assert answered != given and len(answered) == 32 and int(answered, 16) >= 0


def test_a_connection_over_the_cap_gets_503_with_retry_after_and_is_closed(tmp_path: Path) -> None:
    settings = Settings(
        model_dir=model_folder(tmp_path, ["chatbot-peri"]), warmup=False, max_connections=4, retry_after_s=2
    )
    with serve_in_thread(settings) as base:
        held = [connect(base) for _ in range(4)]
        time.sleep(0.2)  # the server has accepted them
        with connect(base) as extra:
            extra.sendall(request("/v2/health/live"))
            status, headers, body = read(extra)
            assert extra.recv(1) == b""
        for sock in held:
            sock.close()
        time.sleep(0.2)
        after = httpx.get(base + "/v2/health/live")
    assert status == 503 and headers["retry-after"] == "2" and headers["connection"] == "close"
    assert json.loads(body) == {"error": "the server holds its maximum of 4 connections; retry later"}
    assert after.status_code == 200
