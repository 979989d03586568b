"""`GET /metrics`: Prometheus text exposition from the data plane's own registry; open without an API key."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.rest.common import Plane

router = APIRouter(tags=["metrics"])


@router.get("/metrics", name="metrics", operation_id="metrics", response_class=Response)
async def metrics(plane: Plane) -> Response:
    # A thread: thousands of activation series take tens of milliseconds to format, requests keep being served.
    body = await asyncio.to_thread(generate_latest, plane.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
