"""The forecaster kind: a series in, `horizon` points and their quantiles out (`POST /v1/forecast`, KServe v2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from service.errors import InvalidInput
from service.kinds.base import Job, ModelKind, Route
from service.kinds.forecaster.runtime import (
    ForecasterRuntime,
    ForecastItem,
    ForecastResult,
    interpolate_quantiles,
)
from service.runtime.base import Artifact, Prediction
from service.schemas import Activations, ModelName, StrictRequest, Whole, activations_payload, narrow
from service.tensors import TensorSpec

Quantile = Annotated[float, Field(gt=0.0, lt=1.0)]
MAX_VALUE = 1e30
# Forecasts come back in the units of the series and are float32: a bound far below its maximum (3.4e38) keeps
# every forecast of a series the schema allows finite.


def _bounded(value: float) -> float:
    if abs(value) > MAX_VALUE:
        raise PydanticCustomError("value_too_large", f"must lie within ±{MAX_VALUE:g}")
    return value


Value = Annotated[
    float,
    Field(allow_inf_nan=False),
    AfterValidator(_bounded),
    WithJsonSchema({"type": "number", "minimum": -MAX_VALUE, "maximum": MAX_VALUE}),
]


class ForecastRequest(StrictRequest):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "series": [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118,
                               115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140],
                    "horizon": 12,
                    "season_length": 12,
                    "quantiles": [0.1, 0.5, 0.9],
                }
            ]
        }
    )  # fmt: skip
    series: Annotated[list[Value], Field(min_length=8, max_length=100_000)]
    horizon: Annotated[int, Field(ge=1), Whole] | None = None  # None: the model's maximum horizon
    season_length: Annotated[int, Field(ge=1, le=10_000), Whole] | None = None
    quantiles: Annotated[list[Quantile], Field(min_length=1, max_length=99)] | None = None
    return_activations: bool = False
    model: ModelName = "forecaster"


class ForecastResponse(BaseModel):
    forecast: list[float]
    quantiles: dict[str, list[float]]
    model: str
    activations: Activations | None = None
    artifact: str
    version: str


ROUTE = Route(
    "/v1/forecast", "forecast", ForecastRequest, ForecastResponse, "Forecast a series with quantiles"
)


def check_horizon(runtime: ForecasterRuntime, horizon: int | None) -> int:
    horizon = runtime.max_horizon if horizon is None else horizon
    if horizon > runtime.max_horizon:
        raise InvalidInput(
            f"horizon: {horizon} is beyond the model's maximum horizon of {runtime.max_horizon}"
        )
    return horizon


def check_levels(runtime: ForecasterRuntime, quantiles: list[float] | None) -> list[float]:
    levels = runtime.quantile_levels if quantiles is None else sorted(set(quantiles))
    lowest, highest = min(runtime.quantile_levels), max(runtime.quantile_levels)
    outside = [q for q in levels if not lowest <= q <= highest]
    if outside:
        raise InvalidInput(f"quantiles: {outside} outside the model's range [{lowest:g}, {highest:g}]")
    return levels


def integer_option(tensors: dict[str, np.ndarray], parameters: Mapping[str, Any], name: str) -> int | None:
    """One positive integer from an input tensor (every element equal) or a request parameter."""
    if name in tensors:
        values = np.unique(tensors[name].reshape(-1))
        if values.size != 1:
            raise InvalidInput(
                f"inputs.{name}: must hold one integer value, got {tensors[name].reshape(-1).tolist()}"
            )
        value = int(values[0])
    elif name in parameters:
        raw = parameters[name]
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise InvalidInput(f"parameters.{name}: must be a positive integer, got {raw!r}")
        value = raw
    else:
        return None
    if not 1 <= value <= 1_000_000:
        raise InvalidInput(f"{name}: must be between 1 and 1000000, got {value}")
    return value


class ForecasterKind(ModelKind[ForecastItem, ForecastResult]):
    name = "forecaster"
    runtime_class = ForecasterRuntime
    route = ROUTE
    training = "models.forecaster.hooks"
    # One batch at a time with every core: its unrolled LSTM answers one series 1.14x faster with two ORT threads
    # than with one, and two batches at once did not raise c = 64 (bench.ab, docs/benchmarks.md).
    batching: ClassVar[Mapping[str, Any]] = {"concurrent_batches": 1}

    def request_schema(self, artifact: Artifact | None) -> dict[str, Any]:
        schema = super().request_schema(artifact)
        if artifact is not None:
            block = artifact.sidecar.block()
            levels = block["quantiles"]
            narrow(schema["properties"]["horizon"], maximum=block["max_horizon"])
            narrow(schema["properties"]["quantiles"], items={"minimum": min(levels), "maximum": max(levels)})
        return schema

    def parse(self, runtime: Any, body: Any) -> Job[ForecastItem]:
        options = {
            "horizon": check_horizon(runtime, body.horizon),
            "levels": check_levels(runtime, body.quantiles),
        }
        series = np.asarray(body.series, dtype=np.float32)
        return Job([runtime.item(series, body.season_length)], body.return_activations, options)

    def respond(
        self, runtime: Any, body: Any, job: Job[ForecastItem], answers: list[Prediction[ForecastResult]]
    ) -> dict[str, Any]:
        (answer,) = answers
        median, chosen = self._answer(runtime, job, answer.result)
        return {
            "forecast": median.tolist(),
            "quantiles": {
                f"{level:g}": chosen[:, j].tolist() for j, level in enumerate(job.options["levels"])
            },
            "model": body.model,
            "activations": activations_payload(body.model, runtime.artifact, answer.activations)
            if job.activations
            else None,
            "artifact": runtime.name,
            "version": runtime.artifact.version,
        }

    @staticmethod
    def _answer(
        runtime: Any, job: Job[ForecastItem], result: ForecastResult
    ) -> tuple[np.ndarray, np.ndarray]:
        values = result.quantiles[: job.options["horizon"]]  # (horizon, n_model_levels)
        median = interpolate_quantiles(runtime.quantile_levels, values, [0.5])[:, 0]
        return median, interpolate_quantiles(runtime.quantile_levels, values, job.options["levels"])

    def inputs(self, artifact: Artifact) -> list[TensorSpec]:
        return [
            TensorSpec(
                "series", "FP32", (-1, -1), accepts=("FP64",), also=((-1,),), description="one series per row"
            ),
            TensorSpec("horizon", "INT64", (1,), optional=True, accepts=("INT32",)),
            TensorSpec("season_length", "INT64", (1,), optional=True, accepts=("INT32",)),
        ]

    def outputs(self, artifact: Artifact) -> list[TensorSpec]:
        n_quantiles = len(artifact.sidecar.block()["quantiles"])
        return [
            TensorSpec("forecast", "FP32", (-1, -1)),
            TensorSpec("quantiles", "FP32", (-1, -1, n_quantiles)),
        ]

    def from_tensors(
        self, runtime: Any, tensors: dict[str, np.ndarray], parameters: Mapping[str, Any]
    ) -> Job[ForecastItem]:
        series = tensors["series"]
        rows = series[None, :] if series.ndim == 1 else series
        horizon = check_horizon(runtime, integer_option(tensors, parameters, "horizon"))
        season = integer_option(tensors, parameters, "season_length")
        items = [runtime.item(row.astype(np.float32), season, i) for i, row in enumerate(rows)]
        return Job(items, options={"horizon": horizon, "levels": runtime.quantile_levels})

    def to_tensors(
        self, runtime: Any, job: Job[ForecastItem], answers: list[Prediction[ForecastResult]]
    ) -> dict[str, np.ndarray]:
        pairs = [self._answer(runtime, job, answer.result) for answer in answers]
        return {
            "forecast": np.stack([median for median, _ in pairs]).astype(np.float32),
            "quantiles": np.stack([chosen for _, chosen in pairs]).astype(np.float32),
        }

    def bench_bodies(self, n: int) -> list[dict[str, Any]]:
        """Monthly-looking series (trend x seasonality x noise), 24 to 144 points long."""
        rng = np.random.default_rng(0)
        bodies = []
        for _ in range(n):
            length = int(rng.integers(24, 145))
            t = np.arange(length)
            level = rng.uniform(50, 500)
            trend = 1.0 + rng.uniform(0.0, 0.01) * t
            season = 1.0 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi))
            series = level * trend * season * rng.normal(1.0, 0.03, length)
            bodies.append(
                {"series": [round(float(v), 3) for v in series], "horizon": 12, "season_length": 12}
            )
        return bodies


KIND = ForecasterKind()
