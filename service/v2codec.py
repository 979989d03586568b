"""Open Inference Protocol (KServe v2) REST tensors: JSON and the binary-data extension, both ways.

Decoding checks what the wire format alone can: JSON element types per datatype, element counts against shapes,
binary sizes against element sizes and BYTES length prefixes. What a model takes is checked against its declared
tensors afterwards (`service.tensors.bind`).
"""

from __future__ import annotations

import json
import struct
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import BadRequest, InvalidInput, NonFiniteOutput, format_validation_errors
from service.schemas import StrictRequest, Text, Whole
from service.tensors import DTYPES, Datatype, check_elements, element_count, flag

Parameters = dict[Text, bool | int | float | Text]
MAX_ELEMENTS = 10_000_000


class RequestInput(StrictRequest):
    """One input tensor: its values in `data` (nested or flat, row-major), or `parameters.binary_data_size` bytes
    of the binary part of the body."""

    name: Text
    shape: Annotated[list[Annotated[int, Field(ge=0, le=MAX_ELEMENTS), Whole]], Field(max_length=8)]
    datatype: Datatype
    parameters: Parameters = Field(default_factory=dict)
    data: list[Any] | None = None


class RequestOutput(StrictRequest):
    name: Text
    parameters: Parameters = Field(default_factory=dict)


class InferenceRequest(StrictRequest):
    """An Open Inference Protocol infer request: this JSON, or this JSON followed by the binary tensor data it
    describes (`Inference-Header-Content-Length` gives the JSON's size)."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "1",
                    "inputs": [
                        {
                            "name": "text",
                            "shape": [2],
                            "datatype": "BYTES",
                            "data": ["hi", "i lost my password"],
                        }
                    ],
                    "outputs": [{"name": "intent"}, {"name": "confidence"}],
                }
            ]
        },
    )

    id: Text | None = None
    parameters: Parameters = Field(default_factory=dict)
    inputs: Annotated[list[RequestInput], Field(min_length=1)]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferenceResponse(BaseModel):
    """The answer (JSON; outputs asked for as binary data follow it, `Inference-Header-Content-Length` bytes in)."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in data:
        flat.extend(_flatten(value) if isinstance(value, list) else [value])
    return flat


def _bytes_elements(name: str, raw: bytes) -> list[str]:
    elements, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"inputs.{name}: binary BYTES data ends inside a length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            raise InvalidInput(f"inputs.{name}: binary BYTES element of {length} bytes runs past the data")
        try:
            elements.append(raw[offset + 4 : offset + 4 + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"inputs.{name}: binary BYTES element {len(elements)} is not UTF-8") from None
        offset += 4 + length
    return elements


def _binary_values(tensor: RequestInput, raw: bytes) -> Any:
    if tensor.datatype == "BYTES":
        return _bytes_elements(tensor.name, raw)
    itemsize = np.dtype(DTYPES[tensor.datatype]).itemsize
    if len(raw) % itemsize:
        raise InvalidInput(
            f"inputs.{tensor.name}: binary {tensor.datatype} data of {len(raw)} bytes is not a multiple of "
            f"{itemsize}"
        )
    return np.frombuffer(raw, dtype=DTYPES[tensor.datatype])


def _array(tensor: RequestInput, values: Any) -> np.ndarray:
    try:
        with np.errstate(over="raise"):
            return np.array(values, dtype=DTYPES[tensor.datatype]).reshape(tensor.shape)
    except (OverflowError, FloatingPointError):
        raise InvalidInput(
            f"inputs.{tensor.name}: a value lies outside the range of {tensor.datatype}"
        ) from None
    except ValueError:  # an empty tensor whose other dimensions multiply past what numpy can address
        raise InvalidInput(f"inputs.{tensor.name}: shape {tensor.shape} is too large for an array") from None


def _header_length(value: str | None, body_size: int) -> int:
    if value is None:
        return body_size
    if not (value.isascii() and value.isdigit()) or int(value) > body_size:
        raise BadRequest(
            f"Inference-Header-Content-Length {value!r} does not fit a body of {body_size} bytes"
        )
    return int(value)


def decode_request(
    body: bytes, header_length: str | None
) -> tuple[InferenceRequest, dict[str, tuple[str, np.ndarray]]]:
    """The request and every input as (datatype, array of its shape); BYTES arrays hold `str` objects."""
    json_size = _header_length(header_length, len(body))
    try:
        request = InferenceRequest.model_validate_json(body[:json_size])
    except ValidationError as exc:
        errors = exc.errors()
        if errors[0]["type"] == "json_invalid":
            raise BadRequest(f"request body is not valid JSON ({errors[0]['ctx']['error']})") from None
        raise InvalidInput(format_validation_errors(errors)) from None
    flag(request.parameters, "binary_data_output", "parameters")
    for index, output in enumerate(request.outputs or []):
        flag(output.parameters, "binary_data", f"outputs[{index}].parameters")
    binary = body[json_size:]
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for tensor in request.inputs:
        if tensor.name in tensors:
            raise InvalidInput(f"inputs.{tensor.name}: given twice")
        count = element_count(tensor.shape)
        if count > MAX_ELEMENTS:
            raise InvalidInput(
                f"inputs.{tensor.name}: shape {tensor.shape} has more than {MAX_ELEMENTS} elements"
            )
        size = tensor.parameters.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidInput(f"inputs.{tensor.name}: binary_data_size must be a non-negative integer")
            raw, binary = binary[:size], binary[size:]
            if len(raw) != size:
                raise InvalidInput(
                    f"inputs.{tensor.name}: binary data is shorter than binary_data_size {size}"
                )
            values: Any = _binary_values(tensor, raw)
        elif tensor.data is not None:
            values = _flatten(tensor.data)
            check_elements(tensor.name, tensor.datatype, values)
        else:
            raise InvalidInput(f"inputs.{tensor.name}: neither data nor binary_data_size given")
        if len(values) != count:
            raise InvalidInput(f"inputs.{tensor.name}: {len(values)} values do not fit shape {tensor.shape}")
        tensors[tensor.name] = (tensor.datatype, _array(tensor, values))
    if binary:
        raise InvalidInput(f"{len(binary)} bytes of binary data follow the inputs without belonging to any")
    return request, tensors


def wants_binary(request: InferenceRequest, name: str) -> bool:
    for output in request.outputs or []:
        if output.name == name:
            return flag(output.parameters, "binary_data")
    return flag(request.parameters, "binary_data_output")


def encode_response(
    request: InferenceRequest, model: str, version: str, outputs: dict[str, tuple[str, np.ndarray]]
) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers; outputs asked for as binary data follow the JSON header."""
    tensors, blobs = [], []
    for name, (datatype, array) in outputs.items():
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise NonFiniteOutput(f"output {name} of model {model} holds non-finite values")
        if wants_binary(request, name):
            blob = _serialize(datatype, array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = array.reshape(-1).tolist()
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, allow_nan=False, separators=(",", ":")).encode()
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def _serialize(datatype: str, array: np.ndarray) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
    parts = []
    for value in array.reshape(-1):
        raw = value.encode() if isinstance(value, str) else bytes(value)
        parts.append(struct.pack("<I", len(raw)) + raw)
    return b"".join(parts)
