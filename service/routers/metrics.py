"""`GET /metrics`: Prometheus text exposition from the app's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import State

router = APIRouter(tags=["metrics"])


@router.get("/metrics", name="metrics", response_class=Response)
async def metrics(state: State) -> Response:
    for entry in state.repository.entries.values():
        if entry.runtime is not None:
            entry.runtime.monitor.publish(state.metrics)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
