"""Tests marked `gpu` run only where ONNX Runtime can use a CUDA GPU; everywhere else they are skipped, saying why."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from service.runtime.providers import CUDA, cuda_device_count


def cuda_usable() -> str:
    """'' when a GPU and onnxruntime-gpu are both here, else what is missing."""
    if CUDA not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} has no CUDA provider"
    if cuda_device_count() == 0:
        return "no CUDA GPU (the driver reports none)"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = cuda_usable()
    if missing:
        for item in items:
            if item.get_closest_marker("gpu") is not None:
                item.add_marker(pytest.mark.skip(reason=f"gpu test: {missing}"))
