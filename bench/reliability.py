"""The scenarios of docs/reliability.md, each against a real `lnserve serve` on a free loopback port:

    python -m bench.reliability load       # wrk, c=256 for 60 s on /v1/chat: answers, errors, RSS before/after
    python -m bench.reliability drain      # SIGTERM under c=64: every request in flight at the signal answered
    python -m bench.reliability soak       # mixed good and bad traffic for 5 min (--seconds): RSS over time
    python -m bench.reliability poison     # c=32 for 20 s with poison requests mixed in: failed good requests
    python -m bench.reliability fairness   # single chats alone vs sent behind a request of 512 long texts
    python -m bench.reliability slow       # slowloris headers, slow bodies, idle connections, the connection cap

Each prints its figures as a short markdown block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.bodies import bodies_for
from bench.servers import ServerSpec, is_ready, started
from bench.tables import header
from bench.wrk import run_wrk

Body = tuple[str, dict[str, Any]]
JSON = {"content-type": "application/json"}
SURROGATE = "pass \ud800 word"
NEAR_MAX = [3.0e38, 3.1e38, 3.2e38, 3.0e38, 3.3e38, 3.0e38, 3.2e38, 3.3e38]


@contextmanager
def serve(**env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A `lnserve serve` with these LNSERVE_* settings; yields its URL and process once it is ready."""
    with (
        tempfile.TemporaryDirectory(prefix="lnserve-reliability-") as logs,
        started(ServerSpec("reliability", env), Path(logs)) as (url, proc, log),
    ):
        deadline = time.monotonic() + 300
        while not is_ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield url, proc


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as \ud800


def good_bodies() -> list[Body]:
    chats = [json.loads(b) for b in bodies_for("/v1/chat", n=16)]
    forecasts = [json.loads(b) for b in bodies_for("/v1/forecast", n=8)]
    texts = [c["message"] for c in chats]
    v2_text = {"inputs": [{"name": "text", "shape": [4], "datatype": "BYTES", "data": texts[:4]}]}
    series = forecasts[0]["series"]
    v2_series = {
        "inputs": [{"name": "series", "shape": [1, len(series)], "datatype": "FP32", "data": series}]
    }
    return [
        *(("/v1/chat", c) for c in chats),
        *(("/v1/forecast", f) for f in forecasts),
        *(("/v1/chat/completions", {"messages": [{"role": "user", "content": t}]}) for t in texts[:4]),
        ("/v2/models/chatbot/infer", v2_text),
        ("/v2/models/forecaster/infer", v2_series),
    ]


def poison_bodies() -> list[Body]:
    """Bad requests: refused before batching, or (the near-max series) failing inside a shared batch."""
    near_max = {"inputs": [{"name": "series", "shape": [1, 8], "datatype": "FP32", "data": NEAR_MAX}]}
    return [
        ("/v1/chat", {"message": SURROGATE}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": SURROGATE}]}),
        (
            "/v2/models/chatbot/infer",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [SURROGATE]}]},
        ),
        (
            "/v2/models/chatbot/infer",
            {"inputs": [{"name": "text", "shape": [0], "datatype": "BYTES", "data": []}]},
        ),
        ("/v2/models/forecaster/infer", near_max),
        ("/v1/chat", {"message": "   "}),
    ]


@dataclass
class Outcome:
    poison: bool
    result: int | str  # the status, or the client's error
    began: float
    sent: float  # the whole request written to the socket (inf: never)
    ended: float


def sent_at(outcome: Outcome) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpx trace hook noting when the request is written out."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == "http11.send_request_body.complete":
            outcome.sent = time.monotonic()

    return trace


async def drive(url: str, plan: list[tuple[Body, bool]], concurrency: int, seconds: float) -> list[Outcome]:
    """`concurrency` workers posting random entries of `plan` for `seconds`."""
    rng = random.Random(0)
    out: list[Outcome] = []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def worker() -> None:
            while time.monotonic() < stop:
                (path, body), bad = rng.choice(plan)
                outcome = Outcome(bad, "", time.monotonic(), float("inf"), 0.0)

                try:
                    response = await http.post(
                        path, content=encode(body), headers=JSON, extensions={"trace": sent_at(outcome)}
                    )
                    outcome.result = response.status_code
                except httpx.HTTPError as exc:
                    outcome.result = type(exc).__name__
                outcome.ended = time.monotonic()
                out.append(outcome)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def load(args: argparse.Namespace) -> None:
    bodies = bodies_for("/v1/chat")
    with serve() as (url, proc):
        run_wrk(url + "/v1/chat", bodies, args.concurrency, 5)  # warm: pools, buckets, allocator
        before = rss_mb(proc.pid)
        result = run_wrk(url + "/v1/chat", bodies, args.concurrency, args.seconds)
        after = rss_mb(proc.pid)
        metrics = httpx.get(url + "/metrics").text
    ok = result.requests - result.errors
    print(header(f"Load: wrk -t1 -c{args.concurrency} -d{args.seconds:g}s on /v1/chat"))
    print(f"- requests {result.requests}, 2xx {ok}, non-2xx or socket errors {result.errors}")
    print(f"- {result.ok_per_s:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
    print(f"- RSS {before:.1f} MB before, {after:.1f} MB after ({after - before:+.1f} MB)")
    print(f"- 5xx in the server's own counters: {server_errors(metrics)}")


def server_errors(metrics: str) -> int:
    total = 0
    for line in metrics.splitlines():
        if line.startswith("lnserve_request_failure_total{") and any(
            f'reason="{r}"' in line for r in ("internal", "queue_full", "timeout", "not_ready")
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def drain(args: argparse.Namespace) -> None:
    """wrk keeps `concurrency` connections busy; a few Python clients note exactly which of their requests were
    written out before the signal, and what became of them."""
    plan = [(body, False) for body in good_bodies() if body[0] == "/v1/chat"]
    with serve() as (url, proc):

        async def scenario() -> tuple[list[Outcome], Any, float, float]:
            wrk = asyncio.create_task(
                asyncio.to_thread(
                    run_wrk, url + "/v1/chat", bodies_for("/v1/chat"), args.concurrency, args.seconds + 2
                )
            )
            probes = asyncio.create_task(drive(url, plan, 8, args.seconds + 1))
            await asyncio.sleep(args.seconds)
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 60)
            exit_s = time.monotonic() - signalled
            return await probes, await wrk, signalled, exit_s

        results, load, signalled, exit_s = asyncio.run(scenario())
    sent = [r for r in results if r.sent < signalled]
    in_flight = [r for r in sent if r.ended > signalled]
    failed = Counter(str(r.result) for r in sent if r.result != 200)
    unsent = Counter(str(r.result) for r in results if r.sent >= signalled)
    print(
        header(
            f"SIGTERM under load: wrk c={args.concurrency} plus 8 probe clients, signal after {args.seconds:g} s"
        )
    )
    print(f"- probe requests sent before the signal: {len(sent)}; in flight at it: {len(in_flight)}; "
          f"failed: {sum(failed.values())} {dict(failed) or ''}")  # fmt: skip
    for r in sorted((r for r in sent if r.result != 200), key=lambda r: r.sent)[:5]:
        print(f"  - failed: sent {r.sent - signalled:+.3f} s, ended {r.ended - signalled:+.3f} s: {r.result}")
    print(f"- probe requests not sent before it: {sum(unsent.values())} {dict(unsent)}")
    print(f"- wrk: {load.requests} answers, non-2xx {load.status}, read errors (an answer cut off) {load.read}, "
          f"write errors {load.write}, connect errors {load.connect}, other (reconnects to the closed port) "
          f"{load.errors - load.status - load.read - load.write - load.connect}")  # fmt: skip
    print(f"- exit status {proc.returncode} {exit_s:.1f} s after the signal")


def soak(args: argparse.Namespace) -> None:
    plan = [(b, False) for b in good_bodies()] + [(b, True) for b in poison_bodies()]
    samples: list[tuple[float, float]] = []
    with serve() as (url, proc):

        async def scenario() -> list[Outcome]:
            task = asyncio.create_task(drive(url, plan, args.concurrency, args.seconds))
            started_at = time.monotonic()
            while not task.done():
                samples.append((time.monotonic() - started_at, rss_mb(proc.pid)))
                await asyncio.sleep(10)
            return await task

        results = asyncio.run(scenario())
        samples.append((args.seconds, rss_mb(proc.pid)))
    statuses = Counter(str(r.result) for r in results)
    warm = [rss for t, rss in samples if t >= 30] or [samples[-1][1]]
    print(header(f"Soak: mixed traffic, c={args.concurrency}, {args.seconds:g} s"))
    print(f"- requests {len(results)}: {dict(sorted(statuses.items()))}")
    print(f"- RSS at 30 s {warm[0]:.1f} MB, at the end {warm[-1]:.1f} MB ({warm[-1] - warm[0]:+.1f} MB), "
          f"peak {max(warm):.1f} MB")  # fmt: skip
    print("- RSS every 10 s (MB): " + ", ".join(f"{rss:.0f}" for _, rss in samples))


def poison(args: argparse.Namespace) -> None:
    good, bad = good_bodies(), poison_bodies()
    plan = [(b, False) for b in good] * 6 + [(b, True) for b in bad]  # about 1 request in 20 is poison
    with serve() as (url, _):
        results = asyncio.run(drive(url, plan, args.concurrency, args.seconds))
    good_results = Counter(str(r.result) for r in results if not r.poison)
    bad_results = Counter(str(r.result) for r in results if r.poison)
    failed = sum(n for status, n in good_results.items() if status != "200")
    print(header(f"Poison among good requests: c={args.concurrency}, {args.seconds:g} s"))
    print(f"- good requests {sum(good_results.values())}, failed {failed} {dict(good_results)}")
    print(f"- poison requests {sum(bad_results.values())}: {dict(sorted(bad_results.items()))}")


def fairness(args: argparse.Namespace) -> None:
    texts = [json.loads(b)["message"] for b in bodies_for("/v1/chat", n=16)]
    long_text = " ".join(texts)  # far beyond the model's 64 tokens: every item fills the longest bucket
    big = {"inputs": [{"name": "text", "shape": [512], "datatype": "BYTES", "data": [long_text] * 512}],
           "outputs": [{"name": "intent"}]}  # fmt: skip
    with serve(LNSERVE_MAX_ITEMS_PER_REQUEST="512") as (url, _):

        async def scenario() -> tuple[list[float], list[float], list[float]]:
            alone, behind, whole = [], [], []
            async with httpx.AsyncClient(base_url=url, timeout=120) as http:
                for text in texts * 2:
                    began = time.monotonic()
                    assert (await http.post("/v1/chat", json={"message": text})).status_code == 200
                    alone.append(time.monotonic() - began)
                for _ in range(args.rounds):
                    began = time.monotonic()
                    task = asyncio.create_task(http.post("/v2/models/chatbot/infer", json=big))
                    while (
                        "pending_requests{" not in (m := (await http.get("/metrics")).text)
                        or " 512.0" not in m
                    ):
                        await asyncio.sleep(0.002)

                    async def single(text: str) -> float:
                        sent = time.monotonic()
                        assert (await http.post("/v1/chat", json={"message": text})).status_code == 200
                        return time.monotonic() - sent

                    behind += await asyncio.gather(*(single(t) for t in texts[:8]))
                    assert (await task).status_code == 200
                    whole.append(time.monotonic() - began)
            return alone, behind, whole

        alone, behind, whole = asyncio.run(scenario())
    p50_alone, p50_behind = statistics.median(alone), statistics.median(behind)
    print(header("Fairness: single chats sent while a request of 512 long texts waits"))
    print(f"- single chat alone: p50 {p50_alone * 1000:.0f} ms (n={len(alone)})")
    print(f"- single chat behind the large request: p50 {p50_behind * 1000:.0f} ms, max {max(behind) * 1000:.0f} ms "
          f"(n={len(behind)}); {p50_behind / p50_alone:.1f}x alone")  # fmt: skip
    print(f"- the large request itself: median {statistics.median(whole):.2f} s over {len(whole)} rounds; single "
          f"chats wait {p50_behind / statistics.median(whole):.0%} of it")  # fmt: skip


async def _closed_after(
    host: str, port: int, send: bytes, every_s: float, limit_s: float, burst: bytes = b""
) -> tuple[float, str]:
    """Open a connection, send `burst`, then `send` one byte every `every_s`; seconds until the server closes it,
    and the status line it sent (if any)."""
    reader, writer = await asyncio.open_connection(host, port)
    began, received = time.monotonic(), b""
    writer.write(burst)
    try:
        for i in range(int(limit_s / every_s)):
            if i < len(send):
                writer.write(send[i : i + 1])
                await writer.drain()
            try:
                chunk = await asyncio.wait_for(reader.read(4096), every_s)
            except TimeoutError:
                continue
            if not chunk:
                break
            received += chunk
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - began, received.split(b"\r\n", 1)[0].decode(errors="replace")


def slow(args: argparse.Namespace) -> None:
    with serve() as (url, _):
        host, port = url.removeprefix("http://").split(":")
        head = f"POST /v1/chat HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
        get = f"GET /v2/health/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

        async def scenario() -> dict[str, Any]:
            silent = [_closed_after(host, int(port), b"", 0.5, 60) for _ in range(50)]
            slowloris = [_closed_after(host, int(port), b"GET / HTTP/1.1\r\nX-A: " + b"a" * 200, 1.0, 60)
                         for _ in range(50)]  # fmt: skip
            slow_body = [_closed_after(host, int(port), b"{" * 90, 1.0, 60, head.encode()) for _ in range(10)]
            idle = [
                _closed_after(host, int(port), b"", 0.5, 60, get) for _ in range(10)
            ]  # a request, then nothing
            meanwhile = drive(url, [(b, False) for b in good_bodies()[:16]], 4, 35)
            groups = await asyncio.gather(
                asyncio.gather(*silent), asyncio.gather(*slowloris), asyncio.gather(*slow_body),
                asyncio.gather(*idle), meanwhile,
            )  # fmt: skip
            return dict(
                zip(["silent", "slowloris", "slow body", "idle keep-alive", "meanwhile"], groups, strict=True)
            )

        results = asyncio.run(scenario())
    with serve(LNSERVE_MAX_CONNECTIONS=str(args.cap)) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        get = f"GET /v2/health/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

        async def over_cap() -> Counter[str]:
            connections, statuses = [], Counter[str]()
            for _ in range(args.cap + 20):
                connections.append(await asyncio.open_connection(host, int(port)))
            await asyncio.sleep(1)  # all accepted and open
            for _, writer in connections:
                writer.write(get)
            for reader, _ in connections:
                line = await asyncio.wait_for(reader.readline(), 10)
                statuses[line.decode().split(" ")[1] if line else "closed"] += 1
            for _, writer in connections:
                writer.close()
            return statuses

        capped = asyncio.run(over_cap())
    print(header("Slow and idle connections (header timeout 10 s, body timeout 30 s, keep-alive 5 s)"))
    for name in ("silent", "slowloris", "slow body", "idle keep-alive"):
        times = [t for t, _ in results[name]]
        lines = Counter(line or "(nothing)" for _, line in results[name])
        print(f"- {name}: {len(times)} connections closed after {min(times):.1f}–{max(times):.1f} s "
              f"(median {statistics.median(times):.1f}); answered {dict(lines)}")  # fmt: skip
    meanwhile = Counter(str(r.result) for r in results["meanwhile"])
    latencies = sorted(r.ended - r.began for r in results["meanwhile"])
    print(f"- meanwhile, 4 clients: {dict(meanwhile)}, p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms")  # fmt: skip
    print(f"- {args.cap + 20} connections with LNSERVE_MAX_CONNECTIONS={args.cap}: {dict(capped)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=["load", "drain", "soak", "poison", "fairness", "slow"])
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--rounds", type=int, default=3, help="fairness: large requests")
    parser.add_argument("--cap", type=int, default=100, help="slow: LNSERVE_MAX_CONNECTIONS")
    args = parser.parse_args()
    defaults = {"load": (256, 60), "drain": (64, 10), "soak": (16, 300), "poison": (32, 20)}
    c, s = defaults.get(args.scenario, (0, 0))
    args.concurrency = args.concurrency or c
    args.seconds = args.seconds or s
    globals()[args.scenario](args)


if __name__ == "__main__":
    main()
