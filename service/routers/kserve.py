"""KServe v2 / Open Inference Protocol REST: server and model metadata, readiness and `infer` for both kinds.

Chatbot: BYTES input `text` [N] (or [N, 1]) -> `intent` BYTES [N], `confidence` FP32 [N], `probabilities` and
`logits` FP32 [N, n_labels] (+ `activations` FP32 [N, n_layers, 5] with the `return_activations` parameter).
Forecaster: FP32 `series` [N, T], optional INT32/INT64 `horizon` and `season_length` inputs or parameters ->
`forecast` FP32 [N, horizon] and `quantiles` FP32 [N, horizon, n_quantiles].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from service import __version__
from service.deps import State, note_model
from service.errors import InvalidInput, ModelNotReady
from service.repository import ModelEntry
from service.runtime.chatbot import ChatbotRuntime
from service.runtime.forecaster import ForecasterRuntime
from service.schemas import openapi_errors
from service.state import ServiceState
from service.v2codec import InferenceRequest, decode_request, encode_response

router = APIRouter(tags=["kserve-v2"])
Outputs = dict[str, tuple[str, np.ndarray]]
ERRORS = openapi_errors(400, 401, 404, 413, 422, 503, 504)


def tensor_specs(entry: ModelEntry) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The protocol-level inputs and outputs of a model (what clients send, not the ONNX graph's tensors)."""
    sidecar = entry.artifact.sidecar
    n_layers, n_stats = len(entry.artifact.layers), len(entry.artifact.statistics)
    activations = {"name": "activations", "datatype": "FP32", "shape": [-1, n_layers, n_stats]}
    if entry.artifact.kind == "chatbot":
        n_labels = len(sidecar["chatbot"]["labels"])
        inputs: list[dict[str, Any]] = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        outputs = [
            {"name": "intent", "datatype": "BYTES", "shape": [-1]},
            {"name": "confidence", "datatype": "FP32", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, n_labels]},
            {"name": "logits", "datatype": "FP32", "shape": [-1, n_labels]},
        ]
    else:
        n_quantiles = len(sidecar["forecaster"]["quantiles"])
        inputs = [
            {"name": "series", "datatype": "FP32", "shape": [-1, -1]},
            {"name": "horizon", "datatype": "INT64", "shape": [1], "parameters": {"optional": True}},
            {"name": "season_length", "datatype": "INT64", "shape": [1], "parameters": {"optional": True}},
        ]
        outputs = [
            {"name": "forecast", "datatype": "FP32", "shape": [-1, -1]},
            {"name": "quantiles", "datatype": "FP32", "shape": [-1, -1, n_quantiles]},
        ]
    return inputs, [*outputs, activations]


@router.get("/v2", name="server_metadata")
async def server_metadata() -> dict[str, Any]:
    return {
        "name": "lnserve",
        "version": __version__,
        "extensions": ["binary_tensor_data", "model_repository"],
    }


@router.get("/v2/models/{name}", name="model_metadata", responses=ERRORS)
@router.get("/v2/models/{name}/versions/{version}", name="model_version_metadata", responses=ERRORS)
async def model_metadata(name: str, state: State, version: str | None = None) -> dict[str, Any]:
    entry = state.repository.resolve(name, version)
    inputs, outputs = tensor_specs(entry)
    metadata: dict[str, Any] = {
        "name": name,
        "versions": [entry.artifact.version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": outputs,
        "artifact": entry.name,
        "kind": entry.artifact.kind,
        "ready": entry.ready,
    }
    if entry.artifact.kind == "chatbot":
        metadata["labels"] = entry.artifact.sidecar["chatbot"]["labels"]
    else:
        metadata["quantiles"] = entry.artifact.sidecar["forecaster"]["quantiles"]
    return metadata


@router.get("/v2/models/{name}/ready", name="model_ready", responses=ERRORS)
@router.get("/v2/models/{name}/versions/{version}/ready", name="model_version_ready", responses=ERRORS)
async def model_ready(name: str, state: State, version: str | None = None) -> dict[str, Any]:
    """200 when the model serves; 503 (with the reason) while it loads or after it was refused."""
    entry = state.repository.get(name, version)
    return {"name": name, "ready": entry.ready}


@router.post("/v2/models/{name}/infer", name="kserve_infer", responses=ERRORS)
@router.post("/v2/models/{name}/versions/{version}/infer", name="kserve_infer", responses=ERRORS)
async def infer(name: str, request: Request, state: State, version: str | None = None) -> Response:
    note_model(request, name)
    entry = state.repository.get(name, version)
    body, tensors = decode_request(
        await request.body(), request.headers.get("inference-header-content-length")
    )
    if isinstance(entry.runtime, ChatbotRuntime):
        outputs = await _infer_chat(state, name, body, tensors)
    elif isinstance(entry.runtime, ForecasterRuntime):
        outputs = await _infer_forecast(state, name, entry.runtime, body, tensors)
    else:  # pragma: no cover - every ready entry has a runtime of a known kind
        raise ModelNotReady(f"model {name} has no runtime")
    content, headers = encode_response(body, name, entry.artifact.version, outputs)
    media_type = "application/json" if not headers else "application/octet-stream"
    return Response(content, media_type=media_type, headers=headers)


def _want_activations(body: InferenceRequest) -> bool:
    asked = body.parameters.get("return_activations", False)
    named = any(output.name == "activations" for output in body.outputs or [])
    return bool(asked) or named


async def _infer_chat(
    state: ServiceState, name: str, body: InferenceRequest, tensors: dict[str, np.ndarray]
) -> Outputs:
    text = _required(tensors, "text", "BYTES [N] or [N, 1]")
    if text.ndim == 0 or (text.ndim == 2 and text.shape[1] != 1) or text.ndim > 2:
        raise InvalidInput(f"inputs.text: shape must be [N] or [N, 1], got {list(text.shape)}")
    texts = [str(value).strip() for value in text.reshape(-1)]
    for row, value in enumerate(texts):
        if not 1 <= len(value) <= 2000:
            raise InvalidInput(
                f"inputs.text[{row}]: must have 1..2000 characters after trimming, has {len(value)}"
            )
    activations = _want_activations(body)
    _, results = await state.inference.chat(name, texts, activations)
    outputs: Outputs = {
        "intent": ("BYTES", np.array([r.intent for r in results], dtype=np.object_)),
        "confidence": ("FP32", np.array([r.confidence for r in results], dtype=np.float32)),
        "probabilities": ("FP32", np.stack([r.probabilities for r in results])),
        "logits": ("FP32", np.stack([r.logits for r in results])),
    }
    if activations:
        outputs["activations"] = ("FP32", _stack_activations([r.activations for r in results]))
    return outputs


async def _infer_forecast(
    state: ServiceState,
    name: str,
    runtime: ForecasterRuntime,
    body: InferenceRequest,
    tensors: dict[str, np.ndarray],
) -> Outputs:
    series = _required(tensors, "series", "FP32 [N, T]")
    if series.ndim == 1:
        series = series[None, :]
    if series.ndim != 2:
        raise InvalidInput(f"inputs.series: shape must be [N, T], got {list(series.shape)}")
    horizon = _scalar(tensors, body, "horizon")
    season_length = _scalar(tensors, body, "season_length")
    activations = _want_activations(body)
    rows = [row.astype(np.float32) for row in series]
    _, results = await state.inference.forecast(name, rows, horizon, season_length, None, activations)
    outputs: Outputs = {
        "forecast": ("FP32", np.stack([r.median for r in results]).astype(np.float32)),
        "quantiles": ("FP32", np.stack([r.quantiles for r in results]).astype(np.float32)),
    }
    if activations:
        outputs["activations"] = ("FP32", _stack_activations([r.activations for r in results]))
    return outputs


def _stack_activations(rows: list[np.ndarray | None]) -> np.ndarray:
    return np.stack([row for row in rows if row is not None]).astype(
        np.float32
    )  # (N, n_layers, n_statistics)


def _required(tensors: dict[str, np.ndarray], name: str, expected: str) -> np.ndarray:
    if name not in tensors:
        raise InvalidInput(f"inputs: missing input {name!r} ({expected}); got {sorted(tensors)}")
    return tensors[name]


def _scalar(tensors: dict[str, np.ndarray], body: InferenceRequest, name: str) -> int | None:
    """One integer from an input tensor (every element equal) or a request parameter."""
    if name in tensors:
        values = np.unique(tensors[name].reshape(-1))
        if values.size != 1 or not np.issubdtype(values.dtype, np.integer):
            raise InvalidInput(
                f"inputs.{name}: must hold one integer value, got {tensors[name].reshape(-1).tolist()}"
            )
        value = int(values[0])
    elif name in body.parameters:
        raw = body.parameters[name]
        if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
            raise InvalidInput(f"parameters.{name}: must be a positive integer, got {raw!r}")
        value = int(raw)
    else:
        return None
    if value < 1:
        raise InvalidInput(f"{name}: must be at least 1, got {value}")
    return value
