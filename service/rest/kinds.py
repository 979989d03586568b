"""Each registered kind's own JSON route (`POST /v1/chat`, `POST /v1/forecast`, …), generated from its `Route`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from service.dataplane import DataPlane
from service.kinds import AnyKind
from service.rest.common import get_plane, json_body_schema, json_response, parse, read_body
from service.schemas import openapi_errors

ERRORS = openapi_errors(401, 404, 413, 422, 503, 504)


def kind_router(kinds: list[AnyKind]) -> APIRouter:
    router = APIRouter()
    for kind in kinds:
        route = kind.route
        router.add_api_route(
            route.path,
            _handler(kind),
            methods=["POST"],
            name=route.endpoint,
            summary=route.summary,
            operation_id=route.endpoint,
            tags=[kind.name],
            response_class=Response,
            responses={200: {"model": route.response}, **ERRORS},
            openapi_extra=json_body_schema(route.request),
        )
    return router


async def answer(
    plane: DataPlane, kind: AnyKind, authorization: str | None, read: Callable[[], Awaitable[bytes]]
) -> dict[str, Any]:
    """One request to a kind's route, inside its data-plane call: authorise, read and parse the body, infer."""
    async with plane.call(kind.route.endpoint, authorization, kind.default_model) as call:
        body = parse(await read(), kind.route.request)
        return await plane.infer_json(call, kind, body)


def _handler(kind: AnyKind):  # type: ignore[no-untyped-def]
    """The FastAPI endpoint (OpenAPI, and the app without the middleware's direct path: `service.rest.direct`)."""
    route = kind.route

    async def handle(request: Request) -> Response:
        plane: DataPlane = await get_plane(request)
        limit = plane.settings.max_body_bytes
        return json_response(
            await answer(plane, kind, request.headers.get("authorization"), lambda: read_body(request, limit))
        )

    handle.__doc__ = route.summary
    return handle
