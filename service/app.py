"""The app factory: `create_app(settings)` wires repository, batchers, metrics, routers and error handling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import __version__
from service.batching import BatchLimits
from service.errors import InternalError, InvalidInput, LnserveError, format_validation_errors
from service.inference import Inference
from service.metrics import Metrics
from service.middleware import ServiceMiddleware
from service.repository import ModelRepository
from service.routers import chat, forecast, health, kserve, metrics, models, openai
from service.settings import Settings
from service.state import ServiceState

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics_ = Metrics()
    executor = ThreadPoolExecutor(
        max_workers=8, thread_name_prefix="lnserve-infer"
    )  # one batch per model at a time
    repository = ModelRepository(settings, metrics_, executor)
    limits = BatchLimits(
        max_batch_size=settings.max_batch_size,
        max_queue_delay_s=settings.max_queue_delay_us / 1e6,
        max_queue_size=settings.max_queue_size,
        timeout_s=settings.request_timeout_s,
        retry_after_s=settings.retry_after_s,
    )
    state = ServiceState(
        settings, metrics_, repository, Inference(repository, settings.activation_sample_rate), limits
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repository.discover()
        loading = asyncio.create_task(repository.load_all(limits))
        if not settings.load_in_background:
            await loading
        try:
            yield
        finally:
            loading.cancel()
            await repository.stop()
            executor.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(
        title="lnserve",
        version=__version__,
        description="LayerNorm models on ONNX Runtime: chat intents, forecasts, activation statistics.",
        lifespan=lifespan,
    )
    app.state.service = state
    routers = (
        chat.router,
        forecast.router,
        openai.router,
        models.router,
        kserve.router,
        health.router,
        metrics.router,
    )
    for router in routers:
        app.include_router(router)
    _add_error_handlers(app)

    def artifact_of(name: str) -> str | None:
        try:
            return repository.resolve(name).name
        except LnserveError:
            return None

    app.add_middleware(
        ServiceMiddleware,
        settings=settings,
        metrics=metrics_,
        resolve=artifact_of,
        routes=[route for router in routers for route in router.routes],
    )
    return app


def _error_response(request: Request, error: LnserveError) -> JSONResponse:
    request.state.error_reason = error.reason
    return JSONResponse({"error": error.message}, status_code=error.status_code, headers=error.headers)


def _add_error_handlers(app: FastAPI) -> None:
    """One JSON error shape for everything: our errors, validation errors, routing errors and crashes."""

    @app.exception_handler(LnserveError)
    async def on_service_error(request: Request, exc: LnserveError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(request, InvalidInput(format_validation_errors(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = LnserveError(str(exc.detail), exc.headers)
        response = JSONResponse({"error": error.message}, status_code=exc.status_code, headers=error.headers)
        return response

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(request, InternalError("internal server error"))
