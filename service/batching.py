"""Dynamic batching per model: up to `max_batch_size` items or `max_queue_delay`, whichever comes first.

Items wait in a bounded queue (full -> `QueueFull` at once; a request larger than any queue could take ->
`PayloadTooLarge`); one batch per model runs at a time in a worker thread, so the event loop keeps accepting while
ONNX Runtime computes. Batches are formed round-robin over the waiting requests, so a request of hundreds of items
is spread over many batches and single requests still get into the next one. With `group_by_key`, a batch only
holds items of one `batch_key` (e.g. one length bucket), the key whose request has waited longest for its turn.
Each item gets back exactly its own outcome; an item that failed alone fails only its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from service.errors import InternalError, LnserveError, PayloadTooLarge, QueueFull, RequestTimeout
from service.metrics import Metrics
from service.tracing import Tracing

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")


class BatchPolicy(BaseModel):
    """How one model batches (Triton's `dynamic_batching`, MLServer's adaptive batching)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_size: int = Field(default=32, ge=1, le=1024, description="Largest batch handed to the runtime.")
    max_queue_delay_s: float = Field(default=0.0005, ge=0, description="Wait for more items after the first.")
    max_queue_size: int = Field(default=512, ge=1, description="Items that may wait; one more is refused.")
    max_items_per_request: int = Field(
        default=256, ge=1, description="Items one request may hold (at most `max_queue_size`); more is 413."
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Queueing plus inference, per request.")
    retry_after_s: int = Field(default=1, ge=1, description="`Retry-After` of a refusal.")
    group_by_key: bool = Field(
        default=False, description="Batch only items of the oldest item's `batch_key`."
    )
    wait_when_idle: bool = Field(
        default=False,
        description="Wait `max_queue_delay_s` for companions even when the model is idle. Off: a lone request "
        "finding the model idle (nothing arrived while the previous batch ran) runs at once.",
    )
    concurrent_batches: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Batches the model runs at once on the CPU, each on its own thread (0: the machine's rule, "
        "`service.runtime.providers.cpu_concurrency`); the runtime runs one at a time on CUDA.",
    )
    inline_when_idle: bool = Field(
        default=True,
        description="Run a lone request that finds the model idle on the event loop's own thread, without the "
        "hand-over to the model's thread and back (one inference of one item blocks the loop meanwhile).",
    )

    def merged(self, overrides: Mapping[str, Any]) -> BatchPolicy:
        return BatchPolicy.model_validate(self.model_dump() | dict(overrides))

    @property
    def items_limit(self) -> int:
        return min(self.max_items_per_request, self.max_queue_size)


@dataclass
class _Pending(Generic[ItemT, OutT]):
    item: ItemT
    wants_statistics: bool
    future: asyncio.Future[OutT]
    enqueued: float = field(default_factory=time.perf_counter)
    trace: Any = None  # the request's trace context, with tracing on


@dataclass
class _Request(Generic[ItemT, OutT]):
    """The waiting items of one request (of one batch key). `turn` is when it arrived, then when it last gave an
    item to a batch: batches are formed round-robin over requests, one item each per round, so a single request
    shares the next batch with a large one instead of waiting for all of its items."""

    waiting: deque[_Pending[ItemT, OutT]]
    turn: float


RunBatch = Callable[[list[ItemT], list[bool]], list[OutT | LnserveError]]


class DynamicBatcher(Generic[ItemT, OutT]):
    def __init__(
        self,
        model: str,
        run_batch: RunBatch[ItemT, OutT],
        policy: BatchPolicy,
        executor: Executor,
        metrics: Metrics,
        batch_key: Callable[[ItemT], Hashable] | None = None,
        version: str = "1",
        tracing: Tracing | None = None,
        concurrency: int = 1,
    ) -> None:
        self.model = model
        self.policy = policy
        self._run_batch = run_batch
        self._executor = executor
        self._key = batch_key if policy.group_by_key and batch_key is not None else (lambda item: None)
        self._queues: dict[Hashable, deque[_Request[ItemT, OutT]]] = {}
        self._waiting = 0  # submitted and not yet handed to the runtime
        self._running = 0  # batches in the runtime
        self._concurrency = concurrency
        self._in_flight: set[asyncio.Task[None]] = set()
        self._contended = False  # items arrived while the previous batch ran: worth waiting for companions
        self._tracing = tracing if tracing is not None and tracing.on else None
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending_gauge = metrics.pending_requests.labels(model, version)
        self._queue_duration = metrics.queue_duration.labels(model, version)
        self._batch_size = metrics.batch_size.labels(model, version)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.model}")

    async def drain(self, poll_s: float = 0.005) -> None:
        """Wait until every item queued so far has been batched and answered (at most the request timeout).

        A model being replaced is drained after the switch: requests resolve the model and submit to its batcher
        without an await in between, so none can reach this batcher once the switch is made."""
        deadline = time.perf_counter() + self.policy.timeout_s
        while (self._waiting > 0 or self._running) and time.perf_counter() < deadline:
            await asyncio.sleep(poll_s)

    async def stop(self) -> None:
        for task in (self._task, *self._in_flight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for queue in self._queues.values():
            for request in queue:
                for pending in request.waiting:
                    if not pending.future.done():
                        pending.future.set_exception(QueueFull(f"model {self.model} is shutting down"))
            queue.clear()

    async def submit(self, items: list[ItemT], wants_statistics: bool = False) -> list[OutT]:
        """Queue one request's items together (all or none) and wait for their outcomes; the first item that failed
        fails the request. Raises `PayloadTooLarge` (more items than a request may hold: a retry cannot help),
        `QueueFull` (retry later) or `RequestTimeout`."""
        limit = self.policy.items_limit
        if len(items) > limit:
            raise PayloadTooLarge(
                f"this request holds {len(items)} items; model {self.model} takes at most {limit} per request "
                "(LNSERVE_MAX_ITEMS_PER_REQUEST, at most LNSERVE_MAX_QUEUE_SIZE)"
            )
        if self._waiting + len(items) > self.policy.max_queue_size:
            raise QueueFull(
                f"the queue of model {self.model} is full ({self.policy.max_queue_size} requests); retry later",
                {"Retry-After": str(self.policy.retry_after_s)},
            )
        loop = asyncio.get_running_loop()
        trace = self._tracing.context() if self._tracing is not None else None
        pending = [
            _Pending[ItemT, OutT](item, wants_statistics, loop.create_future(), trace=trace) for item in items
        ]
        requests: dict[Hashable, _Request[ItemT, OutT]] = {}
        for entry in pending:
            key = self._key(entry.item)
            if key not in requests:
                requests[key] = _Request(deque(), entry.enqueued)
                self._queues.setdefault(key, deque()).append(requests[key])
            requests[key].waiting.append(entry)
        self._waiting += len(items)
        self._pending_gauge.inc(len(items))
        self._arrived.set()
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return list(await asyncio.gather(*(entry.future for entry in pending)))
        except TimeoutError:
            raise RequestTimeout(
                f"model {self.model} did not answer within the request timeout of {self.policy.timeout_s:g} s"
            ) from None
        finally:
            for request in requests.values():  # a failed request's items that still wait never run
                self._waiting -= len(request.waiting)
                request.waiting.clear()
            for entry in pending:
                if not entry.future.done():
                    entry.future.cancel()  # the batcher skips it
                elif not entry.future.cancelled():
                    entry.future.exception()  # marks a second failed item's error as seen
            self._pending_gauge.dec(len(items))

    def _next_key(self) -> Hashable:
        """The key whose first request has waited longest for its turn."""
        return min((kv for kv in self._queues.items() if kv[1]), key=lambda kv: kv[1][0].turn)[0]

    def _take(self, key: Hashable, batch: list[_Pending[ItemT, OutT]]) -> None:
        """Fill `batch` round-robin: one item of each waiting request per round."""
        queue, now = self._queues[key], time.perf_counter()
        while queue and len(batch) < self.policy.max_batch_size:
            request = queue.popleft()
            if not request.waiting:
                continue  # the request failed (timed out) while it waited
            batch.append(request.waiting.popleft())
            if request.waiting:
                request.turn = now
                queue.append(request)

    def _inline(self, batch: list[_Pending[ItemT, OutT]]) -> bool:
        """A lone item at an idle model: nothing else waits, nothing arrived while the previous batch ran."""
        return (
            self.policy.inline_when_idle
            and len(batch) == 1
            and not self._contended
            and not self._running
            and not any(self._queues.values())
        )

    async def _collect(self) -> list[_Pending[ItemT, OutT]]:
        while not any(self._queues.values()):
            self._arrived.clear()
            await self._arrived.wait()
        key = self._next_key()
        batch: list[_Pending[ItemT, OutT]] = []
        self._take(key, batch)
        lone = len(batch) == 1 and not self._contended and not self.policy.wait_when_idle
        deadline = time.perf_counter() + (0.0 if lone else self.policy.max_queue_delay_s)
        while batch and len(batch) < self.policy.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            self._take(key, batch)
        self._waiting -= len(batch)  # only now: the batch being formed still counts against the queue limit
        return [entry for entry in batch if not entry.future.done()]  # timed-out requests are dropped

    async def _loop(self) -> None:
        """Form batches and run them, at most `concurrency` at a time (each on a thread of the executor)."""
        free = asyncio.Semaphore(self._concurrency)
        while True:
            await free.acquire()
            batch = await self._collect()
            if not batch:
                free.release()
                continue
            inline = self._inline(batch)
            self._running += 1  # before the batch's task starts: `drain` must see it at once
            if inline:
                await self._run(batch, inline=True)
                free.release()
            else:
                task = asyncio.get_running_loop().create_task(self._run(batch, inline=False))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                task.add_done_callback(lambda _: free.release())

    async def _run(self, batch: list[_Pending[ItemT, OutT]], inline: bool) -> None:
        started = time.perf_counter()
        for entry in batch:
            self._queue_duration.observe(started - entry.enqueued)
        self._batch_size.observe(len(batch))
        items, wants = [e.item for e in batch], [e.wants_statistics for e in batch]
        try:
            if inline:
                outcomes = self._run_batch(items, wants)
            else:
                loop = asyncio.get_running_loop()
                outcomes = await loop.run_in_executor(self._executor, self._run_batch, items, wants)
        except Exception:  # a bug or a graph failure: fail this batch, keep serving; the log has the details
            log.exception("inference failed for a batch of %d on %s", len(batch), self.model)
            error = InternalError(f"inference failed on model {self.model}")
            outcomes = [error] * len(batch)
        finally:
            self._running -= 1
            self._contended = any(self._queues.values())
        if self._tracing is not None:
            diagnostic = any(getattr(o, "activations", None) is not None for o in outcomes)
            requests = {id(e.trace): (e.trace, e.enqueued) for e in batch}.values()  # one per request
            self._tracing.batch(requests, started, time.perf_counter(), len(batch), diagnostic)
        for entry, outcome in zip(batch, outcomes, strict=True):
            if entry.future.done():
                continue
            if isinstance(outcome, LnserveError):
                entry.future.set_exception(outcome)
            else:
                entry.future.set_result(outcome)
