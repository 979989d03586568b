"""Bodies every kind shares: input rules, the activation statistics payload, the error shape.

A kind's own request and response models live in its package (`service/kinds/<kind>/`).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.runtime.base import Artifact, FloatArray

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class LayerStatistics(BaseModel):
    """One layer's statistics; the statistic fields are the ones the sidecar names (`mean`, `std`, …)."""

    model_config = ConfigDict(extra="allow")
    index: int
    name: str
    kind: str


class Activations(BaseModel):
    model: str
    norm_placement: str | None
    norm_type: str | None
    residual_scale: float | None
    layers: list[LayerStatistics]


class ErrorBody(BaseModel):
    error: str


def openapi_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting the shared error shape for these status codes."""
    return {code: {"model": ErrorBody} for code in codes}


def activations_payload(model: str, artifact: Artifact, stats: FloatArray | None) -> dict[str, Any] | None:
    """A request's own statistics in the contract's shape (non-finite values become null)."""
    if stats is None:
        return None
    config = artifact.sidecar.config
    statistics = artifact.statistics
    layers = []
    for layer, row in zip(artifact.layers, stats, strict=True):
        values = {
            stat: (float(v) if np.isfinite(v) else None) for stat, v in zip(statistics, row, strict=True)
        }
        layers.append({"index": layer.index, "name": layer.name, "kind": layer.kind, **values})
    return {
        "model": model,
        "norm_placement": config.get("norm_placement"),
        "norm_type": config.get("norm_type"),
        "residual_scale": config.get("residual_scale"),
        "layers": layers,
    }
