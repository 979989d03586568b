"""Run the service under uvicorn, with the connection limits of `service.connections`.

On SIGTERM (or SIGINT) uvicorn stops accepting, lets in-flight requests finish (up to `graceful_timeout_s`), then
the app's shutdown stops the batchers. SIGHUP, which would otherwise kill the process on the spot, is logged and
ignored: the server keeps serving (a terminal closing, or a supervisor's "reload", must not drop requests).
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.connections import Limits, protocol
from service.logging import configure_logging
from service.settings import Settings

log = logging.getLogger(__name__)


def uvicorn_config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    limits = Limits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=settings.max_connections,
        retry_after_s=settings.retry_after_s,
    )
    return uvicorn.Config(
        app,
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
