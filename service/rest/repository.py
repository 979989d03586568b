"""Triton's model repository extension: `POST /v2/repository/index`, `POST /v2/repository/models/{name}/load`
and `.../unload` (load and unload only in `LNSERVE_MODEL_CONTROL=explicit`, as Triton)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from service.rest.common import Plane, authorised, json_body_schema, parse, read_body
from service.schemas import StrictRequest, openapi_errors

router = APIRouter(tags=["model-repository"], dependencies=[Depends(authorised)])
BodyT = TypeVar("BodyT", bound=BaseModel)


async def optional_body(request: Request, model: type[BodyT], limit: int) -> BodyT:
    """The JSON body, or the defaults when there is none (Triton clients send `{}` or an empty body, often
    without a content type)."""
    raw = await read_body(request, limit)
    return parse(raw, model) if raw else model()


class IndexRequest(StrictRequest):
    ready: bool = Field(default=False, description="Only the versions that are ready.")


class ControlRequest(StrictRequest):
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Accepted for Triton clients (e.g. `unload_dependents`); unused."
    )


class IndexEntry(BaseModel):
    name: str
    version: str | None = None
    state: str = Field(description="READY, LOADING or UNAVAILABLE")
    reason: str = Field(description="Why it is not ready (a load error), or `unloaded`.")


@router.post(
    "/v2/repository/index",
    name="repository_index",
    operation_id="repository_index",
    response_model=list[IndexEntry],
    response_model_exclude_none=True,
    responses=openapi_errors(401, 422),
    openapi_extra=json_body_schema(IndexRequest, required=False),  # Triton's clients send none
)
async def repository_index(request: Request, plane: Plane) -> list[dict[str, Any]]:
    """Every model of the repository, one row per version, with its state and the reason when not ready."""
    body = await optional_body(request, IndexRequest, plane.settings.max_body_bytes)
    return plane.repository.index(ready_only=body.ready)


@router.post(
    "/v2/repository/models/{name}/load",
    name="repository_model_load",
    operation_id="repository_model_load",
    responses=openapi_errors(400, 401, 403, 404, 422),
    openapi_extra=json_body_schema(ControlRequest, required=False),
)
async def load(name: str, request: Request, plane: Plane) -> dict[str, Any]:
    """Load the model, or reload it: the new sessions are built and warmed while the old ones serve, then
    switched in one step; the old ones are drained, then freed. 400 with the reason when a version failed (what
    served before still serves)."""
    await optional_body(request, ControlRequest, plane.settings.max_body_bytes)
    model = await plane.control.load(name)
    return {"name": name, "versions": sorted(model.versions, key=int), "state": "READY"}


@router.post(
    "/v2/repository/models/{name}/unload",
    name="repository_model_unload",
    operation_id="repository_model_unload",
    responses=openapi_errors(401, 403, 404, 422),
    openapi_extra=json_body_schema(ControlRequest, required=False),
)
async def unload(name: str, request: Request, plane: Plane) -> dict[str, Any]:
    """Stop serving every version of the model: out of routing at once, then drained and freed."""
    await optional_body(request, ControlRequest, plane.settings.max_body_bytes)
    await plane.control.unload(name)
    return {"name": name, "state": "UNAVAILABLE"}
