"""Health: `GET /v2/health/live` and `GET /v2/health/ready` (the KServe v2 names); open without an API key.

Ready means the start-up loads are over and the models the server must serve are ready: the required models
(`LNSERVE_REQUIRED_MODELS`, by default the model each kind's route answers with), or every served model and
version with `LNSERVE_STRICT_READINESS`. Per-model readiness is `GET /v2/models/{name}/ready`, so a Kubernetes
readiness probe here keeps a pod in service while one optional artifact is broken.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.errors import ModelNotReady
from service.rest.common import Plane
from service.schemas import openapi_errors

router = APIRouter(tags=["health"])


@router.get("/v2/health/live", name="live", operation_id="server_live")
async def live() -> dict[str, bool]:
    """200 while the process can answer."""
    return {"live": True}


@router.get("/v2/health/ready", name="ready", operation_id="server_ready", responses=openapi_errors(503))
async def ready(plane: Plane) -> dict[str, Any]:
    """200 when the models the server must serve are loaded and warmed up (every model in strict mode)."""
    repository = plane.repository
    waiting = repository.unready()
    if waiting:
        detail = ", ".join(f"{name} ({why})" for name, why in waiting.items())
        raise ModelNotReady(f"not ready: {detail}", {"Retry-After": str(plane.settings.retry_after_s)})
    models = sorted(name for name, model in repository.models.items() if model.default is not None)
    return {"ready": True, "models": models}
