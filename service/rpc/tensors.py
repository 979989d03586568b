"""gRPC tensors both ways: typed `contents` or `raw_input_contents` in, `raw_output_contents` out.

The wire checks are those of the REST decoder (datatype, element count against shape, BYTES length prefixes); what
a model takes is checked by the data plane against its declared tensors, as for REST.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError
from tritonclient.grpc import service_pb2 as pb

from service.errors import InvalidInput, format_validation_errors
from service.tensors import DTYPES, check_elements, element_count
from service.v2codec import MAX_ELEMENTS, RequestInput, _binary_values, _serialize

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
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs")
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for index, tensor in enumerate(request.inputs):
        try:
            spec = RequestInput(name=tensor.name, shape=list(tensor.shape), datatype=tensor.datatype)
        except ValidationError as exc:
            raise InvalidInput(f"inputs.{tensor.name}: {format_validation_errors(exc.errors())}") from None
        if spec.name in tensors:
            raise InvalidInput(f"inputs.{spec.name}: given twice")
        if spec.datatype not in DTYPES:
            raise InvalidInput(f"inputs.{spec.name}: unsupported datatype {spec.datatype!r}")
        count = element_count(spec.shape)
        if count > MAX_ELEMENTS:
            raise InvalidInput(
                f"inputs.{spec.name}: shape {spec.shape} has more than {MAX_ELEMENTS} elements"
            )
        values = _binary_values(spec, raw[index]) if raw else _contents(spec, tensor.contents)
        if len(values) != count:
            raise InvalidInput(f"inputs.{spec.name}: {len(values)} values do not fit shape {spec.shape}")
        tensors[spec.name] = (
            spec.datatype,
            np.array(values, dtype=DTYPES[spec.datatype]).reshape(spec.shape),
        )
    return tensors


def _contents(spec: RequestInput, contents: pb.InferTensorContents) -> Any:
    field = CONTENTS.get(spec.datatype)
    if field is None:
        raise InvalidInput(f"inputs.{spec.name}: {spec.datatype} data must come in raw_input_contents")
    values = list(getattr(contents, field))
    if spec.datatype == "BYTES":
        try:
            values = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise InvalidInput(f"inputs.{spec.name}: a BYTES element is not UTF-8") from None
    check_elements(spec.name, spec.datatype, values)
    return values


def encode_response(
    request: pb.ModelInferRequest, version: str, outputs: dict[str, tuple[str, np.ndarray]]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
    for name, (datatype, array) in outputs.items():
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        response.raw_output_contents.append(_serialize(datatype, array))
    return response
