"""Health: `GET /v2/health/live` and `GET /v2/health/ready` (the KServe v2 names); open without an API key."""

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
    """200 only when every model is loaded and warmed up."""
    repository = plane.repository
    if not repository.all_ready:
        detail = (
            ", ".join(f"{name} ({why})" for name, why in repository.not_ready().items()) or "no models found"
        )
        raise ModelNotReady(f"not ready: {detail}", {"Retry-After": str(plane.settings.retry_after_s)})
    return {"ready": True, "models": sorted(repository.entries)}
