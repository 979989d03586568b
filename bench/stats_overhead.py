"""Cost of the activation statistics: fast path vs instrumented path, and sampling at the default rate vs none.

Model level (no HTTP), timed side by side:
- ``graph``: the shipped ``fast.onnx`` vs ``diagnostic.onnx`` in ONNX Runtime on the same feeds;
- ``runtime``: the service's own batch execution (``ServedModel.execute``: features, one graph call, decisions,
  feeding the live aggregates) at sample rate 0, 1 and the default. The service samples whole batches, so a sampled
  batch runs the instrumented graph instead of the fast one and never adds a second graph call: the expected cost
  is rate x (instrumented(B) - fast(B)) / fast(B). Sampled calls are rare, so that comparison uses mean times.

HTTP: servers with ``LNSERVE_ACTIVATION_SAMPLE_RATE=0`` and at the default rate (plus ``--rates``), driven in turn
by ``wrk``; and on the rate-0 server, requests with ``return_activations: true``. Overheads are medians of the
per-round ratios (the two runs of a round are adjacent in time), with their range.

    .venv/bin/python -m bench.stats_overhead [--seconds 8] [--http-seconds 5] [--rounds 3] [--json out.json]

The HTTP table also gives the server's CPU seconds per answered request against rate 0 (from /proc): on a shared
machine other processes move throughput by tens of percent between rounds, CPU per request far less.
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from typing import Any

import onnxruntime as ort

from bench.artifacts import (
    KINDS,
    Artifact,
    bench_items,
    default_artifact,
    feeds_for,
    kind_of,
    prepared_runtime,
)
from bench.bodies import bodies_for
from bench.servers import ServerSpec, cpu_seconds, running
from bench.tables import dump_json, header, markdown_table
from bench.timing import interleaved, median_ms, overhead_pct
from bench.wrk import Load, require_wrk, run_wrk
from models.sidecar import DIAGNOSTIC, FAST
from service.batching import BatchPolicy
from service.metrics import Metrics
from service.model import ServedModel
from service.runtime.providers import session_options
from service.settings import Settings

BATCHES = (1, 32)
TARGET_PCT = 2.0  # statistics overhead at the default sampling <= 2% (issue 12)


def graph_rows(artifact: Artifact, threads: int, seconds: float) -> list[dict[str, Any]]:
    options, cpu = session_options(threads), ["CPUExecutionProvider"]
    fast = ort.InferenceSession(str(artifact.file(FAST)), options, providers=cpu)
    diag = ort.InferenceSession(str(artifact.file(DIAGNOSTIC)), options, providers=cpu)
    rows = []
    for batch in BATCHES:
        feeds = feeds_for(artifact, batch)
        times = interleaved(
            {"fast": partial(fast.run, None, feeds), "diag": partial(diag.run, None, feeds)}, seconds
        )
        f, d = median_ms(times["fast"]), median_ms(times["diag"])
        rows.append(
            {"level": "graph", "model": artifact.name, "batch": batch, "fast_ms": f, "instrumented_ms": d}
        )
    return rows


def runtime_rows(artifact: Artifact, threads: int, seconds: float, rate: float) -> list[dict[str, Any]]:
    runtime = prepared_runtime(artifact, threads, load=True)
    metrics, policy = Metrics(), BatchPolicy()
    served = {
        name: ServedModel(kind_of(artifact), runtime, policy, metrics, r, seed=0)
        for name, r in (("fast", 0.0), ("diag", 1.0), ("sampled", rate))
    }
    rows = []
    for batch in BATCHES:
        items = bench_items(runtime, batch)
        wants = [False] * len(items)
        times = interleaved({name: partial(m.execute, items, wants) for name, m in served.items()}, seconds)
        rows.append(
            {
                "level": "runtime",
                "model": artifact.name,
                "batch": batch,
                "fast_ms": median_ms(times["fast"]),
                "instrumented_ms": median_ms(times["diag"]),
                "fast_mean_ms": statistics.fmean(times["fast"]) * 1e3,
                "sampled_mean_ms": statistics.fmean(times["sampled"]) * 1e3,
            }
        )
    return rows


def expected_pct(rate: float, row: dict[str, Any]) -> float:
    """Expected overhead of sampling whole batches at ``rate``: a sampled batch swaps the fast graph for the
    instrumented one."""
    return 100.0 * rate * (row["instrumented_ms"] - row["fast_ms"]) / row["fast_ms"]


def model_table(rows: list[dict[str, Any]], rate: float) -> str:
    out = []
    for r in rows:
        expected = measured = "-"
        if r["level"] == "runtime":
            expected = f"{expected_pct(rate, r):+.2f}%"
            measured = f"{overhead_pct(r['fast_mean_ms'], r['sampled_mean_ms']):+.1f}%"
        out.append(
            [
                r["level"],
                r["model"],
                str(r["batch"]),
                f"{r['fast_ms']:.3f}",
                f"{r['instrumented_ms']:.3f}",
                f"{overhead_pct(r['fast_ms'], r['instrumented_ms']):+.1f}%",
                expected,
                measured,
            ]
        )
    return markdown_table(
        [
            "level",
            "model",
            "batch",
            "fast ms (p50)",
            "instrumented ms (p50)",
            "instrumented overhead",
            f"sampling at {rate:g}: expected",
            "measured (means)",
        ],
        out,
    )


def max_rate(rows: list[dict[str, Any]]) -> float:
    """The largest sample rate whose expected overhead stays within the target at every batch size measured."""
    worst = max(expected_pct(1.0, r) for r in rows if r["level"] == "runtime")
    return 1.0 if worst <= TARGET_PCT else TARGET_PCT / worst


def http_rounds(
    cases: dict[str, tuple[str, list[str]]], c: int, seconds: float, rounds: int
) -> tuple[dict[str, list[Load]], dict[str, list[float]]]:
    """wrk on every case once per round (in a rotated order); also the server's CPU seconds per answered request,
    which other processes on a shared machine disturb far less than throughput."""
    names = list(cases)
    loads: dict[str, list[Load]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            url, bodies = cases[name]
            server = url.rsplit("/v", 1)[0]
            before = cpu_seconds(server)
            load = run_wrk(url, bodies, c, seconds)
            loads[name].append(load)
            cpu[name].append((cpu_seconds(server) - before) / max(1, load.requests - load.errors))
    return loads, cpu


def paired(base: list[float], other: list[float]) -> tuple[float, float, float]:
    """Median, min and max over rounds of other / base - 1, in percent."""
    pcts = [(o / b - 1.0) * 100.0 for b, o in zip(base, other, strict=True)]
    return statistics.median(pcts), min(pcts), max(pcts)


def paired_overhead(base: list[Load], other: list[Load]) -> tuple[float, float, float]:
    """Median, min and max over rounds of the extra time per request (throughput ratio - 1), in percent."""
    return paired([o.ok_per_s for o in other], [b.ok_per_s for b in base])


def http_part(
    kinds: list[str],
    rates: list[float],
    concurrency: list[int],
    seconds: float,
    rounds: int,
    server_threads: int | None = None,
) -> tuple[str, dict[str, Any], dict[str, float]]:
    common = {} if server_threads is None else {"LNSERVE_INTRA_OP_THREADS": str(server_threads)}
    specs = [ServerSpec("rate 0", {**common, "LNSERVE_ACTIVATION_SAMPLE_RATE": "0"})]
    specs += [ServerSpec(f"rate {r:g}", {**common, "LNSERVE_ACTIVATION_SAMPLE_RATE": str(r)}) for r in rates]
    rows, raw, overheads = [], {}, {}
    with running(specs) as urls:
        for kind in kinds:
            endpoint = KINDS[kind].route.path
            plain, instrumented = bodies_for(endpoint), bodies_for(endpoint, return_activations=True)
            cases = {name: (url + endpoint, plain) for name, url in urls.items()}
            cases["rate 0, return_activations"] = (urls["rate 0"] + endpoint, instrumented)
            for url, bodies in cases.values():
                run_wrk(url, bodies, 16, 1)  # warm-up
            for c in concurrency:
                loads, cpu = http_rounds(cases, c, seconds, rounds)
                raw[f"{endpoint} c={c}"] = {name: [vars(x) for x in xs] for name, xs in loads.items()}
                raw[f"{endpoint} c={c} cpu_s_per_request"] = cpu
                for name in list(cases)[1:]:
                    med, lo, hi = paired_overhead(loads["rate 0"], loads[name])
                    cpu_med, cpu_lo, cpu_hi = paired(cpu["rate 0"], cpu[name])
                    overheads[f"{endpoint} c={c} {name}"] = med
                    overheads[f"{endpoint} c={c} {name} cpu"] = cpu_med
                    base = statistics.median(x.ok_per_s for x in loads["rate 0"])
                    other = statistics.median(x.ok_per_s for x in loads[name])
                    p50 = statistics.median(x.p50_ms for x in loads[name])
                    p99 = statistics.median(x.p99_ms for x in loads[name])
                    errors = sum(x.errors for x in loads[name]) + sum(x.errors for x in loads["rate 0"])
                    rows.append(
                        [
                            endpoint,
                            str(c),
                            name,
                            f"{base:.0f}/s",
                            f"{other:.0f}/s ({p50:.1f} / {p99:.1f} ms)",
                            f"{med:+.1f}% ({lo:+.1f} .. {hi:+.1f})",
                            f"{cpu_med:+.1f}% ({cpu_lo:+.1f} .. {cpu_hi:+.1f})",
                            str(errors),
                        ]
                    )
    table = markdown_table(
        [
            "endpoint",
            "c",
            "compared with rate 0",
            "rate 0 req/s",
            "req/s (p50 / p99)",
            "overhead: median (range) over rounds",
            "server CPU per request: median (range)",
            "errors",
        ],
        rows,
    )
    return table, raw, overheads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="model-level timing budget per model and batch"
    )
    parser.add_argument("--http-seconds", type=float, default=5.0, help="wrk duration per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="HTTP rounds (each case once per round)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument(
        "--rates", type=float, nargs="*", default=None, help="sample rates (default: the setting's)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="ORT threads at model level (0: the service's)"
    )
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument(
        "--server-threads",
        type=int,
        default=None,
        help="LNSERVE_INTRA_OP_THREADS of the HTTP servers (1: no spinning threads, so CPU per request is work)",
    )
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    default_rate = Settings().activation_sample_rate
    rates = args.rates if args.rates is not None else [default_rate]
    threads = session_options(args.threads).intra_op_num_threads
    rows = []
    for kind in args.kinds:
        artifact = default_artifact(kind)
        rows += graph_rows(artifact, threads, args.seconds / 2)
        rows += runtime_rows(artifact, threads, args.seconds, default_rate)
    print(header(f"Statistics overhead (default sample rate {default_rate:g}, {threads} ORT threads)"))
    print(f"### Model level\n\n{model_table(rows, default_rate)}\n")
    print(
        "Expected = rate x (instrumented(B) - fast(B)) / fast(B), from the runtime medians;"
        f" the target <= {TARGET_PCT:g}% holds for every sample rate <= {max_rate(rows):.3g}.\n"
    )
    payload: dict[str, Any] = {
        "default_rate": default_rate,
        "threads": threads,
        "max_rate_for_target": max_rate(rows),
        "model_rows": rows,
    }
    if not args.skip_http:
        require_wrk()
        table, raw, overheads = http_part(
            args.kinds, rates, args.concurrency, args.http_seconds, args.rounds, args.server_threads
        )
        print(f"### HTTP (wrk -t1, {args.http_seconds:g} s per case, {args.rounds} rounds)\n\n{table}\n")
        payload |= {"http": raw, "http_overhead_pct": overheads}
    dump_json(args.json, payload)


if __name__ == "__main__":
    main()
