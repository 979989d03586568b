"""Bodies every kind shares: input rules, the activation statistics payload, the error shape.

A kind's own request and response models live in its package (`service/kinds/<kind>/`).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

from service.runtime.base import Artifact, FloatArray

MESSAGE_MAX = 2000
# What trimming removes: JSON Schema's (ECMAScript's) whitespace, spelled out, so that the pattern in the OpenAPI
# document means the same to every regex engine (Python's `\s` also takes \x1c-\x1f, ECMAScript's does not).
WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WS = "".join(f"\\u{ord(c):04x}" for c in WHITESPACE)
# The message rule as a pattern: one character that is not whitespace, at most MESSAGE_MAX characters from the first
# to the last of them.
MESSAGE_PATTERN = rf"^[{_WS}]*[^{_WS}](?:[\s\S]{{0,{MESSAGE_MAX - 2}}}[^{_WS}])?[{_WS}]*$"


def unicode_text(value: Any) -> Any:
    """Refuse unpaired surrogates (`"\\ud800"` is valid JSON but no text) before anything tokenises them."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PydanticCustomError(
                "unpaired_surrogate",
                "must be valid Unicode text; character {position} is an unpaired surrogate",
                {"position": exc.start},
            ) from None
    return value


def _message(text: str) -> str:
    text = text.strip(WHITESPACE)
    if not text:
        raise PydanticKnownError("string_too_short", {"min_length": 1})
    if len(text) > MESSAGE_MAX:
        raise PydanticKnownError("string_too_long", {"max_length": MESSAGE_MAX})
    return text


Text = Annotated[str, BeforeValidator(unicode_text)]
"""Any text, refused when it is not valid Unicode."""
Message = Annotated[
    Text,
    AfterValidator(_message),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": MESSAGE_PATTERN}),
]
"""A chat message: 1..2000 characters after trimming whitespace (`WHITESPACE`)."""


def _whole(value: Any) -> Any:
    """JSON has one number type: 14.0 is the integer 14 (as JSON Schema says); 14.5, "14" and true are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = BeforeValidator(_whole)
"""For the integers of a strict request: `Annotated[int, Field(ge=1), Whole]` (constraints first, or pydantic leaves
them out of the JSON schema)."""
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
ModelName = Annotated[Text, StringConstraints(min_length=1, max_length=200)]


def narrow(schema: dict[str, Any], **keywords: Any) -> None:
    """Add JSON-schema keywords to a property's schema (to its non-null branch when it is optional)."""
    branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
    for branch in branches:
        for key, value in keywords.items():
            if isinstance(value, dict):
                branch.setdefault(key, {}).update(value)
            else:
                branch[key] = value


class StrictRequest(BaseModel):
    """A request body: JSON types as the schema says them (`0` is no boolean, `"3"` no integer)."""

    model_config = ConfigDict(strict=True)


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
