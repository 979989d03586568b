"""ONNX Runtime provider and session-option choice: CUDA only when this ORT build can use it, else CPU."""

from __future__ import annotations

import ctypes
import logging
import os

import onnxruntime as ort

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_ALIASES = {"cpu": [CPU], "cuda": [CUDA, CPU]}
_dlls_preloaded = False
_warned: set[str] = set()


def cuda_device_count() -> int:
    """GPUs the CUDA driver sees (0 without a driver): onnxruntime-gpu lists CUDA as available even on a machine
    without one, and asking for it there logs errors, so the driver is asked first."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
    except OSError:
        return 0
    return int(count.value)


def available_providers() -> list[str]:
    available = [str(name) for name in ort.get_available_providers()]
    if CUDA in available and cuda_device_count() == 0:
        available = [name for name in available if name != CUDA]
    return available


def select_providers(setting: str) -> list[str]:
    """The providers to ask ORT for; never one that is not usable here (asking would log errors)."""
    available = available_providers()
    if setting.strip().lower() == "auto":
        wanted = [CUDA, CPU]
    else:
        wanted = []
        for part in setting.split(","):
            wanted += _ALIASES.get(part.strip().lower(), [part.strip()])
    chosen = [name for name in dict.fromkeys(wanted) if name in available]
    missing = [name for name in wanted if name not in available and setting.strip().lower() != "auto"]
    if missing and setting not in _warned:
        _warned.add(setting)
        log.warning(
            "providers %s are not available in this ONNX Runtime build; using %s", missing, chosen or [CPU]
        )
    if CUDA in chosen:
        _preload_cuda_dlls()
    return chosen or [CPU]


def _preload_cuda_dlls() -> None:
    """onnxruntime-gpu finds the CUDA/cuDNN libraries of the pip wheels only after this call."""
    global _dlls_preloaded
    if not _dlls_preloaded and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
        _dlls_preloaded = True


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # One batch per model runs at a time, so a session may use the machine's cores; more threads than cores spin.
    options.intra_op_num_threads = intra_op_threads or min(os.cpu_count() or 1, 8)
    options.inter_op_num_threads = 1
    # ORT's memory-reuse planner is super-linear in the node count: the unrolled LSTM (~4.5k nodes) took 7-18 s per
    # session with it and 0.4 s without; the chatbot's latency is the same either way (0.10 ms, batch 1).
    options.enable_mem_reuse = False
    options.log_severity_level = (
        3  # ORT's own warnings (e.g. unused initialisers) are not the operator's concern
    )
    return options
