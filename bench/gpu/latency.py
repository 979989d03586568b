"""Stage `latency`: each model on the GPU at batch 1 / 8 / 32 / 128 and every length bucket, ORT CUDA (fp32 and fp16,
plain IO binding and CUDA graph, through the service's own `CudaSession`) against PyTorch eager (plain and CUDA
graph) on the same weights; parity of every output against ORT on the CPU.

Every time is host to host, as the service pays it: numpy feeds in, numpy outputs out (copies included). The
candidates of one shape take turns in short blocks (`bench.timing.interleaved`); medians.

    python -m bench.gpu.latency --json latency.json [--seconds 0.6]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.artifacts import KINDS, bench_items, prepared_runtime
from bench.gpu.common import (
    BATCHES,
    WEIGHTS,
    Results,
    artifacts,
    gpu_memory_used,
    point,
    require_cuda,
    shape_of,
    stage_args,
)
from bench.gpu.torch_weights import load
from bench.timing import interleaved, median_ms
from models.sidecar import DIAGNOSTIC, FAST
from service.runtime.base import Artifact, Runtime
from service.runtime.precision import FP16_TOLERANCE, relative_error, to_fp16
from service.runtime.providers import CPU, session_options
from service.runtime.sessions import CudaSession

Run = Callable[[], np.ndarray]
FP32_TOLERANCE = 1e-4  # fp32 on the GPU against fp32 on the CPU: summation order only


def shapes(runtime: Runtime[Any, Any]) -> list[tuple[int, dict[str, np.ndarray]]]:
    """(batch, feeds) of every batch size and length bucket (the kind's warm-up items: the shapes it serves)."""
    return [(b, runtime.feeds(items)) for b in BATCHES for items in runtime.warmup_batches(b)]


def ort_variants(fp32: CudaSession, fp16: CudaSession | None, feeds: dict[str, np.ndarray]) -> dict[str, Run]:
    """The service's CUDA paths for these feeds: plain IO binding, and the CUDA graph captured for their shape."""
    out = fp32.output_names[:1]
    variants: dict[str, Run] = {"ORT CUDA fp32": lambda: fp32.run_bound(feeds, out)[0]}
    if fp32.capture(feeds):
        variants["ORT CUDA fp32 + graph"] = lambda: fp32.run(feeds, out)[0]
    if fp16 is not None:
        variants["ORT CUDA fp16"] = lambda: fp16.run_bound(feeds, out)[0]
        if fp16.capture(feeds):
            variants["ORT CUDA fp16 + graph"] = lambda: fp16.run(feeds, out)[0]
    return variants


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out  # the forecaster returns (quantiles, None)


def torch_eager(model: Any, feeds: dict[str, np.ndarray]) -> Run:
    import torch

    arrays = list(feeds.values())  # the graph's input order, which the networks' forward takes positionally

    def run() -> np.ndarray:
        with torch.inference_mode():
            return _first(model(*(torch.from_numpy(a).cuda() for a in arrays))).cpu().numpy()  # type: ignore[no-any-return]

    return run


def torch_graphed(model: Any, feeds: dict[str, np.ndarray]) -> Run:
    """Eager PyTorch captured in a CUDA graph for this shape: inputs copied into static buffers, one replay."""
    import torch

    arrays = list(feeds.values())
    static = [torch.from_numpy(a).cuda() for a in arrays]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            model(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = _first(model(*static))

    def run() -> np.ndarray:
        for buffer, array in zip(static, arrays, strict=True):
            buffer.copy_(torch.from_numpy(array))
        graph.replay()
        return static_out.cpu().numpy()  # type: ignore[no-any-return]

    return run


def torch_variants(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, Run]:
    return {"torch eager": torch_eager(model, feeds), "torch eager + CUDA graph": torch_graphed(model, feeds)}


def tolerance(variant: str) -> float:
    return FP16_TOLERANCE if "fp16" in variant else FP32_TOLERANCE


def parity_rows(
    artifact: Artifact, runs: dict[str, Run], reference: np.ndarray, data: str, shape: str
) -> list[dict[str, Any]]:
    rows = []
    for variant, run in runs.items():
        got = run()
        error = relative_error([reference], [got])
        rows.append(
            {
                "model": artifact.name,
                "output": "first",
                "variant": variant,
                "data": data,
                "shape": shape,
                "rel_error": error,
                "max_abs": float(np.abs(got.astype(np.float64) - reference).max()),
                "ok": error <= tolerance(variant),
            }
        )
    return rows


def bench_model(artifact: Artifact, seconds: float, results: Results) -> None:
    runtime = prepared_runtime(artifact)
    cpu_fast = ort.InferenceSession(str(artifact.file(FAST)), session_options(0), providers=[CPU])
    cpu_diag = ort.InferenceSession(str(artifact.file(DIAGNOSTIC)), session_options(0), providers=[CPU])
    before = gpu_memory_used()
    fp32 = CudaSession(artifact.file(FAST), 1, 0, cuda_graphs=True, fp16=False)
    fp16 = CudaSession(to_fp16(artifact.file(FAST)), 1, 0, cuda_graphs=True, fp16=True)
    diag = CudaSession(artifact.file(DIAGNOSTIC), 1, 0, cuda_graphs=False, fp16=False)
    sessions = gpu_memory_used()
    model = None
    try:
        import torch

        model = load(artifact, WEIGHTS).cuda().eval()
        torch.cuda.reset_peak_memory_stats()
    except Exception as exc:  # no recovered weights (make gpu-prepare), or no torch: ORT rows only
        results.append("notes", {"model": artifact.name, "torch": f"not timed: {exc}"})
    for batch in BATCHES:  # parity on validation inputs, every output of both graphs
        feeds = runtime.feeds(bench_items(runtime, batch))
        runs = ort_variants(fp32, fp16, feeds) | (torch_variants(model, feeds) if model is not None else {})
        reference = cpu_fast.run(None, feeds)[0]
        for row in parity_rows(artifact, runs, reference, "validation", shape_of(feeds)):
            results.append("parity", row)
        expected = cpu_diag.run(None, feeds)
        got = diag.run_bound(feeds, diag.output_names)
        for name, ref, value in zip(diag.output_names, expected, got, strict=True):
            error = relative_error([ref], [value])
            results.append(
                "parity",
                {
                    "model": artifact.name,
                    "output": f"diagnostic.{name}",
                    "variant": "ORT CUDA fp32",
                    "data": "validation",
                    "shape": shape_of(feeds),
                    "rel_error": error,
                    "max_abs": float(np.abs(value - ref).max()),
                    "ok": error <= FP32_TOLERANCE,
                },
            )
    for batch, feeds in shapes(runtime):
        runs = ort_variants(fp32, fp16, feeds) | (torch_variants(model, feeds) if model is not None else {})
        reference = cpu_fast.run(None, feeds)[0]
        parity = {r["variant"]: r for r in parity_rows(artifact, runs, reference, "bucket", shape_of(feeds))}
        times = interleaved(runs, seconds, block_s=0.02)
        for variant, samples in times.items():
            results.append(
                "rows",
                {
                    **point(artifact, batch, feeds),
                    "variant": variant,
                    "p50_ms": median_ms(samples),
                    "p90_ms": float(np.percentile(samples, 90) * 1e3),
                    "calls": len(samples),
                    "rel_error": parity[variant]["rel_error"],
                    "ok": parity[variant]["ok"],
                },
            )
    memory: dict[str, Any] = {
        "before": before,
        "ort_sessions": sessions,
        "end": gpu_memory_used(),
        "captured_graphs": len(fp32.graphs) + len(fp16.graphs),
    }
    if model is not None:
        import torch

        memory["torch_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    results.data.setdefault("memory", {})[artifact.name] = memory
    results.save()


def main() -> None:
    args = stage_args(__doc__)
    require_cuda()
    results = Results(args.json)
    results.data["kinds"] = {k: KINDS[k].name for k in args.kinds}
    for artifact in artifacts(args.kinds):
        bench_model(artifact, args.seconds, results)


if __name__ == "__main__":
    main()
