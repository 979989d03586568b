"""Pieces of the artifact sidecar (docs/artifacts.md) that every model kind's export writes the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

# opset 18: the dynamo exporter at 17 wrote an opset-18 Split attribute; IR 10: ORT 1.31 refuses onnx 1.23's IR 14.
OPSET, IR_VERSION = 18, 10
STATISTICS = ("mean", "std", "rms", "abs_mean", "abs_max")  # axis 2 of every "activations" output


def file_entry(path: Path) -> dict[str, Any]:
    """The sidecar's `files` entry: name relative to the sidecar, sha256 and size of the exact bytes."""
    blob = path.read_bytes()
    return {"path": path.name, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}


def reference_activations(acts: np.ndarray, names: list[str]) -> dict[str, Any]:
    """acts [N, L, 5] over the validation set -> {layer: {statistic: {mean, std}}}."""
    return {
        name: {
            stat: {"mean": float(acts[:, i, j].mean()), "std": float(acts[:, i, j].std())}
            for j, stat in enumerate(STATISTICS)
        }
        for i, name in enumerate(names)
    }
