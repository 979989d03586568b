"""Health: `GET /v2/health/live` and `GET /v2/health/ready` (the KServe v2 names)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import State
from service.errors import ModelNotReady
from service.schemas import openapi_errors

router = APIRouter(tags=["health"])


@router.get("/v2/health/live", name="live")
async def live() -> dict[str, bool]:
    """200 while the process can answer."""
    return {"live": True}


@router.get("/v2/health/ready", name="ready", responses=openapi_errors(503))
async def ready(state: State) -> dict[str, Any]:
    """200 only when every model is loaded and warmed up."""
    repository = state.repository
    if not repository.all_ready:
        waiting = {
            entry.name: entry.error or entry.state for entry in repository.entries.values() if not entry.ready
        }
        waiting |= repository.refused
        detail = ", ".join(f"{name} ({why})" for name, why in waiting.items()) or "no models found"
        raise ModelNotReady(f"not ready: {detail}", {"Retry-After": str(state.settings.retry_after_s)})
    return {"ready": True, "models": sorted(repository.entries)}
