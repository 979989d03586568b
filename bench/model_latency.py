"""Model latency: ONNX Runtime (CPU provider, the service's session options) vs PyTorch eager on the same weights.

For each kind's default artifact the torch model is rebuilt (trained weights from ``runs/<name>/checkpoint.pt``
when present, else the sidecar's config with a seeded init). If its outputs equal the shipped ``fast.onnx`` the
shipped graph is timed; otherwise the same torch weights are exported afresh with the project's export code.
Outputs are checked equal before timing; both sides then take turns in short blocks and the medians are compared.

    .venv/bin/python -m bench.model_latency [--seconds 8] [--threads 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from bench.artifacts import (
    KINDS,
    ROOT,
    Artifact,
    bench_bodies,
    default_artifact,
    feeds_for,
    kind_of,
    prepared_runtime,
)
from bench.tables import dump_json, header, markdown_table
from bench.timing import interleaved, median_ms
from models.sidecar import FAST
from service.runtime.providers import session_options

RUNS_DIR = ROOT / "runs"
BATCHES = (1, 32)
TARGET_SPEEDUP = 3.0  # ORT >= 3x eager at batch 1 (issue 4)
KINDS_BY_ARTIFACT: dict[str, str] = {}
SERVICE_TARGET_MS = {"forecaster": 5.0}  # one series at batch 1 through the service runtime (issue 11)


def torch_model(artifact: Artifact) -> tuple[torch.nn.Module, str]:
    """The artifact's network in eager PyTorch, and where its weights came from (the kind's training module)."""
    hooks = importlib.import_module(str(kind_of(artifact).training))
    model, origin = hooks.eager_model(artifact, RUNS_DIR)
    return model, origin


def export_fast_graph(model: torch.nn.Module, artifact: Artifact, folder: Path) -> Path:
    """The fast graph of ``model`` written by the kind's own export code."""
    path = folder / f"{artifact.name}.onnx"
    importlib.import_module(str(kind_of(artifact).training)).export_fast_graph(model, path)
    return path


def torch_runner(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
    """One eager forward pass from numpy feeds (in the graph's input order) to the numpy prediction."""
    arrays = list(feeds.values())

    def run() -> np.ndarray:
        with torch.inference_mode():
            out = model(*(torch.from_numpy(a) for a in arrays))
        return (out[0] if isinstance(out, tuple) else out).numpy()

    return run


def ort_runner(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
    output = session.get_outputs()[0].name
    return lambda: session.run([output], feeds)[0]


def cpu_session(path: Path, threads: int) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def matching_graph(
    model: torch.nn.Module, artifact: Artifact, feeds: dict[str, np.ndarray], tmp: Path
) -> tuple[Path, str, float]:
    """A graph whose outputs equal the torch model's: the shipped one if it matches, else a fresh export."""
    expected = torch_runner(model, feeds)()
    shipped = artifact.file(FAST)
    got = ort_runner(cpu_session(shipped, 1), feeds)()
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        return shipped, "shipped fast.onnx", float(np.abs(got - expected).max())
    fresh = export_fast_graph(model, artifact, tmp)
    got = ort_runner(cpu_session(fresh, 1), feeds)()
    diff = float(np.abs(got - expected).max())
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise SystemExit(f"{artifact.name}: fresh export differs from torch by {diff:.2e}; not timing")
    return fresh, "fresh export", diff


def bench_kind(kind: str, seconds: float, thread_counts: list[int], tmp: Path) -> list[dict[str, Any]]:
    artifact = default_artifact(kind)
    model, weights = torch_model(artifact)
    path, graph, diff = matching_graph(model, artifact, feeds_for(artifact, max(BATCHES)), tmp)
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        session = cpu_session(path, threads)
        for batch in BATCHES:
            feeds = feeds_for(artifact, batch)
            torch_run, ort_run = torch_runner(model, feeds), ort_runner(session, feeds)
            batch_diff = float(np.abs(torch_run() - ort_run()).max())
            times = interleaved({"torch": torch_run, "ort": ort_run}, seconds)
            t, o = median_ms(times["torch"]), median_ms(times["ort"])
            rows.append(
                {
                    "model": artifact.name,
                    "weights": weights,
                    "graph": graph,
                    "threads": threads,
                    "batch": batch,
                    "shape": "x".join(str(d) for d in next(iter(feeds.values())).shape),
                    "max_abs_diff": max(diff, batch_diff),
                    "torch_ms": t,
                    "ort_ms": o,
                    "speedup": t / o,
                    "calls": {k: len(v) for k, v in times.items()},
                }
            )
    return rows


def service_path(kind: str, seconds: float, threads: int) -> list[dict[str, Any]]:
    """A kind as the service runs a batch, without HTTP: each body parsed into items by the kind (tokenising, or
    the forecaster's numpy features: Theta, level, seasonality), then one `predict` on the fast graph (padding,
    decisions, the inverse transform)."""
    artifact = default_artifact(kind)
    runtime, spec = prepared_runtime(artifact, threads, load=True), KINDS[kind]
    rows = []
    for batch in BATCHES:
        bodies = [spec.route.request.model_validate(b) for b in bench_bodies(spec, batch)]

        def run(bodies: list[Any] = bodies) -> object:
            items = [item for body in bodies for item in spec.parse(runtime, body).items]
            return runtime.predict(items, False)

        times = interleaved({"predict": run}, seconds)["predict"]
        p50, p90 = median_ms(times), float(np.percentile(times, 90) * 1e3)
        rows.append(
            {"model": artifact.name, "threads": threads, "batch": batch, "p50_ms": p50, "p90_ms": p90}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="timing budget per model and batch size")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="thread counts for both sides (0: the service's choice)",
    )
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    threads = [session_options(t).intra_op_num_threads for t in args.threads]
    KINDS_BY_ARTIFACT.update({default_artifact(kind).name: kind for kind in args.kinds})
    with tempfile.TemporaryDirectory(prefix="lnserve-bench-") as tmp:
        rows = [row for kind in args.kinds for row in bench_kind(kind, args.seconds, threads, Path(tmp))]
    print(
        header("Model latency: ONNX Runtime (CPU provider) vs PyTorch eager, same weights, same thread count")
    )
    table = [
        [
            r["model"],
            r["weights"],
            r["graph"],
            str(r["threads"]),
            str(r["batch"]),
            r["shape"],
            f"{r['max_abs_diff']:.1e}",
            f"{r['torch_ms']:.3f}",
            f"{r['ort_ms']:.3f}",
            f"{r['speedup']:.2f}x",
            ("met" if r["speedup"] >= TARGET_SPEEDUP else "missed") if r["batch"] == 1 else "-",
        ]
        for r in rows
    ]
    print(
        markdown_table(
            [
                "model",
                "weights",
                "ORT graph",
                "threads",
                "batch",
                "input",
                "max abs diff",
                "eager ms (p50)",
                "ORT ms (p50)",
                "ORT speed-up",
                f"target >= {TARGET_SPEEDUP:g}x @ b1",
            ],
            table,
        )
    )
    service = [row for kind in args.kinds for t in threads for row in service_path(kind, args.seconds, t)]
    print(
        header(
            "Service path without HTTP: per-item parsing (tokens or numpy features) + one fast-graph predict"
        )
    )

    def verdict(r: dict[str, Any]) -> str:
        target = SERVICE_TARGET_MS.get(str(KINDS_BY_ARTIFACT.get(r["model"], "")))
        if target is None or r["batch"] != 1:
            return "-"
        return f"{'met' if r['p50_ms'] <= target else 'missed'} (<= {target:g} ms)"

    table = [
        [
            r["model"],
            str(r["threads"]),
            str(r["batch"]),
            f"{r['p50_ms']:.3f}",
            f"{r['p90_ms']:.3f}",
            verdict(r),
        ]
        for r in service
    ]
    print(markdown_table(["model", "threads", "batch", "p50 ms", "p90 ms", "target @ b1"], table))
    dump_json(args.json, {"threads": threads, "rows": rows, "service_path": service})


if __name__ == "__main__":
    main()
