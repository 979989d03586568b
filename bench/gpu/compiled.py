"""Stage `compile`: `torch.compile` on the same weights, one static compile per shape, against ORT CUDA fp32 (the
service's path, with its CUDA graph) and torch eager, timed side by side like stage `latency`.

Compiling takes seconds per shape, so the shapes go in order of what the targets need (the chatbot at batch 32 and
1 first) and the stage stops compiling when `--budget` runs out; every finished shape is already saved.
`mode=default` is the plain `torch.compile(model)`; `reduce-overhead` adds PyTorch's own CUDA graphs.

    python -m bench.gpu.compiled --json compile.json [--seconds 0.6] [--budget 150] [--modes default reduce-overhead]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.artifacts import KINDS, prepared_runtime
from bench.gpu.common import SERVED_VARIANT, WEIGHTS, Results, artifacts, point, require_cuda, shape_of
from bench.gpu.latency import ort_variants, shapes, torch_eager
from bench.gpu.torch_weights import load
from bench.timing import interleaved, median_ms
from models.sidecar import FAST
from service.runtime.base import Artifact
from service.runtime.precision import relative_error
from service.runtime.sessions import CudaSession

PRIORITY_BATCHES = (32, 1, 128, 8)
TARGET_BATCHES = (32, 1)  # these in every mode before the others in any


def compiled_runner(model: Any, feeds: dict[str, np.ndarray], mode: str) -> Any:
    import torch

    compiled = torch.compile(model, mode=mode, dynamic=False)
    arrays = list(feeds.values())

    def run() -> np.ndarray:
        if mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        with torch.inference_mode():
            out = compiled(*(torch.from_numpy(a).cuda() for a in arrays))
        return (out[0] if isinstance(out, tuple) else out).cpu().numpy()  # type: ignore[no-any-return]

    return run


def work(
    selected: list[Artifact], modes: list[str]
) -> list[tuple[Artifact, int, dict[str, np.ndarray], str]]:
    """Every (artifact, batch, feeds, mode) in the order they are worth compiling: the chatbot first; batch 32 and 1
    (the targets') in the default mode, then in the others; then the other batch sizes likewise."""
    items = [
        (artifact, batch, feeds, mode)
        for artifact in selected
        for batch, feeds in shapes(prepared_runtime(artifact))
        for mode in modes
    ]
    rank = {b: i for i, b in enumerate(PRIORITY_BATCHES)}

    def order(x: tuple[Artifact, int, dict[str, np.ndarray], str]) -> tuple[bool, bool, int, int]:
        artifact, batch, _, mode = x
        return (
            artifact.kind != "chatbot",
            batch not in TARGET_BATCHES,
            modes.index(mode),
            rank.get(batch, len(rank)),
        )

    return sorted(items, key=order)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=0.6)
    parser.add_argument("--budget", type=float, default=150.0, help="seconds for compiling and timing in all")
    parser.add_argument("--modes", nargs="+", default=["default", "reduce-overhead"])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    require_cuda()
    import torch

    deadline = time.monotonic() + args.budget
    results = Results(args.json)
    results.data["torch"] = torch.__version__
    models: dict[str, Any] = {}
    sessions: dict[str, CudaSession] = {}
    for artifact, batch, feeds, mode in work(artifacts(args.kinds), args.modes):
        if time.monotonic() > deadline:
            results.append("skipped", {"model": artifact.name, "shape": shape_of(feeds), "mode": mode})
            continue
        if artifact.name not in models:
            models[artifact.name] = load(artifact, WEIGHTS).cuda().eval()
            sessions[artifact.name] = CudaSession(artifact.file(FAST), 1, 0, cuda_graphs=True, fp16=False)
        model = models[artifact.name]
        ort_runs = ort_variants(sessions[artifact.name], None, feeds)
        ort_run = ort_runs.get(SERVED_VARIANT, ort_runs["ORT CUDA fp32"])
        torch._dynamo.reset()  # a fresh compile per shape: no recompile limit, no shape guards shared
        run = compiled_runner(model, feeds, mode)
        started = time.perf_counter()
        got = run()  # compiles
        compile_s = time.perf_counter() - started
        candidates = {"compiled": run, "eager": torch_eager(model, feeds), "ort": ort_run}
        times = interleaved(candidates, args.seconds, block_s=0.02)
        results.append(
            "rows",
            {
                **point(artifact, batch, feeds),
                "mode": mode,
                "compile_s": compile_s,
                "compiled_p50_ms": median_ms(times["compiled"]),
                "eager_p50_ms": median_ms(times["eager"]),
                "ort_variant": SERVED_VARIANT if SERVED_VARIANT in ort_runs else "ORT CUDA fp32",
                "ort_p50_ms": median_ms(times["ort"]),
                "rel_error": relative_error([ort_run()], [got]),
            },
        )


if __name__ == "__main__":
    main()
