"""Half precision: the fast graph converted to float16 at load, kept only when it matches the float32 graph.

The conversion is ONNX Runtime's own (`onnxruntime.transformers.float16`): weights and activations in float16,
graph inputs and outputs left in float32 (`keep_io_types`), so feeds and answers keep their types. Ops ORT keeps in
float32 (its block list: Range, CumSum, Min, Max, …) get casts around them. Converting at load, from whatever
`fast.onnx` an artifact ships, means no second file to export, commit and checksum.

Parity: `relative_error` = max |fp16 - fp32| / max |fp32| over every output, against the float32 diagnostic graph
on the kind's warm-up batches (the diagnostic graph computes the same outputs as the fast one, plus statistics).
Above `FP16_TOLERANCE` the fp16 graph is refused and the fp32 one served. Measured on the CPU provider with the
bundled artifacts: chatbot logits about 5e-4, forecaster quantiles about 1e-3.

Int8, for the CPU provider: ONNX Runtime's dynamic quantization (`onnxruntime.quantization.quantize_dynamic`): the
weights of every MatMul in int8 with one scale per tensor, the activations quantized on the fly per run, the rest of
the graph in float32. The shipped float16 weights and their `Cast` nodes are first folded into float32 weights
(what ORT does at load anyway), so the quantizer finds them. Its gate is the same relative error with a wider
`INT8_TOLERANCE`. Measured (docs/benchmarks.md, `bench.graph_cost`): the chatbot's graph 1.30-1.38x faster per
message, the same argmax on 99.7% of the validation split (accuracy 0.892 -> 0.891) and 99.9% of the challenge
split; the forecaster's unrolled LSTM gets slower (0.9x), so int8 is set per model (`LNSERVE_MODEL_SETTINGS`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.runtime.providers import CPU

FP16_TOLERANCE = 1e-2
"""Largest accepted max |fp16 - fp32| / max |fp32| of any output (float16 keeps about 3 significant digits)."""
INT8_TOLERANCE = 1e-1
"""The same for int8 weights and activations (one scale per tensor: about 2 significant digits); the bundled
chatbot's logits differ by 4e-2 of their largest value on its warm-up batches."""
TOLERANCE = {"fp16": FP16_TOLERANCE, "int8": INT8_TOLERANCE}


class PrecisionUnavailable(Exception):
    """The graph of that precision cannot be built here (the `onnx` package is missing, or the provider)."""


def _onnx(what: str) -> Any:
    try:
        import onnx
    except ImportError as exc:  # onnx is in the [int8] and [gpu] extras, not in the serving dependencies
        raise PrecisionUnavailable(
            f"{what} needs the onnx package (pip install 'lnserve[int8]' or 'lnserve[gpu]'): {exc}"
        ) from None
    return onnx


def to_fp16(path: Path) -> bytes:
    """The graph at `path` with float16 weights and arithmetic and float32 inputs and outputs, serialised."""
    onnx = _onnx("fp16")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    return bytes(converted.SerializeToString())


def float32_weights(model: Any) -> Any:
    """The graph (an `onnx.ModelProto`, changed in place) with its float16 weights and their `Cast` nodes replaced
    by float32 weights, as ORT folds them at load, so that rewriters looking for weight initialisers find them."""
    onnx = _onnx("folding float16 weights")
    from onnx import numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    folded = [
        node
        for node in graph.node
        if node.op_type == "Cast"
        and node.input[0] in weights
        and onnx.helper.get_attribute_value(node.attribute[0]) == onnx.TensorProto.FLOAT
    ]
    for node in folded:
        value = numpy_helper.to_array(weights[node.input[0]]).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def to_int8(path: Path) -> bytes:
    """The graph at `path` with int8 MatMuls (dynamic quantization: int8 weights, activations quantized per run),
    float32 elsewhere and at its inputs and outputs, serialised."""
    onnx = _onnx("int8")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs advice to pre-process the graph (shape inference), meant for static quantization.
    root, advice = logging.getLogger(), _DropAdvice()
    root.addFilter(advice)
    try:
        with tempfile.TemporaryDirectory(prefix="lnserve-int8-") as tmp:
            folded, quantized = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
            onnx.save(float32_weights(onnx.load(str(path))), str(folded))
            quantize_dynamic(folded, quantized, weight_type=QuantType.QInt8)
            return quantized.read_bytes()
    finally:
        root.removeFilter(advice)


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing before quantization")


def convert(path: Path, precision: str, providers: Sequence[str]) -> bytes:
    """The fast graph at `path` in `precision` (fp16 or int8), serialised."""
    if precision == "fp16":
        return to_fp16(path)
    if any(name != CPU for name in providers):
        raise PrecisionUnavailable("int8 runs on the CPU provider only (dynamic quantization's kernels)")
    return to_int8(path)


def relative_error(reference: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> float:
    """max |other - reference| / max |reference| over the outputs (the worst one); inf for a non-finite value."""
    worst = 0.0
    for ref, got in zip(reference, other, strict=True):
        ref64, got64 = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
        if ref64.shape != got64.shape or not np.isfinite(got64).all():
            return float("inf")
        scale = max(float(np.abs(ref64).max(initial=0.0)), float(np.finfo(np.float32).tiny))
        worst = max(worst, float(np.abs(got64 - ref64).max(initial=0.0)) / scale)
    return worst
