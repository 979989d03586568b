"""The artifact sidecar (docs/artifacts.md): one typed schema that every export writes and the service validates.

Torch-free on purpose: the service imports it. A kind's own block (``"chatbot": {...}``) is an extra field,
validated by that kind's service module; everything every kind shares is typed here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# opset 18: the dynamo exporter at 17 wrote an opset-18 Split attribute; IR 10: ORT 1.31 refuses onnx 1.23's IR 14.
OPSET, IR_VERSION = 18, 10
FORMAT_VERSION = 2
# axis 2 of every "activations" output; the sidecar names them, so a reader never assumes this order
STATISTICS = ("mean", "std", "rms", "abs_mean", "abs_max")
# The two graphs of every artifact: the plain one, and the instrumented one with the "activations" output.
FAST, DIAGNOSTIC = "fast", "diagnostic"
GRAPH_FILES = {FAST: "fast.onnx", DIAGNOSTIC: "diagnostic.onnx"}
# ONNX external data that both graphs of an artifact may read (stored once), next to them; listed and checksummed
# in the sidecar's `files.weights` like the graphs.
WEIGHTS, WEIGHTS_FILE = "weights", "weights.bin"
REFERENCE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # the reference deciles' levels


class FileEntry(BaseModel):
    path: str = Field(description="relative to the sidecar's folder")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Files(BaseModel):
    fast: FileEntry
    diagnostic: FileEntry
    weights: FileEntry | None = Field(default=None, description="external data the graphs share, if any")

    def entries(self) -> dict[str, FileEntry]:
        """Every file the artifact ships, by role (fast, diagnostic, and weights when the graphs share one)."""
        return {
            role: entry
            for role, entry in ((FAST, self.fast), (DIAGNOSTIC, self.diagnostic), (WEIGHTS, self.weights))
            if entry is not None
        }


class GraphTensor(BaseModel):
    name: str
    dtype: str
    shape: list[int | str]


class OnnxInfo(BaseModel):
    opset: int
    ir_version: int
    inputs: list[GraphTensor]
    outputs: list[GraphTensor]
    diagnostic_outputs: list[GraphTensor]


class LayerInfo(BaseModel):
    index: int
    name: str
    kind: str = ""
    description: str = ""


class Reference(BaseModel):
    """One statistic of one layer over the validation set: its mean, std and deciles (for PSI-style drift)."""

    mean: float
    std: float
    quantiles: list[float] = Field(default_factory=list, description="at REFERENCE_LEVELS")


class Sidecar(BaseModel):
    """Everything shared by every kind; the kind's own block rides along as an extra field named after it."""

    model_config = ConfigDict(extra="allow")

    format_version: Literal[2]
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    version: str = "1"
    created: str
    files: Files
    onnx: OnnxInfo
    config: dict[str, Any]
    layers: list[LayerInfo] = Field(min_length=1)
    statistics: list[str] = Field(min_length=1)
    reference_activations: dict[str, dict[str, Reference]] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)

    def block(self) -> dict[str, Any]:
        """The kind's own block (``sidecar[kind]``), untyped; the kind's module validates it."""
        extra = self.model_extra or {}
        value = extra.get(self.kind, {})
        return value if isinstance(value, dict) else {}


def file_entry(path: Path) -> FileEntry:
    """The `files` entry of one graph: name relative to the sidecar, sha256 and size of the exact bytes."""
    blob = path.read_bytes()
    return FileEntry(path=path.name, sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))


def graph_files(folder: Path) -> Files:
    weights = folder / WEIGHTS_FILE
    return Files(
        fast=file_entry(folder / GRAPH_FILES[FAST]),
        diagnostic=file_entry(folder / GRAPH_FILES[DIAGNOSTIC]),
        weights=file_entry(weights) if weights.exists() else None,
    )


def reference_activations(acts: np.ndarray, names: list[str]) -> dict[str, dict[str, Reference]]:
    """acts [N, L, n_statistics] over the validation set -> {layer: {statistic: {mean, std, quantiles}}}."""
    return {
        name: {
            stat: Reference(
                mean=float(acts[:, i, j].mean()),
                std=float(acts[:, i, j].std()),
                quantiles=[float(q) for q in np.quantile(acts[:, i, j], REFERENCE_LEVELS)],
            )
            for j, stat in enumerate(STATISTICS)
        }
        for i, name in enumerate(names)
    }


def tensor(name: str, dtype: str, *shape: int | str) -> GraphTensor:
    return GraphTensor(name=name, dtype=dtype, shape=list(shape))


def assemble(
    *,
    name: str,
    kind: str,
    folder: Path,
    inputs: list[GraphTensor],
    outputs: list[GraphTensor],
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    reference: np.ndarray,
    training: dict[str, Any],
    block: dict[str, Any],
) -> Sidecar:
    """The sidecar of the two graphs in `folder`; `reference` is the diagnostic graph's activations [N, L, S] over
    the validation set, `block` the kind's own block."""
    diagnostic = tensor("activations", "float32", "batch", len(layers), len(STATISTICS))
    return Sidecar.model_validate(
        {
            "format_version": FORMAT_VERSION,
            "name": name,
            "kind": kind,
            "created": now(),
            "files": graph_files(folder),
            "onnx": OnnxInfo(
                opset=OPSET,
                ir_version=IR_VERSION,
                inputs=inputs,
                outputs=outputs,
                diagnostic_outputs=[diagnostic],
            ),
            "config": config,
            "layers": layers,
            "statistics": list(STATISTICS),
            "reference_activations": reference_activations(
                reference, [str(layer["name"]) for layer in layers]
            ),
            "training": training,
            kind: block,
        }
    )


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rounded(value: Any, digits: int = 6) -> Any:
    """Floats rounded, recursively: sidecars stay readable and diff-able."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def write(sidecar: Sidecar, folder: Path) -> Path:
    """Validate (a round trip through the schema) and write ``folder/sidecar.json``."""
    payload = rounded(sidecar.model_dump(mode="json"))
    Sidecar.model_validate(payload)
    path = folder / "sidecar.json"
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read(path: Path) -> Sidecar:
    return Sidecar.model_validate_json(path.read_bytes())
