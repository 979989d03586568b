"""HTTP load: the service with dynamic batching on vs off, and vs a no-op FastAPI app (the ceiling of the stack).

Four real servers on free loopback ports, started at once and driven in turn by ``wrk`` (closed loop: each of
``c`` connections sends its next request when the previous answer arrives) for a fixed time per point:

- ``batching on``: the service's defaults (max batch size and queue delay from ``service.settings``);
- ``batching on, no delay``: the default max batch size with ``LNSERVE_MAX_QUEUE_DELAY_US=0`` (a batch is what
  queued while the previous one ran);
- ``batching off``: ``LNSERVE_MAX_BATCH_SIZE=1``, ``LNSERVE_MAX_QUEUE_DELAY_US=0``;
- ``no-op``: ``bench/noop_app.py`` under the same uvicorn settings: parses the same bodies, runs no model.

    .venv/bin/python -m bench.http_load [--seconds 5] [--rounds 2] [--concurrency 1 16 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from bench import bodies
from bench.bodies import bodies_for
from bench.servers import ServerSpec, batch_totals, running
from bench.tables import dump_json, header, load_cells, markdown_table
from bench.wrk import Load, require_wrk, run_wrk
from service.settings import Settings

ENDPOINTS = tuple(bodies.ENDPOINTS)
TARGET_BATCHING = 3.0  # batching >= 3x throughput at concurrency 64 (issue 4)
SERVERS = [
    ServerSpec("batching on"),
    ServerSpec("batching on, no delay", {"LNSERVE_MAX_QUEUE_DELAY_US": "0"}),
    ServerSpec("batching off", {"LNSERVE_MAX_BATCH_SIZE": "1", "LNSERVE_MAX_QUEUE_DELAY_US": "0"}),
    ServerSpec("no-op", noop=True),
]


def measure(
    urls: dict[str, str], endpoint: str, concurrency: int, seconds: float, rounds: int
) -> tuple[dict[str, list[Load]], dict[str, float]]:
    """``rounds`` runs per server at one point, servers taking turns (order rotated every round); also the mean
    batch size each service formed (from its ``lnserve_batch_size`` histogram)."""
    bodies = bodies_for(endpoint)
    names = list(urls)
    loads: dict[str, list[Load]] = {name: [] for name in names}
    batches: dict[str, list[float]] = {name: [0.0, 0.0] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            before = batch_totals(urls[name])
            loads[name].append(run_wrk(urls[name] + endpoint, bodies, concurrency, seconds))
            after = batch_totals(urls[name])
            if before is not None and after is not None:
                batches[name][0] += after[0] - before[0]
                batches[name][1] += after[1] - before[1]
    return loads, {name: s / n for name, (s, n) in batches.items() if n > 0}


def summary(loads: list[Load]) -> dict[str, float]:
    """Median over rounds of throughput and latency percentiles; errors summed."""
    return {
        "ok_per_s": statistics.median(x.ok_per_s for x in loads),
        "p50_ms": statistics.median(x.p50_ms for x in loads),
        "p99_ms": statistics.median(x.p99_ms for x in loads),
        "errors": float(sum(x.errors for x in loads)),
    }


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    rows = []
    for c, by_server in results.items():
        off, noop = by_server["batching off"]["ok_per_s"], by_server["no-op"]["ok_per_s"]
        for name, r in by_server.items():
            rows.append(
                [
                    *load_cells(c, name, r),
                    str(int(r["errors"])),
                    f"{r['mean_batch']:.1f}" if r["mean_batch"] else "-",
                    f"{r['ok_per_s'] / off:.2f}x" if off else "-",
                    f"{r['ok_per_s'] / noop:.1%}" if noop else "-",
                ]
            )
    return markdown_table(
        [
            "c",
            "server",
            "req/s (2xx)",
            "p50 ms",
            "p99 ms",
            "errors",
            "mean batch",
            "req/s vs batching off",
            "req/s vs no-op",
        ],
        rows,
    )


def verdict(endpoint: str, results: dict[int, dict[str, dict[str, float]]]) -> str:
    if 64 not in results:
        return ""
    r = results[64]
    gain = r["batching on"]["ok_per_s"] / r["batching off"]["ok_per_s"]
    best = max((n for n in r if n.startswith("batching on")), key=lambda n: r[n]["ok_per_s"])
    best_gain = r[best]["ok_per_s"] / r["batching off"]["ok_per_s"]
    status = "met" if gain >= TARGET_BATCHING else "missed"
    return (
        f"Target batching >= {TARGET_BATCHING:g}x throughput at c=64 on {endpoint}: {status} ({gain:.2f}x with the"
        f" defaults; best configuration {best!r}: {best_gain:.2f}x).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per server and point")
    parser.add_argument("--rounds", type=int, default=2, help="runs per server and point (medians reported)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    require_wrk()
    defaults = Settings()
    raw: dict[str, Any] = {}
    tables = []
    with running(SERVERS) as urls:
        for endpoint in args.endpoints:
            for url in urls.values():  # warm the connection pools and the code paths
                run_wrk(url + endpoint, bodies_for(endpoint), 16, 1)
            results = {}
            for c in args.concurrency:
                loads, mean_batch = measure(urls, endpoint, c, args.seconds, args.rounds)
                results[c] = {
                    name: summary(x) | {"mean_batch": mean_batch.get(name, 0.0)} for name, x in loads.items()
                }
                raw[f"{endpoint} c={c}"] = {name: [vars(x) for x in xs] for name, xs in loads.items()}
            tables.append(f"### POST {endpoint}\n\n{table(results)}\n\n{verdict(endpoint, results)}")
    print(header("HTTP load: batching on vs off vs the no-op ceiling"))
    print(
        f"wrk -t1, {args.seconds:g} s per point and server, {args.rounds} round(s) (medians over rounds)."
        f" Batching on = max batch {defaults.max_batch_size}, queue delay {defaults.max_queue_delay_us} us;"
        f" activation sample rate {defaults.activation_sample_rate:g} on both.\n"
    )
    print("\n".join(tables))
    dump_json(args.json, {"seconds": args.seconds, "rounds": args.rounds, "loads": raw})


if __name__ == "__main__":
    main()
