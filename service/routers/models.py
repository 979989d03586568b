"""`GET /v1/models` (OpenAI list shape plus architecture and training metrics) and live activation statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import State
from service.repository import ModelEntry
from service.schemas import openapi_errors

router = APIRouter(tags=["models"])

ARCHITECTURE_KEYS = ("norm_placement", "norm_type", "residual_scale", "n_layer", "parameters")


def describe(entry: ModelEntry, model_id: str | None = None) -> dict[str, Any]:
    sidecar = entry.artifact.sidecar
    config: dict[str, Any] = sidecar.get("config", {})
    architecture = {key: config.get(key) for key in ARCHITECTURE_KEYS}
    architecture["config"] = config
    architecture["layers"] = sidecar.get("layers", [])
    created = int(entry.artifact.folder.joinpath("sidecar.json").stat().st_mtime)
    return {
        "id": model_id or entry.name,
        "object": "model",
        "created": created,
        "owned_by": "lnserve",
        "artifact": entry.name,
        "alias_of": entry.name if model_id and model_id != entry.name else None,
        "aliases": entry.aliases,
        "kind": entry.artifact.kind,
        "version": entry.artifact.version,
        "ready": entry.ready,
        "state": entry.state,
        "error": entry.error,
        "architecture": architecture,
        "training": sidecar.get("training", {}),
        sidecar["kind"]: {k: v for k, v in sidecar.get(sidecar["kind"], {}).items()},
    }


@router.get("/v1/models", name="list_models")
async def list_models(state: State) -> dict[str, Any]:
    """Every artifact, then every alias, with architecture, training metrics and readiness."""
    repository = state.repository
    data = [describe(entry) for entry in repository.entries.values()]
    data += [
        describe(repository.resolve(alias), alias)
        for alias in sorted(repository.aliases)
        if repository.aliases[alias] in repository.entries
    ]
    return {"object": "list", "data": data}


@router.get("/v1/models/{name}", name="get_model", responses=openapi_errors(404))
async def get_model(name: str, state: State) -> dict[str, Any]:
    return describe(state.repository.resolve(name), name)


@router.get("/v1/models/{name}/activations", name="model_activations", responses=openapi_errors(404, 503))
async def model_activations(name: str, state: State) -> dict[str, Any]:
    """Live aggregates of the sampled traffic, the sidecar's reference and the drift score per layer."""
    entry = state.repository.get(name)
    assert entry.runtime is not None
    snapshot = entry.runtime.monitor.snapshot()
    snapshot["sample_rate"] = state.settings.activation_sample_rate
    return snapshot
