"""The app factory: `create_app(settings)` mounts the REST adapters over a data plane, with one error handler set.

The data plane is protocol-neutral and has its own lifecycle; the web app only starts and stops it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from service import __version__
from service.dataplane import DataPlane
from service.errors import InvalidInput, LnserveError, format_validation_errors
from service.rest import health, inspector, kserve, metrics, models, openai, openapi, repository
from service.rest.direct import KindRoutes
from service.rest.kinds import kind_router
from service.rest.middleware import INTERNAL, RequestIdMiddleware
from service.settings import Settings
from service.v2codec import InferenceRequest


def create_app(settings: Settings | None = None, plane: DataPlane | None = None) -> FastAPI:
    plane = plane or DataPlane(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await plane.start()
        grpc_server = await _start_grpc(plane)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(plane.settings.graceful_timeout_s)
            await plane.stop()

    # Swagger UI and ReDoc from the package's own copies: /docs and /redoc work without internet access.
    app = FastAPIOffline(
        title="lnserve",
        version=__version__,
        description="LayerNorm models on ONNX Runtime: chat intents, forecasts, activation statistics.",
        lifespan=lifespan,
        redirect_slashes=False,  # its redirect names the Host header's host: an open redirect
        # FastAPI's native OpenTelemetry layer asks the global providers (environment lookups) on every request, 6%
        # of the event loop's time at c = 64; lnserve traces with the ASGI instrumentation (LNSERVE_TRACING) and
        # exports its own metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.dataplane = plane
    kinds = list(plane.kinds)
    for router in (
        kind_router(kinds),
        openai.router,
        models.router,
        kserve.router,
        kserve.infer_router,
        repository.router,
        health.router,
        metrics.router,
        inspector.router,
    ):
        app.include_router(router)
    app.mount("/inspector/static", inspector.assets, name="inspector_static")
    bodies: list[type[BaseModel]] = [
        openai.ChatCompletionRequest,
        InferenceRequest,
        repository.IndexRequest,
        repository.ControlRequest,
    ]
    openapi.install(app, plane, bodies)
    _add_error_handlers(app)
    entry: ASGIApp = RequestIdMiddleware(
        app, allowed_hosts=plane.settings.allowed_hosts, direct=KindRoutes(plane, kinds)
    )
    if plane.tracing.on:  # outermost: the access log line and everything below run inside the request span
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        entry = OpenTelemetryMiddleware(entry)
    app.state.entry = entry
    return app


def served(app: FastAPI) -> ASGIApp:
    """What the server runs: the app inside its middleware (`create_app` builds both); another app as it is (the
    benchmark's no-op and hand-written endpoints run under the service's server settings)."""
    entry: ASGIApp = getattr(app.state, "entry", app)
    return entry


async def _start_grpc(plane: DataPlane) -> Any:
    """The gRPC server when `LNSERVE_GRPC_PORT` is set (the `grpc` extra)."""
    settings = plane.settings
    if settings.grpc_port is None:
        return None
    try:
        from service.rpc import server
    except ImportError as exc:
        raise RuntimeError(
            f"LNSERVE_GRPC_PORT needs the grpc extra (pip install 'lnserve[grpc]'): {exc}"
        ) from exc
    return await server.start(plane, settings.host, settings.grpc_port, settings.max_body_bytes)


def _error_response(error: LnserveError, status_code: int | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error.message}, status_code=status_code or error.status_code, headers=error.headers
    )


def _add_error_handlers(app: FastAPI) -> None:
    """One JSON error shape for everything: our errors, validation errors, routing errors (crashes: the
    middleware, so that the connection stays usable)."""

    @app.exception_handler(LnserveError)
    async def on_service_error(request: Request, exc: LnserveError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(InvalidInput(format_validation_errors(exc.errors())))

    @app.exception_handler(Exception)  # a crash: Starlette's ServerErrorMiddleware sends this, then re-raises
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": INTERNAL}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error_response(LnserveError(str(exc.detail), exc.headers), exc.status_code)
