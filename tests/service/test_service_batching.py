"""Dynamic batching: every request gets its own answer; a full queue is 503 at once; a slow request times out."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.batching import BatchPolicy, DynamicBatcher
from service.metrics import Metrics
from service.runtime.providers import cgroup_cpu_quota, usable_cores
from service.settings import Settings
from tests.service.helpers import model_folder, serve_in_thread
from tests.service.test_service_protocols import sample

TEXTS = [
    "hi",
    "i forgot my password",
    "how much does the pro plan cost per month",
    "cancel my subscription",
    "the mobile app keeps crashing when i open a project on my phone",
    "thanks",
    "add a new user to my team",
    "can i get a refund",
    "export all my data to csv please",
    "is my data encrypted at rest and who can see it",
    "talk to a human",
    "change the email address on my account to my new work address",
    "bye",
    "upgrade to business",
    "i was charged twice this month and i want to dispute the second charge",
    "where is the api key",
]


async def post_all(base: str, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as http:
        return list(await asyncio.gather(*(http.post("/v1/chat", json=body) for body in bodies)))


def test_64_concurrent_requests_of_different_lengths_each_get_their_own_answer(
    server: str, client: httpx.Client
) -> None:
    bodies = [
        {
            "message": TEXTS[i % len(TEXTS)] + " please" * (i // len(TEXTS)),
            "model": "chatbot-peri",
            "return_activations": i % 3 == 0,
        }
        for i in range(64)
    ]
    alone = [client.post("/v1/chat", json=body).json() for body in bodies]
    before = client.get("/metrics").text
    together = asyncio.run(post_all(server, bodies))
    assert all(response.status_code == 200 for response in together)
    for one, batched in zip(alone, (r.json() for r in together), strict=True):
        assert batched["intent"] == one["intent"] and batched["reply"] == one["reply"]
        assert batched["confidence"] == pytest.approx(one["confidence"], abs=1e-5)
        assert (batched["activations"] is None) == (one["activations"] is None)
        if one["activations"] is not None:
            for a, b in zip(one["activations"]["layers"], batched["activations"]["layers"], strict=True):
                assert b["rms"] == pytest.approx(a["rms"], rel=1e-4, abs=1e-5)
    after = client.get("/metrics").text
    batches = _count(after) - _count(before)
    assert batches < 64, "concurrent requests were never batched together"


def _count(metrics: str) -> float:
    return sample(metrics, "lnserve_batch_size_count", model="chatbot-peri", version="1")


def test_a_full_queue_answers_503_with_retry_after_at_once(tmp_path: Path) -> None:
    # The batcher holds the first requests for 2 s while it forms a batch; the queue takes only two.
    settings = Settings(
        model_dir=model_folder(tmp_path, ["chatbot-peri"]),
        max_queue_size=2,
        max_batch_size=64,
        max_queue_delay_us=2_000_000,
        wait_when_idle=True,
        warmup=False,
        retry_after_s=3,
    )
    with serve_in_thread(settings) as base:
        responses = asyncio.run(post_all(base, [{"message": text} for text in TEXTS[:8]]))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 503, 503, 503, 503, 503, 503]
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "3"
            assert response.json() == {
                "error": "the queue of model chatbot-peri is full (2 requests); retry later"
            }
            assert response.elapsed.total_seconds() < 1.0  # refused at once, not after the batch
        else:
            assert response.elapsed.total_seconds() >= 1.0


def test_a_request_past_its_timeout_gets_504_with_a_clear_message(tmp_path: Path) -> None:
    # The batcher waits 0.5 s for company, longer than the 0.1 s the request may take.
    settings = Settings(
        model_dir=model_folder(tmp_path, ["chatbot-peri"]),
        request_timeout_s=0.1,
        max_queue_delay_us=500_000,
        wait_when_idle=True,
        max_batch_size=8,
        warmup=False,
    )
    with serve_in_thread(settings) as base:
        response = httpx.post(base + "/v1/chat", json={"message": "hello"}, timeout=10)
        metrics = httpx.get(base + "/metrics").text
    assert response.status_code == 504
    assert response.json() == {
        "error": "model chatbot-peri did not answer within the request timeout of 0.1 s"
    }
    assert (
        'lnserve_request_failure_total{endpoint="chat",model="chatbot-peri",reason="timeout",version="1"} 1.0'
        in metrics
    )


def test_a_lone_request_at_an_idle_model_never_waits_for_companions_but_busy_ones_still_batch(
    tmp_path: Path,
) -> None:
    # A 2 s queue delay: a request that finds the model idle runs at once; requests that arrive while a batch runs
    # wait for companions and are answered together.
    # Inline runs off: burst requests that arrive one by one, each after the previous one's inline run, are each
    # found alone (see the test of inline runs below), which would make the count of batches a matter of timing.
    settings = Settings(
        model_dir=model_folder(tmp_path, ["chatbot-peri"]),
        max_queue_delay_us=2_000_000,
        warmup=False,
        inline_when_idle=False,
    )
    with serve_in_thread(settings) as base:
        lone = [httpx.post(base + "/v1/chat", json={"message": "hello"}, timeout=10) for _ in range(3)]
        before = _count(httpx.get(base + "/metrics").text)
        burst = asyncio.run(post_all(base, [{"message": text} for text in TEXTS[:16]]))
        batches = _count(httpx.get(base + "/metrics").text) - before
    assert [r.status_code for r in lone] == [200, 200, 200]
    assert max(r.elapsed.total_seconds() for r in lone) < 1.0  # not held for the 2 s delay
    assert [r.status_code for r in burst] == [200] * 16
    assert batches < 16  # the burst was batched: the first ran alone at most, the rest waited together


@pytest.mark.parametrize(("grouped", "batches"), [(None, 2), (False, 1)])
def test_a_chatbot_batch_takes_one_length_bucket_by_default(
    tmp_path: Path, grouped: bool | None, batches: int
) -> None:
    # 8 short and 8 long messages arrive together within a 1 s queue delay: by default the chatbot forms one batch
    # per length bucket (8 + 8), with group_by_key off one batch of 16 padded to the longest.
    long = " ".join(["we moved our whole team over last month and since then the invoices look odd"] * 5)
    settings = Settings(
        model_dir=model_folder(tmp_path, ["chatbot-peri"]),
        max_queue_delay_us=1_000_000,
        max_batch_size=16,
        wait_when_idle=True,
        warmup=False,
        model_settings={} if grouped is None else {"chatbot": {"group_by_key": grouped}},
    )
    with serve_in_thread(settings) as base:
        responses = asyncio.run(post_all(base, [{"message": "hello"}] * 8 + [{"message": long}] * 8))
        metrics = httpx.get(base + "/metrics").text
    assert [r.status_code for r in responses] == [200] * 16
    assert {r.json()["intent"] for r in responses[:8]} == {"greeting"}
    assert (
        _count(metrics) == batches and sample(metrics, "lnserve_batch_size_sum", model="chatbot-peri") == 16
    )


def _threads_of_batches(policy: BatchPolicy, bursts: list[int]) -> list[tuple[str, int]]:
    """(thread, size) of every batch a `DynamicBatcher` ran for `bursts` of concurrent single-item requests, one
    burst after the other; the first batch of a burst is slow (50 ms) so that the rest arrive while it runs."""
    ran: list[tuple[str, int]] = []

    def run_batch(items: list[int], wants: list[bool]) -> list[int]:
        ran.append((threading.current_thread().name, len(items)))
        if items[0] == 0:
            time.sleep(0.05)
        return [item * 10 for item in items]

    async def main() -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="model") as pool:
            batcher: DynamicBatcher[int, int] = DynamicBatcher("m", run_batch, policy, pool, Metrics())
            batcher.start()
            for size in bursts:
                first = asyncio.ensure_future(batcher.submit([0]))
                await asyncio.sleep(0.01)  # the first runs; the others arrive while it does
                rest = [batcher.submit([i]) for i in range(1, size)]
                assert [await first, *await asyncio.gather(*rest)] == [[i * 10] for i in range(size)]
            await batcher.stop()

    asyncio.run(main())
    return ran


def test_a_lone_request_at_an_idle_model_runs_on_the_loop_thread_and_companions_on_the_model_thread() -> None:
    loop_thread = threading.current_thread().name  # asyncio.run runs the loop on the calling thread
    policy = BatchPolicy(max_queue_delay_s=0.005)
    assert _threads_of_batches(policy, [1, 1]) == [(loop_thread, 1), (loop_thread, 1)]
    # The first of a burst runs inline, blocking the loop: the three others are read only when it is done, then
    # found together (a batch of 3, on the model's thread).
    assert _threads_of_batches(policy, [4]) == [(loop_thread, 1), ("model_0", 3)]
    off = BatchPolicy(max_queue_delay_s=0.005, inline_when_idle=False)
    assert _threads_of_batches(off, [1, 4]) == [("model_0", 1), ("model_0", 1), ("model_0", 3)]


@pytest.mark.parametrize(("concurrency", "overlap"), [(1, False), (2, True)])
def test_a_model_runs_up_to_its_concurrency_of_batches_at_once(concurrency: int, overlap: bool) -> None:
    spans: list[tuple[float, float]] = []

    def run_batch(items: list[int], wants: list[bool]) -> list[int]:
        started = time.perf_counter()
        time.sleep(0.1)
        spans.append((started, time.perf_counter()))
        return items

    async def main() -> list[list[int]]:
        policy = BatchPolicy(max_batch_size=1, max_queue_delay_s=0, inline_when_idle=False)
        with ThreadPoolExecutor(concurrency) as pool:
            batcher: DynamicBatcher[int, int] = DynamicBatcher(
                "m", run_batch, policy, pool, Metrics(), concurrency=concurrency
            )
            batcher.start()
            answers = await asyncio.gather(batcher.submit([1]), batcher.submit([2]))
            await batcher.stop()
        return list(answers)

    assert asyncio.run(main()) == [[1], [2]]
    first, second = sorted(spans)
    assert (second[0] < first[1]) is overlap  # the second started before the first ended


@pytest.mark.parametrize("configured", [None, 1])
def test_the_chatbot_runs_two_batches_at_once_with_a_core_each_and_the_forecaster_one_with_every_core(
    tmp_path: Path, configured: int | None
) -> None:
    cores = min(usable_cores(), 8)
    given = {} if configured is None else {"concurrent_batches": configured}
    settings = Settings(
        model_dir=model_folder(tmp_path, ["chatbot-peri"], forecaster=True), warmup=False, **given
    )
    app = create_app(settings)
    with serve_in_thread(settings, app=app) as base:
        assert httpx.post(base + "/v1/chat", json={"message": "hello"}).status_code == 200
        served = {m.name: m for m in app.state.dataplane.repository.served()}
        threads = {
            name: model.runtime.sessions["fast"].session.get_session_options().intra_op_num_threads
            for name, model in served.items()
        }
    chat = configured or (2 if cores >= 2 else 1)
    assert {name: model.concurrency for name, model in served.items()} == {
        "chatbot-peri": chat,
        "forecaster": 1,
    }
    assert threads == {"chatbot-peri": max(1, cores // chat), "forecaster": cores}


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_a_containers_cpu_limit_is_read_from_its_cgroup(
    tmp_path: Path, files: dict[str, str], cores: float | None
) -> None:
    # cgroup v2's cpu.max, else v1's CFS quota: the limit the thread rule caps the cores at (usable_cores)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == cores
