"""Stage `env`: what the machine is (GPU, driver, clocks, versions), whether ONNX Runtime's CUDA provider loads with
the service's options, and the service's own NVML gauges, before anything is timed.

    python -m bench.gpu.env --json env.json
"""

from __future__ import annotations

import platform
import subprocess
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.artifacts import bench_items, prepared_runtime
from bench.gpu.common import Results, artifacts, gpu_memory_used, require_cuda, stage_args
from models.sidecar import FAST
from service.metrics import Metrics
from service.runtime.precision import relative_error
from service.runtime.providers import CPU, available_providers, session_options
from service.runtime.sessions import CudaSession

QUERY = "name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,clocks.max.sm,power.draw,temperature.gpu"


def nvidia_smi() -> dict[str, str]:
    command = ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    return dict(zip(QUERY.split(","), (v.strip() for v in out.stdout.split(",")), strict=False))


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__}
    try:
        import torch

        found |= {"torch": torch.__version__, "torch_cuda": str(torch.version.cuda)}
    except ImportError:
        found["torch"] = "missing"
    return found


def nvml_gauges() -> dict[str, float]:
    """The service's GPU collector, scraped from a fresh `Metrics` registry."""
    metrics = Metrics()
    return {
        f"{sample.name}{{gpu={sample.labels.get('gpu')}}}": sample.value
        for family in metrics.registry.collect()
        if family.name.startswith("lnserve_gpu")
        for sample in family.samples
    }


def cuda_smoke() -> list[dict[str, Any]]:
    """One CUDA session per default artifact with the service's options: its outputs against the CPU provider."""
    rows = []
    require_cuda()
    for artifact in artifacts(["chatbot", "forecaster"]):
        runtime = prepared_runtime(artifact)
        feeds = runtime.feeds(bench_items(runtime, 8))
        cuda = CudaSession(artifact.file(FAST), 1, 0, cuda_graphs=True, fp16=False)
        cpu = ort.InferenceSession(str(artifact.file(FAST)), session_options(0), providers=[CPU])
        reference = cpu.run(None, feeds)
        rows.append(
            {
                "model": artifact.name,
                "providers": cuda.session.get_providers(),
                "io_binding_rel_error": relative_error(reference, cuda.run_bound(feeds, cuda.output_names)),
                "graph_captured": cuda.capture(feeds),
                "graph_rel_error": relative_error(reference, cuda.run(feeds, cuda.output_names)),
            }
        )
    return rows


def main() -> None:
    args = stage_args(__doc__)
    results = Results(args.json)
    results.data["versions"] = versions()
    results.data["available_providers"] = available_providers()
    results.save()
    results.data["nvidia_smi"] = nvidia_smi()
    results.data["nvml_gauges"] = nvml_gauges()
    results.data["memory_at_start"] = gpu_memory_used()
    results.save()
    results.data["cuda_smoke"] = cuda_smoke()
    results.save()


if __name__ == "__main__":
    main()
