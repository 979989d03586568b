"""A served model: a loaded, warmed runtime with its batcher and live activation statistics.

`execute` is what a batch does, in a worker thread: one graph call (the diagnostic graph when an item asked for
statistics or the batch was sampled, else the fast one), the compute time, and the statistics of every item of a
diagnostic batch into the live aggregates. Sampling whole batches means statistics never cost a second graph call.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from models.sidecar import DIAGNOSTIC, FAST
from service.activations import ActivationMonitor
from service.batching import BatchPolicy, DynamicBatcher
from service.errors import LnserveError, NonFiniteOutput
from service.kinds import AnyKind, Job
from service.metrics import Metrics
from service.runtime.base import Outcome, Prediction, Runtime
from service.tracing import Tracing


class ServedModel:
    def __init__(
        self,
        kind: AnyKind,
        runtime: Runtime[Any, Any],
        policy: BatchPolicy,
        metrics: Metrics,
        sample_rate: float,
        seed: int | None = None,
        history_s: int = 900,
        tracing: Tracing | None = None,
    ) -> None:
        self.kind = kind
        self.runtime = runtime
        self.name = runtime.name
        self.version = runtime.artifact.version
        self.monitor = ActivationMonitor(runtime.artifact, history_s)
        self.sample_rate = sample_rate
        self._random = random.Random(seed)
        self._compute = {
            path: metrics.compute_duration.labels(self.name, self.version, path)
            for path in (FAST, DIAGNOSTIC)
        }
        self._nonfinite = metrics.nonfinite_outputs.labels(self.name, self.version)
        # One thread per batch the runtime may run at once, of this model alone: a shared pool of more threads
        # hands consecutive batches to different threads, and waking a cold one cost ~0.2 ms per request at c = 1
        # (docs/benchmarks.md).
        self.concurrency = runtime.concurrency
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"lnserve-batch-{self.name}")
        self.batcher: DynamicBatcher[Any, Prediction[Any]] = DynamicBatcher(
            self.name,
            self.execute,
            policy,
            self._threads,
            metrics,
            runtime.batch_key,
            self.version,
            tracing,
            self.concurrency,
        )

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        """Answer what is queued, stop the batcher, then drop the sessions (their memory goes with the last
        reference)."""
        await self.batcher.drain()
        await self.batcher.stop()
        self._threads.shutdown(wait=False)  # its last batch, if any, has answered (drained) or timed out
        self.runtime.sessions = {}

    async def infer(self, job: Job[Any]) -> list[Prediction[Any]]:
        return await self.batcher.submit(job.items, job.activations)

    def execute(self, items: list[Any], wants_statistics: list[bool]) -> list[Outcome[Any]]:
        diagnostic = any(wants_statistics) or (
            self.sample_rate > 0 and self._random.random() < self.sample_rate
        )
        started = time.perf_counter()
        outcomes = self.runtime.predict(items, diagnostic)
        self._compute[DIAGNOSTIC if diagnostic else FAST].observe(time.perf_counter() - started)
        errors = [o for o in outcomes if isinstance(o, LnserveError)]
        if any(isinstance(e, NonFiniteOutput) for e in errors):
            self._nonfinite.inc(sum(isinstance(e, NonFiniteOutput) for e in errors))
        if diagnostic:
            self.monitor.observe(
                [o.activations for o in outcomes if isinstance(o, Prediction) and o.activations is not None]
            )
        return outcomes
