"""Dynamic batching per model: up to `max_batch_size` requests or `max_queue_delay`, whichever comes first.

Requests wait in a bounded asyncio queue (full -> `QueueFull` at once); one batch per model runs at a time in a
worker thread, so the event loop keeps accepting while ONNX Runtime computes. Each request gets back exactly the
result the runtime produced for its own item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from service.errors import InternalError, QueueFull, RequestTimeout
from service.metrics import Metrics

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass
class _Pending(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int
    max_queue_delay_s: float
    max_queue_size: int
    timeout_s: float
    retry_after_s: int


class DynamicBatcher(Generic[ItemT, ResultT]):
    def __init__(
        self,
        model: str,
        run_batch: Callable[[list[ItemT]], list[ResultT]],
        limits: BatchLimits,
        executor: Executor,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self._run_batch = run_batch
        self.limits = limits
        self._executor = executor
        self._metrics = metrics
        self._queue: asyncio.Queue[_Pending[ItemT, ResultT]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._waiting = 0  # submitted and not yet handed to the runtime: queued or in the batch being formed

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.model}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(QueueFull(f"model {self.model} is shutting down"))

    async def submit(self, item: ItemT) -> ResultT:
        """Queue one item and wait for its own result; raises `QueueFull` or `RequestTimeout`."""
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: list[ItemT]) -> list[ResultT]:
        """Queue items of one request together (all or none) and wait for their results."""
        if self._waiting + len(items) > self.limits.max_queue_size:
            raise QueueFull(
                f"the queue of model {self.model} is full ({self.limits.max_queue_size} requests); retry later",
                {"Retry-After": str(self.limits.retry_after_s)},
            )
        loop = asyncio.get_running_loop()
        pending = [_Pending[ItemT, ResultT](item, loop.create_future()) for item in items]
        gauge = self._metrics.pending_requests.labels(self.model)
        gauge.inc(len(items))
        self._waiting += len(items)
        try:
            for entry in pending:
                self._queue.put_nowait(entry)
            async with asyncio.timeout(self.limits.timeout_s):
                return list(await asyncio.gather(*(entry.future for entry in pending)))
        except TimeoutError:
            raise RequestTimeout(
                f"model {self.model} did not answer within the request timeout of {self.limits.timeout_s:g} s"
            ) from None
        finally:
            for entry in pending:
                entry.future.cancel()  # a no-op when done; otherwise the batcher skips the item
            gauge.dec(len(items))

    async def _collect(self) -> list[_Pending[ItemT, ResultT]]:
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.limits.max_queue_delay_s
        while len(batch) < self.limits.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await self._queue.get())
            except TimeoutError:
                break
        self._waiting -= len(batch)
        return [entry for entry in batch if not entry.future.done()]  # timed-out requests are dropped

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            started = time.perf_counter()
            for entry in batch:
                self._metrics.queue_duration.labels(self.model).observe(started - entry.enqueued)
            self._metrics.batch_size.labels(self.model).observe(len(batch))
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, [e.item for e in batch])
            except Exception as exc:  # a bug or a graph failure: fail this batch, keep serving
                log.exception("inference failed for a batch of %d on %s", len(batch), self.model)
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(
                            InternalError(f"inference failed on model {self.model}: {exc}")
                        )
                continue
            for entry, result in zip(batch, results, strict=True):
                if not entry.future.done():
                    entry.future.set_result(result)
