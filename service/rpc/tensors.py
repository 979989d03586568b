"""gRPC tensors both ways: typed `contents` or `raw_input_contents` in, `raw_output_contents` out.

The wire checks are the REST decoder's own (datatype, element count against shape, JSON element types, BYTES
length prefixes); what a model takes is checked by the data plane against its declared tensors, as for REST.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from service.errors import InvalidInput
from service.tensors import DTYPES
from service.v2codec import _serialize, decode_request

# The typed field of `InferTensorContents` per datatype (FP16 and BF16 travel as raw bytes only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters(given: Any) -> dict[str, Any]:
    """A protobuf map of `InferParameter` as plain values."""
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in given.items()}


def decode_inputs(request: pb.ModelInferRequest) -> dict[str, tuple[str, np.ndarray]]:
    """The inputs as the REST decoder reads them: typed contents become JSON `data`, raw contents the binary
    extension's bytes after the JSON header, so one decoder checks both protocols alike."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs")
    inputs: list[dict[str, Any]] = []
    for index, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
        }
        if raw:
            entry["parameters"] = {"binary_data_size": len(raw[index])}
        else:
            entry["data"] = _contents(tensor.name, tensor.datatype, tensor.contents)
        inputs.append(entry)
    header = json.dumps({"inputs": inputs}).encode()
    _, tensors = decode_request(header + b"".join(raw), str(len(header)))
    return tensors


def _contents(name: str, datatype: str, contents: pb.InferTensorContents) -> list[Any]:
    field = CONTENTS.get(datatype)
    if field is None:
        if datatype in DTYPES:
            raise InvalidInput(f"inputs.{name}: {datatype} data must come in raw_input_contents")
        return []  # the decoder names the unsupported datatype
    values = list(getattr(contents, field))
    if datatype != "BYTES":
        return values
    try:
        return [value.decode("utf-8") for value in values]
    except UnicodeDecodeError:
        raise InvalidInput(f"inputs.{name}: a BYTES element is not UTF-8") from None


def encode_response(
    request: pb.ModelInferRequest, version: str, outputs: dict[str, tuple[str, np.ndarray]]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
    for name, (datatype, array) in outputs.items():
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        response.raw_output_contents.append(_serialize(datatype, array))
    return response
