"""Request and response bodies of the JSON API; validation lives here, not in route handlers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ChatRequest(BaseModel):
    message: Message
    return_activations: bool = False
    model: ModelName = "chatbot"


class Alternative(BaseModel):
    intent: str
    confidence: float


class LayerStatistics(BaseModel):
    index: int
    name: str
    kind: str
    mean: float | None
    std: float | None
    rms: float | None
    abs_mean: float | None
    abs_max: float | None


class Activations(BaseModel):
    model: str
    norm_placement: str | None
    norm_type: str | None
    residual_scale: float | None
    layers: list[LayerStatistics]


class ChatResponse(BaseModel):
    reply: str
    intent: str
    confidence: float = Field(ge=0.0, le=1.0)
    model: str
    alternatives: list[Alternative]
    activations: Activations | None = None
    artifact: str = Field(description="The artifact that answered (the alias resolved), e.g. chatbot-peri.")
    version: str
    fallback: bool = Field(
        description="True when the confidence or margin thresholds sent the query to out_of_scope."
    )


Quantile = Annotated[float, Field(gt=0.0, lt=1.0)]


class ForecastRequest(BaseModel):
    series: Annotated[list[FiniteFloat], Field(min_length=8, max_length=100_000)]
    horizon: Annotated[int, Field(ge=1)] | None = None  # None: the model's maximum horizon
    season_length: Annotated[int, Field(ge=1, le=10_000)] | None = None
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


# OpenAI-compatible chat completions: only the fields the chatbot uses are validated, the rest are accepted.
class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str = ""


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text for part in self.content if part.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: ModelName = "chatbot"
    messages: Annotated[list[OpenAIMessage], Field(min_length=1)]
    stream: bool = False
    return_activations: bool = False


class ErrorBody(BaseModel):
    error: str


def openapi_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting the shared error shape for these status codes."""
    return {code: {"model": ErrorBody} for code in codes}
