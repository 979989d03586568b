"""What the chat model itself costs per message on the HTTP benchmark's messages, batched as the service batches them.

The 64 messages `bench.http_load` and `bench.peers` post are tokenized as the service does, grouped by length
bucket into batches of 1, 16 and 32, each batch padded to its longest message (the CPU path), and every batch of
the mix is run once per call. Candidates take turns (`bench.timing.interleaved`):

- the shipped fast graph with one intra-op thread (a batch of the service on 2 cores: two concurrent batches of
  one thread each) and with two threads (one batch with every core, as the hand-written peer runs);
- two graph rewrites, for the record: ORT's transformer fusions (`onnxruntime.transformers.optimizer`, BERT
  patterns) and int8 dynamic quantization (`service.runtime.precision.to_int8`, served with
  `LNSERVE_PRECISION=int8`), one thread.

It prints the graph time per message and what it implies on this machine: the messages per second that every
core could answer if the service did nothing but run the graph. That is the ceiling batching and the request path
can approach; issue 15 compares it with the no-op server.

    .venv/bin/python -m bench.graph_cost [--seconds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from bench.artifacts import default_artifact, prepared_runtime
from bench.bodies import ENDPOINTS, bodies_for
from bench.tables import dump_json, header, markdown_table
from bench.timing import interleaved
from models.sidecar import FAST
from service.runtime.precision import float32_weights, to_int8
from service.runtime.providers import CPU, session_options, usable_cores

CHAT = "/v1/chat"
BATCHES = (1, 16, 32)
Feeds = dict[str, np.ndarray]


def mix_batches(runtime: Any, batch: int) -> tuple[list[Feeds], int]:
    """The benchmark messages as the service's batches of at most `batch`, one length bucket per batch."""
    kind = ENDPOINTS[CHAT]
    bodies = [kind.route.request.model_validate_json(body) for body in bodies_for(CHAT)]
    items = [item for body in bodies for item in kind.parse(runtime, body).items]
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(runtime.batch_key(item), []).append(item)
    batches = [
        runtime.feeds(group[start : start + batch])
        for group in groups.values()
        for start in range(0, len(group), batch)
    ]
    return batches, len(items)


def rewritten_graphs(fast: Path, folder: Path) -> dict[str, Path]:
    """The shipped graph fused by ORT's transformer optimizer, and quantized to int8 as the service does
    (`LNSERVE_PRECISION=int8`)."""
    from onnxruntime.transformers.optimizer import optimize_model

    inlined, fused, quantized = folder / "float32.onnx", folder / "fused.onnx", folder / "int8.onnx"
    onnx.save(float32_weights(onnx.load(str(fast))), str(inlined))
    with contextlib.redirect_stdout(io.StringIO()):  # the optimizer prints advice about float16 initialisers
        optimize_model(str(inlined), model_type="bert", opt_level=1).save_model_to_file(str(fused))
    quantized.write_bytes(to_int8(fast))
    return {"ORT transformer fusions": fused, "int8 dynamic quantization": quantized}


def runner(session: ort.InferenceSession, batches: list[Feeds]) -> Callable[[], list[np.ndarray]]:
    def run() -> list[np.ndarray]:
        return [session.run(["logits"], feeds)[0] for feeds in batches]

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per batch size")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args(argv)

    artifact = default_artifact("chatbot")
    runtime = prepared_runtime(artifact)
    fast = artifact.file(FAST)
    with tempfile.TemporaryDirectory(prefix="lnserve-graph-cost-") as tmp:
        graphs = {"shipped, 1 thread": (fast, 1), "shipped, 2 threads": (fast, 2)}
        graphs |= {name: (path, 1) for name, path in rewritten_graphs(fast, Path(tmp)).items()}
        sessions = {
            name: ort.InferenceSession(str(path), session_options(threads), providers=[CPU])
            for name, (path, threads) in graphs.items()
        }
        rows, payload = [], []
        for batch in BATCHES:
            batches, n_messages = mix_batches(runtime, batch)
            runs = {name: runner(session, batches) for name, session in sessions.items()}
            outputs = {name: run() for name, run in runs.items()}
            reference = outputs["shipped, 1 thread"]
            times = interleaved(runs, args.seconds)
            for name, samples in times.items():
                per_message_us = float(np.median(samples)) / n_messages * 1e6
                error = max(float(np.abs(a - b).max()) for a, b in zip(outputs[name], reference, strict=True))
                threads = graphs[name][1]
                ceiling = usable_cores() / threads * 1e6 / per_message_us  # every core on graphs alone
                payload.append(
                    {
                        "graph": name,
                        "batch": batch,
                        "batches": len(batches),
                        "per_message_us": per_message_us,
                        "max_abs_logit_difference": error,
                        "ceiling_messages_per_s": ceiling,
                    }
                )
        base = {r["batch"]: r["per_message_us"] for r in payload if r["graph"] == "shipped, 1 thread"}
        for r in payload:
            rows.append(
                [
                    r["graph"],
                    str(r["batch"]),
                    str(r["batches"]),
                    f"{r['per_message_us']:.0f}",
                    f"{base[1] / r['per_message_us']:.2f}x",
                    f"{base[r['batch']] / r['per_message_us']:.2f}x",
                    f"{r['max_abs_logit_difference']:.1e}",
                    f"{r['ceiling_messages_per_s']:,.0f}",
                ]
            )
    print(header(f"Chat graph cost per message ({artifact.name}, the 64 benchmark messages)"))
    print(
        markdown_table(
            [
                "graph",
                "batch",
                "batches in the mix",
                "µs per message",
                "speed vs shipped 1 thread at batch 1",
                "vs shipped 1 thread, same batch",
                "max |Δ logit|",
                f"messages/s, all {usable_cores()} cores on graphs alone",
            ],
            rows,
        )
    )
    dump_json(args.json, {"artifact": artifact.name, "rows": payload})


if __name__ == "__main__":
    main()
