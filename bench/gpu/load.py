"""Stage `load`: the whole service on the GPU under load at c = 1 / 64 / 256 against the same service on the machine's
CPU cores, every model served as shipped, both started at once and driven in turn by `loadgen` (closed loop, like
wrk) on each kind's route; req/s, p50, p99, errors, the mean batch size each formed, GPU memory, load times.

    python -m bench.gpu.load --json load.json [--seconds 4] [--concurrency 1 64 256]
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from bench.bodies import ENDPOINTS, bodies_for
from bench.gpu.common import Results
from bench.gpu.loadgen import LoadGenerator
from bench.servers import ServerSpec, batch_totals, running

SERVERS = [
    ServerSpec("GPU", {"LNSERVE_PROVIDERS": "cuda"}),
    ServerSpec("CPU", {"LNSERVE_PROVIDERS": "cpu"}),
]
GAUGES = (
    "lnserve_gpu_memory_used_bytes",
    "lnserve_gpu_memory_total_bytes",
    "lnserve_model_load_duration_seconds",
)


def scrape(url: str) -> dict[str, float]:
    """The GPU memory and model load gauges of one server, keyed `name{labels}`."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = re.compile(r"^((?:" + "|".join(GAUGES) + r")\{[^}]*\}) (\S+)$", re.M)
    return {key: float(value) for key, value in pattern.findall(text)}


def runtime_lines(log: Path) -> list[str]:
    """What the server logged about its runtimes: provider and precision per model, CUDA graphs captured, fp16."""
    keep = ("loaded ", "CUDA graph", "fp16", "CUDA provider")
    messages = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            message = str(json.loads(line).get("message", ""))
        except json.JSONDecodeError:
            message = line
        if any(k in message for k in keep):
            messages.append(message)
    return messages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=4.0, help="per point and server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--processes", type=int, default=4, help="load generator processes")
    args = parser.parse_args()
    results = Results(args.json)
    results.data["servers"] = {s.name: s.env for s in SERVERS}
    logs = args.json.parent / "servers"
    logs.mkdir(exist_ok=True)
    with running(SERVERS, timeout_s=240, log_dir=logs) as urls, LoadGenerator(args.processes) as load:
        results.data["after_start"] = {name: scrape(url) for name, url in urls.items()}
        results.data["runtimes"] = {s.name: runtime_lines(logs / f"{s.name}.log") for s in SERVERS}
        results.save()
        for endpoint in args.endpoints:
            bodies = bodies_for(endpoint)
            for url in urls.values():  # connection pools, code paths, the GPU's clocks
                load.run(url + endpoint, bodies, 16, 1.0)
            for c in args.concurrency:
                names = list(urls)
                for name in names[c % 2 :] + names[: c % 2]:  # alternate who goes first
                    before = batch_totals(urls[name])
                    point = load.run(urls[name] + endpoint, bodies, c, args.seconds)
                    after = batch_totals(urls[name])
                    row: dict[str, Any] = {
                        "endpoint": endpoint,
                        "c": c,
                        "server": name,
                        "ok_per_s": point.ok_per_s,
                        "p50_ms": point.p50_ms,
                        "p99_ms": point.p99_ms,
                        "errors": point.errors,
                        "requests": point.requests,
                    }
                    if before and after and after[1] > before[1]:
                        row["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
                    results.append("rows", row)
        results.data["after_load"] = {name: scrape(url) for name, url in urls.items()}
        results.save()


if __name__ == "__main__":
    main()
