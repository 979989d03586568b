"""What the GPU check's stages share: their results file (rewritten after every step, so a stage cut short by its
timeout still leaves what it measured), GPU memory through NVML, and the artifacts they measure."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.artifacts import KINDS, default_artifact
from service.runtime.base import Artifact

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / ".gpu" / "weights"
BATCHES = (1, 8, 32, 128)
SERVED_VARIANT = "ORT CUDA fp32 + graph"
"""What the service runs by default on a GPU (LNSERVE_PRECISION=fp32, LNSERVE_CUDA_GRAPHS=true): the targets' row."""


class Results:
    """One stage's results: a dict written to its JSON file after every `save`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_plain) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def append(self, key: str, row: dict[str, Any]) -> None:
        self.data.setdefault(key, []).append(row)
        self.save()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value)}")


def stage_args(description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", type=Path, required=True, help="this stage's results file")
    parser.add_argument("--seconds", type=float, default=0.6, help="timing budget per shape or point")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    return parser.parse_args()


def require_cuda() -> None:
    """Stop the stage with the reason when ONNX Runtime cannot use a GPU here."""
    import onnxruntime as ort

    from service.runtime.providers import CUDA, cuda_device_count, preload_cuda_dlls

    if CUDA not in ort.get_available_providers():
        raise SystemExit(
            f"onnxruntime {ort.__version__} here has no CUDA provider (was onnxruntime-gpu installed?)"
        )
    if cuda_device_count() == 0:
        raise SystemExit("the CUDA driver reports no GPU")
    preload_cuda_dlls()


def artifacts(kinds: list[str]) -> list[Artifact]:
    return [default_artifact(kind) for kind in kinds]


def gpu_memory_used() -> dict[str, Any]:
    """NVML's view of GPU 0 in MiB: all memory in use, and this process's share where NVML can tell."""
    import pynvml

    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        out: dict[str, Any] = {"device_used_mib": pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20}
    except pynvml.NVMLError as exc:
        return {"error": str(exc)}
    try:
        mine = [p for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid == os.getpid()]
        if mine and mine[0].usedGpuMemory is not None:
            out["process_used_mib"] = mine[0].usedGpuMemory / 2**20
    except pynvml.NVMLError:  # process accounting is not available in every VM
        pass
    return out


def shape_of(feeds: dict[str, np.ndarray]) -> str:
    return "x".join(str(d) for d in next(iter(feeds.values())).shape)


def point(artifact: Artifact, batch: int, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """The fields naming one timed shape in every stage's rows."""
    return {"model": artifact.name, "kind": artifact.kind, "batch": batch, "shape": shape_of(feeds)}


def timed(step: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = step()
    return value, time.perf_counter() - started
