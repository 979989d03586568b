"""The kinds' JSON routes (`POST /v1/chat`, `POST /v1/forecast`, …) answered as plain ASGI, below the one middleware
and above FastAPI.

They are the hot path. Through FastAPI a request also passes its telemetry and body-limit layers, Starlette's two
error middlewares (each wrapping `send`), the router's route matching and the request object, about 26% of the
event loop's time at c = 64 (py-spy, docs/benchmarks.md). Here the same handler (`service.rest.kinds.answer`) runs
on the ASGI messages directly: same authorisation, body limit, parsing, data-plane call, metrics and error bodies.
The FastAPI routes stay registered for the OpenAPI document and for every other method on these paths (405).
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from service.dataplane import DataPlane
from service.errors import LnserveError
from service.kinds import AnyKind
from service.rest.common import json_bytes, receive_body
from service.rest.kinds import answer

JSON_HEADERS = [(b"content-type", b"application/json")]


class KindRoutes:
    """`POST` on a kind's route path, answered without FastAPI (`handles` says whether a request is one)."""

    def __init__(self, plane: DataPlane, kinds: list[AnyKind]) -> None:
        self.plane = plane
        self.routes = {kind.route.path: kind for kind in kinds}

    def handles(self, scope: Scope) -> AnyKind | None:
        if scope["method"] != "POST":
            return None
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return self.routes.get(path)

    async def __call__(self, kind: AnyKind, scope: Scope, receive: Receive, send: Send) -> None:
        authorization, declared = _first(scope, b"authorization"), _first(scope, b"content-length")
        try:
            payload = await answer(
                self.plane,
                kind,
                authorization.decode("latin-1") if authorization is not None else None,
                lambda: receive_body(receive, declared, self.plane.settings.max_body_bytes),
            )
            status, body, extra = 200, json_bytes(payload), []
        except LnserveError as exc:
            status, body = exc.status_code, json_bytes({"error": exc.message})
            extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *JSON_HEADERS, *extra],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _first(scope: Scope, name: bytes) -> bytes | None:
    """A header's first value (as Starlette's `Headers.get`)."""
    return next((value for key, value in scope["headers"] if key == name), None)
