"""The one pure-ASGI middleware, outside the FastAPI app: the request id, the host check, the access log line, the
last word on crashes, and the kinds' JSON routes answered directly (`service.rest.direct`).

It wraps the app rather than being added to it: FastAPI's own layers (its body limit and telemetry wrappers,
Starlette's `ServerErrorMiddleware`, which wraps `send`) then cost nothing on the direct routes.

A crash (an exception no handler turned into a response) is answered with the JSON 500 (by the app's handler for
`Exception`, or here when it escaped before any response), and the exception goes no further: Starlette's
`ServerErrorMiddleware` re-raises it after its 500, and uvicorn would then drop the keep-alive connection without
`Connection: close`, so the client's next request on it would fail.

Authorisation, body limits and request metrics belong to the data plane (the same for every protocol), not here.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logging import request_id_var
from service.rest.direct import KindRoutes

log = logging.getLogger("service.access")
crash_log = logging.getLogger("service.app")
HEADER = b"x-request-id"
INTERNAL = "internal server error"
SANE_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # anything else is replaced (logs, headers)


def request_id(scope: Scope) -> str:
    given = next((value for key, value in scope["headers"] if key == HEADER), None)
    return given.decode("ascii") if given and SANE_ID.fullmatch(given) else uuid.uuid4().hex


def host_matcher(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """None when every host is allowed (`*`); else a pattern of the allowed names (`*.example.com` as in
    Starlette's `TrustedHostMiddleware`: the subdomains)."""
    patterns = [p.lower() for p in patterns]
    if "*" in patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class RequestIdMiddleware:
    def __init__(
        self, app: ASGIApp, allowed_hosts: Iterable[str] = ("*",), direct: KindRoutes | None = None
    ) -> None:
        self.app = app
        self.hosts = host_matcher(allowed_hosts)
        self.direct = direct  # the kinds' JSON routes, answered here without the app (service.rest.direct)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status, complete = 0, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, rid.encode("ascii"))]
            elif message["type"] == "http.response.body":
                complete = not message.get("more_body", False)
            await send(message)

        try:
            host = self._refused_host(scope)
            direct = self.direct
            kind = direct.handles(scope) if direct is not None else None
            if host is not None:
                await _error(send_with_id, 400, f"host {host!r} is not served here")
            elif direct is not None and kind is not None:
                await direct(kind, scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception:
            crash_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if complete:
                return  # the app's 500 is out (ServerErrorMiddleware re-raises after it): keep the connection
            if status:
                raise  # half a response is out: only closing the connection can end it
            await _error(send_with_id, 500, INTERNAL)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                elapsed_ms,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed_ms, 3),
                },
            )
            request_id_var.reset(token)

    def _refused_host(self, scope: Scope) -> str | None:
        if self.hosts is None:
            return None
        given = next((value for key, value in scope["headers"] if key == b"host"), b"")
        host = given.decode("latin-1").lower()
        host = host[: host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]  # no port
        return None if self.hosts.fullmatch(host) else host


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
