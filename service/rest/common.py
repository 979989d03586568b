"""What every REST adapter shares: the data plane dependency, the body limit, JSON in and out."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.types import Receive

from service.dataplane import DataPlane
from service.errors import BodyIncomplete, InvalidInput, PayloadTooLarge, format_validation_errors

ModelT = TypeVar("ModelT", bound=BaseModel)


async def get_plane(request: Request) -> DataPlane:
    # async: a plain `def` dependency runs in FastAPI's thread pool on every request
    plane: DataPlane = request.app.state.dataplane
    return plane


Plane = Annotated[DataPlane, Depends(get_plane)]


async def authorised(request: Request, plane: Plane) -> None:
    """Router dependency for the non-inference routes (inference routes authorise inside their data plane call)."""
    plane.authorise(request.headers.get("authorization"))


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a request no one has read yet (`receive_body` on its ASGI messages)."""
    declared = request.headers.get("content-length")
    return await receive_body(request.receive, declared.encode("latin-1") if declared else None, limit)


async def receive_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The body from the ASGI messages, refused with 413 as soon as it is known to exceed `limit` (its declared
    `content-length`, or counted while reading); 408 when the client goes away first."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyIncomplete("the connection closed before the request body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")


def json_value(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise InvalidInput(f"request body is not valid JSON ({detail})") from None


def validate(value: Any, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidInput(format_validation_errors(exc.errors())) from None


def parse(body: bytes, model: type[ModelT]) -> ModelT:
    """JSON then the schema; both kinds of error are one readable 422 line."""
    return validate(json_value(body), model)


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Our own payloads are built from validated data: dump them without validating them again."""
    return Response(json_bytes(payload), status_code, headers, media_type="application/json")


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def json_body_schema(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a body the handler parses itself (so its errors are counted in its call)."""
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": _ref(model)}}}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}
