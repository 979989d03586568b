"""`POST /v1/forecast`: the forecaster in our own JSON API."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request

from service.deps import State, note_model
from service.inference import activations_payload
from service.schemas import ForecastRequest, ForecastResponse, openapi_errors

router = APIRouter(tags=["forecast"])


@router.post("/v1/forecast", name="forecast", responses=openapi_errors(401, 404, 413, 422, 503, 504))
async def forecast(body: ForecastRequest, request: Request, state: State) -> ForecastResponse:
    """Forecast `horizon` points of a series, with quantiles, in the series' own units."""
    note_model(request, body.model)
    series = np.asarray(body.series, dtype=np.float32)
    entry, (result,) = await state.inference.forecast(
        body.model, [series], body.horizon, body.season_length, body.quantiles, body.return_activations
    )
    return ForecastResponse(
        forecast=result.median.tolist(),
        quantiles={f"{level:g}": result.quantiles[:, j].tolist() for j, level in enumerate(result.levels)},
        model=body.model,
        activations=(
            activations_payload(body.model, entry, result.activations)
            if result.activations is not None
            else None
        ),
        artifact=entry.name,
        version=entry.artifact.version,
    )
