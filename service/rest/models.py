"""`GET /v1/models` (OpenAI list shape plus architecture and training metrics) and live activation statistics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from service.activations import DEFAULT_WINDOW_S
from service.repository import Model
from service.rest.common import Plane, authorised
from service.schemas import openapi_errors

router = APIRouter(tags=["models"], dependencies=[Depends(authorised)])

ARCHITECTURE_KEYS = ("norm_placement", "norm_type", "residual_scale", "n_layer", "parameters")


def describe(model: Model, model_id: str) -> dict[str, Any]:
    """One row: the model's default version (else its highest one), or only its state when it has none."""
    entry = model.shown()
    row: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": 0,
        "owned_by": "lnserve",
        "artifact": model.name,
        "alias_of": model.name if model_id != model.name else None,
        "aliases": model.aliases,
        "kind": model.kind,
        "version": None,
        "versions": sorted(model.versions, key=int),
        "ready": model.default is not None,
        "state": model.state,
        "error": None if entry is None else entry.error,
        "architecture": None,
        "training": {},
    }
    if entry is None or entry.artifact is None or entry.kind is None:
        return row
    sidecar = entry.artifact.sidecar
    architecture: dict[str, Any] = {key: sidecar.config.get(key) for key in ARCHITECTURE_KEYS}
    architecture["config"] = sidecar.config
    architecture["layers"] = [layer.model_dump() for layer in sidecar.layers]
    return row | {
        "created": entry.artifact.created,
        "kind": entry.kind.name,
        "version": entry.version,
        "architecture": architecture,
        "training": sidecar.training,
        entry.kind.name: entry.kind.describe(entry.artifact),
    }


@router.get("/v1/models", name="list_models", operation_id="list_models")
async def list_models(plane: Plane) -> dict[str, Any]:
    """Every model, then every alias, with versions, architecture, training metrics and readiness."""
    return {
        "object": "list",
        "data": [describe(model, name) for name, model in plane.repository.describe_all()],
    }


@router.get("/v1/models/{name}", name="get_model", operation_id="get_model", responses=openapi_errors(404))
async def get_model(name: str, plane: Plane) -> dict[str, Any]:
    entry = plane.repository.resolve(name)
    return describe(plane.repository.models[entry.name], name)


@router.get(
    "/v1/models/{name}/activations",
    name="model_activations",
    operation_id="get_model_activations",
    responses=openapi_errors(404, 422, 503),
)
async def model_activations(
    name: str,
    plane: Plane,
    window_s: Annotated[
        int | None,
        Query(
            ge=1,
            le=86_400,
            description="the last N seconds; default 300 (data older than `history_s` is not kept)",
        ),
    ] = None,
    offset_s: Annotated[
        int, Query(ge=0, le=86_400, description="the window ends this many seconds ago (default 0: now)")
    ] = 0,
) -> dict[str, Any]:
    """Live aggregates of the sampled traffic of the last `window_s` seconds, the sidecar's reference and the
    drift per layer over that window (docs/monitoring.md)."""
    monitor = plane.model(name).monitor
    if window_s is None:
        window_s = min(DEFAULT_WINDOW_S, monitor.history_s)
    snapshot = await asyncio.to_thread(monitor.snapshot, window_s, offset_s)
    # A window reaching further back than LNSERVE_ACTIVATION_HISTORY_S holds only what is kept: `history_s` says so.
    snapshot["history_s"] = monitor.history_s
    snapshot["sample_rate"] = plane.settings.activation_sample_rate
    return snapshot
