"""Half precision: the fast graph converted to float16 at load, kept only when it matches the float32 graph.

The conversion is ONNX Runtime's own (`onnxruntime.transformers.float16`): weights and activations in float16,
graph inputs and outputs left in float32 (`keep_io_types`), so feeds and answers keep their types. Ops ORT keeps in
float32 (its block list: Range, CumSum, Min, Max, …) get casts around them. Converting at load, from whatever
`fast.onnx` an artifact ships, means no second file to export, commit and checksum.

Parity: `relative_error` = max |fp16 - fp32| / max |fp32| over every output, against the float32 diagnostic graph
on the kind's warm-up batches (the diagnostic graph computes the same outputs as the fast one, plus statistics).
Above `FP16_TOLERANCE` the fp16 graph is refused and the fp32 one served. Measured on the CPU provider with the
bundled artifacts: chatbot logits about 5e-4, forecaster quantiles about 1e-3.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

FP16_TOLERANCE = 1e-2
"""Largest accepted max |fp16 - fp32| / max |fp32| of any output (float16 keeps about 3 significant digits)."""


class Fp16Unavailable(Exception):
    """The float16 graph cannot be built here (the `onnx` package is missing)."""


def to_fp16(path: Path) -> bytes:
    """The graph at `path` with float16 weights and arithmetic and float32 inputs and outputs, serialised."""
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # onnx is in the [gpu] extra, not in the CPU image
        raise Fp16Unavailable(f"fp16 needs the onnx package (pip install 'lnserve[gpu]'): {exc}") from None
    converted = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    return bytes(converted.SerializeToString())


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
