"""Run the service under uvicorn. On SIGTERM uvicorn stops accepting, lets in-flight requests finish (up to
`graceful_timeout_s`), then the app's shutdown stops the batchers."""

from __future__ import annotations

import uvicorn

from service.app import create_app
from service.logging import configure_logging
from service.settings import Settings


def build_server(settings: Settings) -> uvicorn.Server:
    configure_logging(settings.log_format, settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s),
        proxy_headers=True,
    )
    return uvicorn.Server(config)


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve the models of `LNSERVE_MODEL_DIR`; arguments override `LNSERVE_HOST` / `LNSERVE_PORT`."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = Settings(**overrides)  # type: ignore[arg-type]
    build_server(settings).run()
