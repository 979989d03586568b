"""One ASGI middleware for what every request shares: request id, API key, body limit, access log, metrics."""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import LnserveError, PayloadTooLarge, Unauthorized, reason_for_status
from service.logging import request_id_var
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service.access")

OPEN_PATHS = ("/v2/health/", "/metrics")
# Inference routes (by route name) and the model their requests default to, for the request metrics.
INFERENCE_ROUTES = {
    "chat": "chatbot",
    "forecast": "forecaster",
    "openai_chat": "chatbot",
    "kserve_infer": None,
}


class ServiceMiddleware:
    def __init__(
        self, app: ASGIApp, settings: Settings, metrics: Metrics, resolve: Any, routes: list[BaseRoute]
    ) -> None:
        self.app = app
        self.routes = routes  # to name the endpoint of requests refused before routing (401, 413)
        self.settings = settings
        self.metrics = metrics
        self.resolve = resolve  # name -> artifact name, or None when unknown
        self.api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            try:
                self._authorise(scope["path"], headers)
                receive = await self._limit_body(headers, receive)
            except LnserveError as exc:
                scope["state"]["error_reason"] = exc.reason
                await _send_error(send_with_id, exc)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self._record(scope, status["code"], elapsed)
            log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status["code"],
                elapsed * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status["code"],
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            request_id_var.reset(token)

    def _authorise(self, path: str, headers: dict[str, str]) -> None:
        if self.api_key is None or path.startswith(OPEN_PATHS):
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), self.api_key):
            raise Unauthorized()

    async def _limit_body(self, headers: dict[str, str], receive: Receive) -> Receive:
        """Refuse a body over the limit before the app reads it; the body is then replayed to the app."""
        limit = self.settings.max_body_bytes
        too_large = PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                raise too_large
            if not message.get("more_body", False):
                break
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route") or self._match(scope)
        endpoint = getattr(route, "name", None)
        if endpoint not in INFERENCE_ROUTES:
            return
        state = scope.get("state", {})
        requested = (
            state.get("model") or scope.get("path_params", {}).get("name") or INFERENCE_ROUTES[endpoint]
        )
        model = (self.resolve(requested) if requested else None) or "unknown"
        self.metrics.request_duration.labels(model, endpoint).observe(elapsed)
        if status < 400:
            self.metrics.request_success.labels(model, endpoint).inc()
        else:
            reason = state.get("error_reason") or reason_for_status(status)
            self.metrics.request_failure.labels(model, endpoint, reason).inc()

    def _match(self, scope: Scope) -> BaseRoute | None:
        for route in self.routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                scope.setdefault("path_params", child.get("path_params", {}))
                return route
        return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


async def _send_error(send: Send, error: LnserveError) -> None:
    body = json.dumps({"error": error.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
