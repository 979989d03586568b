"""ONNX Runtime provider and session-option choice: CUDA only when this ORT build can use it, else CPU; the CUDA
provider's options."""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import os
from pathlib import Path

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
        preload_cuda_dlls()
    return chosen or [CPU]


def preload_cuda_dlls() -> None:
    """onnxruntime-gpu finds the CUDA/cuDNN libraries of the pip wheels only after this call."""
    global _dlls_preloaded
    if not _dlls_preloaded and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
        _dlls_preloaded = True


CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in cores (a container's CPU limit), or None when there is none:
    cgroup v2 `cpu.max` ("200000 100000" = 2 cores, "max ..." = none), else v1 `cpu.cfs_quota_us` / period."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


@functools.cache
def usable_cores() -> int:
    """The cores this process may use: its CPU affinity (a cpuset), capped by its cgroup's CPU quota rounded up. In a
    pod with a 2-CPU limit on a 64-core node `os.cpu_count()` says 64; ORT threads sized by it would fight over the
    quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def cpu_concurrency(configured: int = 0) -> int:
    """Batches one model runs at once on the CPU: as configured, else 2 when the machine has two cores or more.

    Measured on 2 cores (docs/benchmarks.md): two batches at once with one ORT thread each beat one batch with two
    threads at every load (c = 1 1.11x, 16 1.25x, 64 1.19x): the second core computes a batch instead of spinning
    for the first one's parallel sections. More than two was not measured; the rule stays at two."""
    return configured or (2 if usable_cores() >= 2 else 1)


def cpu_threads(configured: int, concurrency: int) -> int:
    """ORT intra-op threads per session: as configured, else the cores shared by the batches run at once (at most
    8 each; more threads than cores spin)."""
    return configured or max(1, min(usable_cores() // concurrency, 8))


def session_options(
    intra_op_threads: int, on_cuda: bool = False, spinning: bool = True
) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # 0 on the CPU: the cores for one caller at a time (the service passes `cpu_threads`, the cores shared by the
    # batches a model runs at once). On CUDA the kernels run on the GPU and the pool only serves the few shape nodes
    # left on the CPU: one thread, or every captured graph's session would keep a pool of spinning threads.
    options.intra_op_num_threads = intra_op_threads or (1 if on_cuda else cpu_threads(0, 1))
    options.inter_op_num_threads = 1
    if not spinning:  # idle intra-op threads sleep instead of spinning on a core the event loop could use
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # ORT's memory-reuse planner is super-linear in the node count: the unrolled LSTM (~4.5k nodes) took 7-18 s per
    # session with it and 0.4 s without; the chatbot's latency is the same either way (0.10 ms, batch 1).
    options.enable_mem_reuse = False
    options.log_severity_level = (
        3  # ORT's own warnings (e.g. unused initialisers) are not the operator's concern
    )
    return options


def cuda_options(device_id: int, *, cuda_graph: bool, fp16: bool) -> dict[str, str]:
    """The CUDA provider's options for one session (names as ORT's `cuda_execution_provider_info.cc` parses them).

    - `arena_extend_strategy=kSameAsRequested`: the arena grows by what a run asks for, not to the next power of
      two; a model runs a handful of fixed shapes, and a service holds one session per captured shape.
    - `do_copy_in_default_stream=1`: input and output copies run on the compute stream, ordered with the kernels
      (ORT's default, stated because separate copy streams can race, ORT issue 4829).
    - `use_tf32=0`: the fp32 graph computes in fp32, so it matches the CPU provider and PyTorch (which keeps TF32 off
      for matrix products by default); speed comes from the fp16 graph instead.
    - `cudnn_conv_algo_search=EXHAUSTIVE`: cuDNN's convolution algorithms are benchmarked once per input shape and
      the fastest kept; served shapes are bucketed, so the search runs a few times per model. It concerns Conv
      nodes only (the bundled graphs have none, so it costs them nothing).
    - `enable_cuda_graph=1` for a session of one fixed shape: ORT captures its kernels once and replays them.
    - `enable_skip_layer_norm_strict_mode=1` in fp16: ORT's fused add + LayerNorm then accumulates in fp32.
    """
    options = {
        "device_id": str(device_id),
        "arena_extend_strategy": "kSameAsRequested",
        "do_copy_in_default_stream": "1",
        "use_tf32": "0",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
    }
    if cuda_graph:
        options["enable_cuda_graph"] = "1"
    if fp16:
        options["enable_skip_layer_norm_strict_mode"] = "1"
    return options
