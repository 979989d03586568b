"""KServe v2 / Open Inference Protocol REST: server and model metadata, readiness and `infer`, for every kind.

Metadata and validation come from each kind's tensor declarations; this module only translates the wire format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from service.rest.common import Plane, authorised, get_plane, json_body_schema, read_body
from service.schemas import openapi_errors
from service.v2codec import InferenceRequest, InferenceResponse, decode_request, encode_response

router = APIRouter(tags=["kserve-v2"], dependencies=[Depends(authorised)])
infer_router = APIRouter(tags=["kserve-v2"])
ERRORS = openapi_errors(401, 404, 503)
INFER_ERRORS = openapi_errors(400, 401, 404, 413, 422, 503, 504)
Handler = Callable[..., Awaitable[Any]]


@router.get("/v2", name="server_metadata", operation_id="server_metadata")
@router.get("/v2/", include_in_schema=False)  # the spec's own spelling
async def server_metadata(plane: Plane) -> dict[str, Any]:
    return plane.server_metadata()


def versioned(
    router: APIRouter, method: str, path: str, name: str, **options: Any
) -> Callable[[Handler], Handler]:
    """Register a handler under `/v2/models/{name}<path>` and `/v2/models/{name}/versions/{version}<path>`."""

    def register(handler: Handler) -> Handler:
        for prefix, suffix in (
            ("/v2/models/{name}", ""),
            ("/v2/models/{name}/versions/{version}", "_version"),
        ):
            operation = name.replace("model_", f"model{suffix}_", 1)
            router.add_api_route(
                prefix + path,
                handler,
                methods=[method],
                name=operation,
                operation_id=operation,
                **({"responses": ERRORS} | options),
            )
        return handler

    return register


@versioned(router, "GET", "", "model_metadata")
async def model_metadata(name: str, plane: Plane, version: str | None = None) -> dict[str, Any]:
    return plane.model_metadata(name, version)


@versioned(router, "GET", "/ready", "model_ready")
async def model_ready(name: str, plane: Plane, version: str | None = None) -> dict[str, Any]:
    """200 when the model serves; 503 (with the reason) while it loads or after it was refused."""
    plane.model(name, version)
    return {"name": name, "ready": True}


@versioned(
    infer_router,
    "POST",
    "/infer",
    "model_infer",
    response_class=Response,
    responses={
        200: {
            "model": InferenceResponse,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "JSON; or JSON then binary outputs (`Inference-Header-Content-Length`) when asked for",
        },
        **INFER_ERRORS,
    },
    openapi_extra=json_body_schema(InferenceRequest),
)
async def infer(name: str, request: Request, version: str | None = None) -> Response:
    plane = await get_plane(request)
    async with plane.call("kserve_infer", request.headers.get("authorization"), name) as call:
        raw = await read_body(request, plane.settings.max_body_bytes)
        body, tensors = decode_request(raw, request.headers.get("inference-header-content-length"))
        requested = [output.name for output in body.outputs] if body.outputs else None
        outputs = await plane.infer_tensors(call, name, version, tensors, body.parameters, requested)
        assert call.served is not None  # set when the model resolved
        content, headers = encode_response(body, name, call.served.version, outputs)
    media_type = "application/json" if not headers else "application/octet-stream"
    return Response(content, media_type=media_type, headers=headers)
