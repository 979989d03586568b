"""Open Inference Protocol (KServe v2) REST tensors: JSON and the binary-data extension, both ways."""

from __future__ import annotations

import json
import struct
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from service.errors import BadRequest, InvalidInput, format_validation_errors

Parameters = dict[str, bool | int | float | str]
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


class RequestInput(BaseModel):
    name: str
    shape: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=8)]
    datatype: str
    parameters: Parameters = Field(default_factory=dict)
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters = Field(default_factory=dict)


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: Parameters = Field(default_factory=dict)
    inputs: Annotated[list[RequestInput], Field(min_length=1)]
    outputs: list[RequestOutput] | None = None


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in data:
        flat.extend(_flatten(value) if isinstance(value, list) else [value])
    return flat


def _bytes_elements(raw: bytes) -> list[bytes]:
    elements, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        elements.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return elements


def decode_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, dict[str, np.ndarray]]:
    """Parse the request and every input into a numpy array of its declared shape (BYTES as `str` objects)."""
    json_size = int(header_length) if header_length and header_length.isdigit() else len(body)
    try:
        request = InferenceRequest.model_validate_json(body[:json_size])
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise BadRequest("request body is not valid JSON") from None
        raise InvalidInput(format_validation_errors(exc.errors())) from None
    binary, tensors = body[json_size:], {}
    for tensor in request.inputs:
        if tensor.datatype not in DTYPES:
            raise InvalidInput(f"inputs.{tensor.name}: unsupported datatype {tensor.datatype!r}")
        size = tensor.parameters.get("binary_data_size")
        if isinstance(size, int) and not isinstance(size, bool):
            raw, binary = binary[:size], binary[size:]
            if len(raw) != size:
                raise InvalidInput(
                    f"inputs.{tensor.name}: binary data is shorter than binary_data_size {size}"
                )
            values: Any = (
                [b.decode("utf-8", "replace") for b in _bytes_elements(raw)]
                if tensor.datatype == "BYTES"
                else np.frombuffer(raw, dtype=DTYPES[tensor.datatype])
            )
        elif tensor.data is not None:
            values = _flatten(tensor.data)
        else:
            raise InvalidInput(f"inputs.{tensor.name}: neither data nor binary_data_size given")
        try:
            array = np.array(values, dtype=DTYPES[tensor.datatype]).reshape(tensor.shape)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"inputs.{tensor.name}: data does not fit shape {tensor.shape}: {exc}"
            ) from None
        tensors[tensor.name] = array
    return request, tensors


def wants_binary(request: InferenceRequest, name: str) -> bool:
    for output in request.outputs or []:
        if output.name == name:
            return bool(output.parameters.get("binary_data", False))
    return bool(request.parameters.get("binary_data_output", False))


def encode_response(
    request: InferenceRequest, model: str, version: str, outputs: dict[str, tuple[str, np.ndarray]]
) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers; outputs asked for as binary data follow the JSON header."""
    wanted = {o.name for o in request.outputs} if request.outputs else set(outputs)
    unknown = wanted - set(outputs)
    if unknown:
        raise InvalidInput(f"outputs: unknown output(s) {sorted(unknown)}; this model has {sorted(outputs)}")
    tensors, blobs = [], []
    for name, (datatype, array) in outputs.items():
        if name not in wanted:
            continue
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
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
    header = json.dumps(response).encode()
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
