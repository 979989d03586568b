"""`GET /v1/models` (OpenAI list shape plus architecture and training metrics) and live activation statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.repository import ModelEntry
from service.rest.common import Plane, authorised
from service.schemas import openapi_errors

router = APIRouter(tags=["models"], dependencies=[Depends(authorised)])

ARCHITECTURE_KEYS = ("norm_placement", "norm_type", "residual_scale", "n_layer", "parameters")


def describe(entry: ModelEntry, model_id: str) -> dict[str, Any]:
    sidecar = entry.artifact.sidecar
    architecture: dict[str, Any] = {key: sidecar.config.get(key) for key in ARCHITECTURE_KEYS}
    architecture["config"] = sidecar.config
    architecture["layers"] = [layer.model_dump() for layer in sidecar.layers]
    return {
        "id": model_id,
        "object": "model",
        "created": entry.created,
        "owned_by": "lnserve",
        "artifact": entry.name,
        "alias_of": entry.name if model_id != entry.name else None,
        "aliases": entry.aliases,
        "kind": entry.kind.name,
        "version": entry.artifact.version,
        "ready": entry.ready,
        "state": entry.status,
        "error": entry.error,
        "architecture": architecture,
        "training": sidecar.training,
        entry.kind.name: entry.kind.describe(entry.artifact),
    }


@router.get("/v1/models", name="list_models", operation_id="list_models")
async def list_models(plane: Plane) -> dict[str, Any]:
    """Every artifact, then every alias, with architecture, training metrics and readiness."""
    return {
        "object": "list",
        "data": [describe(entry, name) for name, entry in plane.repository.describe_all()],
    }


@router.get("/v1/models/{name}", name="get_model", operation_id="get_model", responses=openapi_errors(404))
async def get_model(name: str, plane: Plane) -> dict[str, Any]:
    return describe(plane.repository.resolve(name), name)


@router.get(
    "/v1/models/{name}/activations",
    name="model_activations",
    operation_id="get_model_activations",
    responses=openapi_errors(404, 503),
)
async def model_activations(name: str, plane: Plane) -> dict[str, Any]:
    """Live aggregates of the sampled traffic, the sidecar's reference and the drift score per layer."""
    snapshot = plane.model(name).monitor.snapshot()
    snapshot["sample_rate"] = plane.settings.activation_sample_rate
    return snapshot
