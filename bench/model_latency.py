"""Model latency: ONNX Runtime (CPU provider, the service's session options) vs PyTorch eager on the same weights.

For each kind's default artifact the torch model is rebuilt (trained weights from ``runs/<name>/checkpoint.pt``
when present, else the sidecar's config with a seeded init). If its outputs equal the shipped ``model.onnx`` the
shipped graph is timed; otherwise the same torch weights are exported afresh with the project's export code.
Outputs are checked equal before timing; both sides then take turns in short blocks and the medians are compared.

    .venv/bin/python -m bench.model_latency [--seconds 8] [--threads 0 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from bench.artifacts import KINDS, ROOT, Artifact, default_artifact, feeds_for
from bench.tables import dump_json, header, markdown_table
from bench.timing import interleaved, median_ms
from service.runtime.providers import session_options

RUNS_DIR = ROOT / "runs"
BATCHES = (1, 32)
TARGET_SPEEDUP = 3.0  # ORT >= 3x eager at batch 1 (issue 4)
SERVICE_TARGET_MS = 5.0  # forecaster, one series, through the service runtime (issue 11)


def _config(cls: type, config: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in config.items() if k in names})


def torch_model(artifact: Artifact) -> tuple[torch.nn.Module, str]:
    """The artifact's network in eager PyTorch, and where its weights came from."""
    if artifact.kind == "chatbot":
        from models.chatbot.model import Chatbot, ChatbotConfig

        checkpoint = RUNS_DIR / artifact.name / "checkpoint.pt"
        if checkpoint.exists():
            from models.chatbot.train import load_checkpoint

            return load_checkpoint(artifact.name, RUNS_DIR)[0].eval(), f"trained (runs/{artifact.name})"
        torch.manual_seed(0)
        return Chatbot(_config(ChatbotConfig, artifact.sidecar["config"])).eval(), "seeded init"
    from models.forecaster.model import Forecaster, ForecasterConfig, ForecasterEnsemble

    members = int(artifact.sidecar["config"].get("ensemble_members", 1))
    run_dir = RUNS_DIR / "forecaster" / artifact.name
    if len(list(run_dir.glob("seed*.pt"))) >= members:
        from models.forecaster.export import load_ensemble

        trained = list(load_ensemble(run_dir)[0].members)[:members]  # as many members as the artifact has
        weights = artifact.sidecar["training"].get("combination", {}).get("weights")  # the Theta weights
        return ForecasterEnsemble(
            trained, weights
        ).eval(), f"trained (runs/forecaster/{artifact.name}, {members} member(s))"
    torch.manual_seed(0)
    cfg = _config(ForecasterConfig, artifact.sidecar["config"])
    lookbacks = artifact.sidecar["forecaster"].get("lookbacks", [cfg.lookback] * members)
    return ForecasterEnsemble(
        [Forecaster(dataclasses.replace(cfg, lookback=k)) for k in lookbacks]
    ).eval(), "seeded init"


def export_fast_graph(model: torch.nn.Module, artifact: Artifact, folder: Path) -> Path:
    """The fast graph of ``model`` written by the project's own export code."""
    path = folder / f"{artifact.name}.onnx"
    if artifact.kind == "chatbot":
        from models.chatbot.export import export_diagnostic, prune_to

        onnx.save(prune_to(export_diagnostic(model), ["logits"]), path)
    else:
        from models.forecaster.export import export_onnx

        export_onnx(model, path, diagnostics=False)
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
    shipped = artifact.file("model")
    got = ort_runner(cpu_session(shipped, 1), feeds)()
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        return shipped, "shipped model.onnx", float(np.abs(got - expected).max())
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


def service_path(seconds: float, threads: int) -> list[dict[str, Any]]:
    """The forecaster as the service runs it: `ForecasterRuntime.predict` = the numpy features (Theta, level,
    seasonality), the fast graph and the inverse transform, for one series and for 32."""
    from bench.bodies import seasonal_series
    from service.runtime.forecaster import ForecasterRuntime, ForecastItem

    artifact = default_artifact("forecaster")
    runtime = ForecasterRuntime(artifact, "cpu", threads)
    runtime.load()
    series = [np.asarray(s, dtype=np.float32) for s in seasonal_series(64)]
    rows = []
    for batch in BATCHES:
        items = [ForecastItem(s, 12) for s in series[:batch]]
        times = interleaved({"predict": lambda items=items: runtime.predict(items)}, seconds)["predict"]
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
    service = (
        [row for t in threads for row in service_path(args.seconds, t)] if "forecaster" in args.kinds else []
    )
    if service:
        print(
            header(
                "Forecaster service path: features (numpy Theta) + fast graph + inverse, ForecasterRuntime"
            )
        )
        table = [
            [
                r["model"],
                str(r["threads"]),
                str(r["batch"]),
                f"{r['p50_ms']:.3f}",
                f"{r['p90_ms']:.3f}",
                ("met" if r["p50_ms"] <= SERVICE_TARGET_MS else "missed") if r["batch"] == 1 else "-",
            ]
            for r in service
        ]
        print(
            markdown_table(
                [
                    "model",
                    "threads",
                    "batch",
                    "p50 ms",
                    "p90 ms",
                    f"target p50 <= {SERVICE_TARGET_MS:g} ms @ b1",
                ],
                table,
            )
        )
    dump_json(args.json, {"threads": threads, "rows": rows, "service_path": service})


if __name__ == "__main__":
    main()
