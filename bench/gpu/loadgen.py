"""A closed-loop HTTP load generator in Python, for machines without wrk (the GPU host): asyncio + aiohttp.

Like wrk: `c` connections each POST the next body as soon as the previous answer arrives, for a fixed time. The
connections are spread over several worker processes (one event loop saturates about one core at a few thousand
requests per second), which start together and whose latencies are merged before the percentiles are taken.

    with LoadGenerator(processes=4) as load:
        result = load.run("http://127.0.0.1:8000/v1/chat", bodies, concurrency=64, seconds=5)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType

import numpy as np

from bench.wrk import Load

HEADERS = {"Content-Type": "application/json"}
START_DELAY_S = 0.5  # workers start their clocks together, this long after the run is handed out


def _worker(
    url: str, bodies: list[str], connections: int, offset: int, start_at: float, seconds: float
) -> tuple[list[float], int]:
    """Latencies (s) of the 2xx answers completed in the window, and the count of failures."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio is slower, not wrong
        pass
    return asyncio.run(_drive(url, bodies, connections, offset, start_at, seconds))


async def _drive(
    url: str, bodies: list[str], connections: int, offset: int, start_at: float, seconds: float
) -> tuple[list[float], int]:
    import aiohttp

    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.perf_counter() + seconds

        async def connection(k: int) -> None:
            nonlocal failures
            i = offset + k
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                i += connections
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=HEADERS) as response:
                        await response.read()
                        ok = 200 <= response.status < 300
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                finished = time.perf_counter()
                if finished > deadline:
                    break  # answered after the window closed: not counted, as wrk does
                if ok:
                    latencies.append(finished - started)
                else:
                    failures += 1

        await asyncio.gather(*(connection(k) for k in range(connections)))
    return latencies, failures


class LoadGenerator:
    """A pool of worker processes kept for several runs (starting them costs about a second)."""

    def __init__(self, processes: int = 4) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LoadGenerator:
        self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def run(self, url: str, bodies: list[str], concurrency: int, seconds: float) -> Load:
        if not url.startswith("http://127.0.0.1:"):
            raise ValueError("benchmarks only send traffic to 127.0.0.1")
        if self._pool is None:
            raise RuntimeError("use LoadGenerator as a context manager")
        workers = max(1, min(self.processes, concurrency))
        shares = [concurrency // workers + (w < concurrency % workers) for w in range(workers)]
        start_at = time.time() + START_DELAY_S
        offsets = np.cumsum([0, *shares[:-1]])
        futures = [
            self._pool.submit(_worker, url, bodies, share, int(offset), start_at, seconds)
            for share, offset in zip(shares, offsets, strict=True)
        ]
        latencies: list[float] = []
        failures = 0
        for future in futures:
            part, failed = future.result(timeout=seconds + 60)
            latencies += part
            failures += failed
        p50, p99 = np.percentile(latencies, [50, 99]) * 1e3 if latencies else (float("nan"), float("nan"))
        return Load(len(latencies) + failures, failures, seconds, float(p50), float(p99))
