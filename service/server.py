"""Run the service under uvicorn, with the connection limits of `service.connections`.

On SIGTERM (or SIGINT) uvicorn stops accepting, lets in-flight requests finish (up to `graceful_timeout_s`), then
the app's shutdown stops the batchers. SIGHUP, which would otherwise kill the process on the spot, is logged and
ignored: the server keeps serving (a terminal closing, or a supervisor's "reload", must not drop requests).
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.app import create_app, served
from service.connections import Limits, protocol
from service.logging import configure_logging
from service.settings import Settings

log = logging.getLogger(__name__)
FILES_RESERVED = 64  # model files, logs, the listening socket, ONNX Runtime's own


def connection_cap(wanted: int) -> int:
    """`wanted`, or fewer when the process may not open that many files (beyond the cap the server would fail to
    accept instead of answering 503)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted + FILES_RESERVED:
        target = (
            wanted + FILES_RESERVED if hard == resource.RLIM_INFINITY else min(hard, wanted + FILES_RESERVED)
        )
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted + FILES_RESERVED:
        log.warning("open-file limit %d: at most %d connections", soft, soft - FILES_RESERVED)
        return max(1, soft - FILES_RESERVED)
    return wanted


def uvicorn_config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    limits = Limits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=connection_cap(settings.max_connections),
        retry_after_s=settings.retry_after_s,
    )
    return uvicorn.Config(
        served(app),
        host=settings.host,
        port=settings.port,
        http=protocol(limits),
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        proxy_headers=True,
    )


def build_server(settings: Settings) -> uvicorn.Server:
    configure_logging(settings.log_format, settings.log_level)
    return uvicorn.Server(uvicorn_config(settings, create_app(settings)))


def _on_sighup(signum: int, frame: FrameType | None) -> None:
    log.warning("SIGHUP received and ignored; the server keeps serving (stop it with SIGTERM)")


def run(settings: Settings) -> None:
    server = build_server(settings)
    signal.signal(signal.SIGHUP, _on_sighup)
    server.run()
