"""Tensor declarations (in the spirit of pytriton's `Tensor`): a model kind declares each protocol-level input and
output once; KServe v2 metadata and the validation of every v2 request are derived from these declarations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from service.errors import InvalidInput

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"
]  # fmt: skip
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}

assert set(get_args(Datatype)) == set(DTYPES)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: v2 name, datatype and shape (-1 = any size), as a client sees it."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    optional: bool = False
    accepts: tuple[str, ...] = ()  # further datatypes an input takes, converted to `datatype`
    also: tuple[tuple[int, ...], ...] = ()  # further shapes an input takes (the kind reshapes them)
    description: str = ""

    def metadata(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
        if self.optional:
            entry["parameters"] = {"optional": True}
        return entry

    def check_shape(self, shape: Sequence[int]) -> None:
        if 0 in shape:
            raise InvalidInput(f"inputs.{self.name}: shape {list(shape)} holds no values; give at least one")
        if not any(_fits(want, shape) for want in (self.shape, *self.also)):
            allowed = " or ".join(str(list(s)) for s in (self.shape, *self.also))
            raise InvalidInput(
                f"inputs.{self.name}: shape must be {allowed} (-1: any size), got {list(shape)}"
            )


def _fits(want: Sequence[int], shape: Sequence[int]) -> bool:
    return len(want) == len(shape) and all(w in (-1, g) for w, g in zip(want, shape, strict=True))


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def check_elements(name: str, datatype: str, values: list[Any]) -> None:
    """JSON elements must be of the datatype's own JSON type: no stringified numbers, no numbers as text."""
    if datatype == "BYTES":
        bad = next((v for v in values if not isinstance(v, str)), _NONE)
        if bad is not _NONE:
            raise InvalidInput(f"inputs.{name}: BYTES data must be strings, got {bad!r}")
        return
    if datatype == "BOOL":
        bad = next((v for v in values if not isinstance(v, bool)), _NONE)
        if bad is not _NONE:
            raise InvalidInput(f"inputs.{name}: BOOL data must be true or false, got {bad!r}")
        return
    integer = datatype.startswith(("INT", "UINT"))
    allowed: tuple[type, ...] = (int,) if integer else (int, float)
    bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, allowed)), _NONE)
    if bad is not _NONE:
        kind = "integers" if integer else "numbers"
        raise InvalidInput(f"inputs.{name}: {datatype} data must be {kind}, got {bad!r}")
    if integer and values:
        info = np.iinfo(DTYPES[datatype])
        low, high = min(values), max(values)
        if low < info.min or high > info.max:
            raise InvalidInput(f"inputs.{name}: {datatype} values must lie in [{info.min}, {info.max}]")


_NONE = object()


def flag(parameters: Mapping[str, Any], name: str, where: str = "parameters") -> bool:
    """A true/false request parameter (absent: false); `0`, `"yes"` and the like are refused, not guessed at."""
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}.{name}: must be true or false, got {value!r}")
    return value


def bind(specs: Sequence[TensorSpec], tensors: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Check decoded inputs (name -> (datatype, array)) against the declarations; arrays in the declared dtype."""
    declared = {spec.name: spec for spec in specs}
    unknown = sorted(set(tensors) - set(declared))
    if unknown:
        raise InvalidInput(f"inputs: unknown input(s) {unknown}; this model takes {sorted(declared)}")
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.name not in tensors:
            if spec.optional:
                continue
            raise InvalidInput(
                f"inputs: missing input {spec.name!r} ({spec.datatype} {list(spec.shape)}); got {sorted(tensors)}"
            )
        datatype, array = tensors[spec.name]
        if datatype != spec.datatype and datatype not in spec.accepts:
            allowed = " or ".join((spec.datatype, *spec.accepts))
            raise InvalidInput(f"inputs.{spec.name}: datatype must be {allowed}, got {datatype}")
        spec.check_shape(array.shape)
        out[spec.name] = array if datatype == spec.datatype else array.astype(DTYPES[spec.datatype])
    return out
