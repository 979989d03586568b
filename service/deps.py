"""`Annotated` dependency aliases for route handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    # async: a plain `def` dependency runs in FastAPI's thread pool on every request (~6% of a profile at c=16).
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def note_model(request: Request, name: str) -> None:
    """Tell the metrics middleware which model a request was for (before any error can happen)."""
    request.state.model = name
