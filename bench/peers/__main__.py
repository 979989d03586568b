"""The peer benchmark: the default chatbot artifact's ``fast.onnx`` with the service's tokenizer, length buckets, ORT
session options and intent decision (``bench/peers/pipeline.py``), served by lnserve, a hand-written FastAPI
endpoint (no batching), the no-op ceiling of the same uvicorn stack, PyTriton, MLServer, BentoML, LitServe and Ray
Serve, each batching natively at max 32 requests / ~0.5 ms; ``wrk`` at each concurrency. See bench/peers/README.md.

    make bench-peers                                   # creates the peers' environments, runs, draws docs/peers.png
    .venv/bin/python -m bench.peers --quick            # 1 round, c = 1 and 16, 2 s per point
    .venv/bin/python -m bench.peers --servers lnserve hand-written --concurrency 1 64
    .venv/bin/python -m bench.peers --servers lnserve hand-written --lnserve-variant LNSERVE_MAX_QUEUE_DELAY_US=0
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.artifacts import KINDS, default_artifact
from bench.peers.harness import ROOT, Plan, run
from bench.peers.pipeline import ChatPipeline
from bench.peers.report import markdown
from bench.peers.servers import BY_NAME, SERVERS, lnserve_variant
from bench.tables import machine
from bench.wrk import require_wrk
from service.settings import Settings

N_MESSAGES = 64


def pipeline_ms(folder: Path, threads: int, messages: list[str], repeats: int = 5) -> float:
    """The shared pipeline's own median time for one message (tokens, one graph run, decision), no HTTP."""
    pipeline = ChatPipeline(folder, threads)
    times = []
    for _ in range(repeats):
        for message in messages:
            start = time.perf_counter()
            pipeline([message])
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", nargs="+", default=[s.name for s in SERVERS], choices=list(BY_NAME))
    parser.add_argument(
        "--lnserve-variant",
        action="append",
        default=[],
        metavar="LNSERVE_X=V[,LNSERVE_Y=W]",
        help="one more lnserve with these settings, measured beside the others (repeatable)",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", help="default 1 16 64 256 (--quick: 1 16)")
    parser.add_argument("--seconds", type=int, help="wrk duration per point (default 5; --quick: 2)")
    parser.add_argument(
        "--rounds", type=int, help="starts of every server, in rotated order (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="seconds of wrk at c = 16 before timing (0: none)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1 round, c = 1 and 16, 2 s per point"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=Settings.model_fields["intra_op_threads"].default,
        help="ORT intra-op threads of every server (default: the service's default, 0 = fitted to the machine)",
    )
    parser.add_argument(
        "--peers-dir", type=Path, default=ROOT / ".peers", help="the peers' virtual environments"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "peers" / "results", help="logs, JSON, tables"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.concurrency = args.concurrency or ([1, 16] if quick else [1, 16, 64, 256])
    args.seconds = args.seconds or (2 if quick else 5)
    args.rounds = args.rounds or (1 if quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    require_wrk()
    artifact = default_artifact("chatbot")
    messages = [body["message"] for body in KINDS["chatbot"].bench_bodies(N_MESSAGES)]
    plan = Plan(
        args.concurrency, args.seconds, args.rounds, args.warmup, args.threads, args.peers_dir, args.out
    )
    servers = [BY_NAME[name] for name in args.servers] + [lnserve_variant(v) for v in args.lnserve_variant]
    started, load_before = datetime.now(UTC), machine()
    own_ms = pipeline_ms(artifact.folder, args.threads, messages)
    results = run(servers, plan, artifact.folder, artifact.name, messages)
    sessions = [s for entry in results["servers"].values() for s in entry["sessions"]]
    loads = [s["load_avg"] for s in sessions]
    load = f"median {statistics.median(loads):.1f} ({min(loads):.1f}–{max(loads):.1f})" if loads else "-"
    meta = {
        "date": f"{started:%Y-%m-%d %H:%M} UTC, {(datetime.now(UTC) - started).total_seconds() / 60:.0f} min",
        "machine": f"At the start: {load_before}. 1-minute load average at the servers' starts: {load}.",
        "load_avg": load,
        "command": shlex.join([Path(sys.executable).name, "-m", "bench.peers", *(argv or sys.argv[1:])]),
        "description": f"artifact {artifact.name}, {len(messages)} validation messages in turn; wrk -t1,"
        f" {plan.seconds:g} s per point, {plan.rounds} round(s), servers one at a time in rotated order, each"
        f" started afresh per round; ORT intra-op threads {plan.threads or 'fitted to the machine'}.",
        "pipeline_ms": own_ms,
        "plan": {k: str(v) if isinstance(v, Path) else v for k, v in vars(plan).items()},
    }
    text = markdown(results, meta)
    print(text)
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "peers.md").write_text(text + "\n", encoding="utf-8")
    (plan.out / "peers.json").write_text(
        json.dumps({"meta": meta, **results}, indent=1) + "\n", encoding="utf-8"
    )
    failed = [
        name
        for name, e in results["servers"].items()
        if e["failure"] or any(s["failure"] or s["stop_failure"] for s in e["sessions"])
    ]
    if failed:
        print(f"failed: {', '.join(failed)} (see {plan.out / 'logs'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
