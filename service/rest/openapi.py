"""The OpenAPI document: FastAPI's, plus what it cannot know.

- the schemas of the bodies our handlers parse themselves (each kind's request with the limits of the model its
  route serves by default, OpenAI's, the Open Inference Protocol's);
- the bearer security scheme, required on every operation but health and metrics when an API key is set;
- the statuses every operation can answer besides its own: 400 (a host not served), 500, 503 (the connection
  cap), 401 where secured, 408 and 413 where there is a body; 422 in the service's error shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from service.dataplane import DataPlane
from service.errors import ModelNotFound
from service.schemas import ErrorBody

OPEN_TAGS = {"health", "metrics"}  # answered without an API key
SECURITY_SCHEME = {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "`LNSERVE_API_KEY`"}}
ERROR = {"$ref": "#/components/schemas/ErrorBody"}
COMMON = {
    "400": "Bad request: the body is not what the protocol expects, or the Host is not served here",
    "500": "Internal error (a bug; never bad input)",
    "503": "Overloaded (queue or connection cap; see `Retry-After`) or the model is not ready",
}
WITH_BODY = {
    "408": "The body did not arrive within `LNSERVE_BODY_TIMEOUT_S`",
    "413": "Body over `LNSERVE_MAX_BODY_BYTES`, or more items than `LNSERVE_MAX_ITEMS_PER_REQUEST`",
}


def install(app: FastAPI, plane: DataPlane, bodies: Iterable[type[BaseModel]]) -> None:
    """Replace `app.openapi` with the completed document (built once, on first use: after the models are found)."""
    models = list(bodies)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            for name, body in _bodies(plane, models):
                for inner, definition in body.pop("$defs", {}).items():
                    schemas.setdefault(inner, definition)
                schemas[name] = body
            schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            components["securitySchemes"] = SECURITY_SCHEME
            secured = plane.settings.api_key is not None
            for path in schema["paths"].values():
                for operation in path.values():
                    _complete(operation, secured and not OPEN_TAGS & set(operation.get("tags", [])))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _bodies(plane: DataPlane, models: list[type[BaseModel]]) -> Iterable[tuple[str, dict[str, Any]]]:
    for kind in plane.kinds:
        try:
            artifact = plane.repository.resolve(kind.default_model).artifact
        except ModelNotFound:
            artifact = None
        yield kind.route.request.__name__, kind.request_schema(artifact)
    for model in models:
        yield model.__name__, model.model_json_schema(ref_template="#/components/schemas/{model}")


def _complete(operation: dict[str, Any], secured: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = dict(COMMON)
    if "requestBody" in operation:
        statuses |= WITH_BODY
    if secured:
        operation["security"] = [{"bearerAuth": []}]
        statuses["401"] = "Missing or wrong `Authorization: Bearer` key"
    for status, description in statuses.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status.startswith(("4", "5")):  # every error has the one shape, FastAPI's 422 included
            response["content"] = {"application/json": {"schema": ERROR}}
