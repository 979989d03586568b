"""One bad request never hurts another: poison requests mixed into concurrent good traffic fail alone, a request
larger than a request may be is refused for good (413), and a large request cannot starve single ones."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import numpy as np
import pytest

from service.settings import Settings
from tests.service.helpers import model_folder, serve_in_thread
from tests.service.test_service_batching import TEXTS
from tests.service.test_service_protocols import sample

CONCURRENCY = 32
SURROGATE = "pass \ud800 word"
NEAR_MAX = [3.0e38, 3.1e38, 3.2e38, 3.0e38, 3.3e38, 3.0e38, 3.2e38, 3.3e38]


def v2_series(*rows: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "series", "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                        "data": [v for row in rows for v in row]}]}  # fmt: skip


def v2_text(*texts: str) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": list(texts)}]}


def series(i: int) -> list[float]:
    t = np.arange(36)
    return (100 + i + t + 10 * np.sin(2 * np.pi * t / 12)).round(2).tolist()


GOOD: list[tuple[str, dict[str, Any]]] = [
    *(("/v1/chat", {"message": text}) for text in TEXTS),
    *(("/v1/chat/completions", {"messages": [{"role": "user", "content": text}]}) for text in TEXTS[:4]),
    *(("/v2/models/chatbot/infer", v2_text(a, b)) for a, b in zip(TEXTS[::2], TEXTS[1::2], strict=True)),
    *(("/v1/forecast", {"series": series(i), "horizon": 6}) for i in range(4)),
    *(("/v2/models/forecaster/infer", v2_series(series(i), series(i + 1))) for i in range(4)),
]
# (path, body, status, error): the bad request and exactly what it must get
POISON: list[tuple[str, dict[str, Any], int, str]] = [
    ("/v1/chat", {"message": SURROGATE}, 422,
     "message: must be valid Unicode text; character 5 is an unpaired surrogate"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": SURROGATE}]}, 422,
     "messages[0].user.content.text: must be valid Unicode text; character 5 is an unpaired surrogate"),
    ("/v2/models/chatbot/infer", v2_text("hello", SURROGATE), 400,
     "request body is not valid JSON (unexpected end of hex escape at line 1 column 95)"),
    ("/v2/models/chatbot/infer", {"inputs": [{"name": "text", "shape": [0], "datatype": "BYTES", "data": []}]},
     422, "inputs.text: shape [0] holds no values; give at least one"),
    # reaches the batch: its forecast overflows float32 there, next to good series
    ("/v2/models/forecaster/infer", v2_series(NEAR_MAX), 422,
     "model forecaster produced a non-finite forecast for this series"),
    ("/v1/forecast", {"series": [1.0] * 7 + [3.3e38]}, 422, "series[7]: must lie within ±1e+30"),
]  # fmt: skip


JSON = {"content-type": "application/json"}


def encode(body: dict[str, Any]) -> bytes:
    """JSON as a client writes it: non-ASCII escaped, so a lone surrogate travels as `\\ud800`."""
    return json.dumps(body).encode()


def first_error(body: dict[str, Any]) -> str:
    return str(body.get("error", ""))


async def run_mixed(base: str, plan: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """Send every request of `plan` with CONCURRENCY workers; responses in plan order."""
    results: list[httpx.Response | None] = [None] * len(plan)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(plan)):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as http:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                path, body = plan[i]
                results[i] = await http.post(path, content=encode(body), headers=JSON)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return [r for r in results if r is not None]


def test_poison_requests_among_32_concurrent_good_ones_fail_alone(server: str, client: httpx.Client) -> None:
    alone = [client.post(path, content=encode(body), headers=JSON) for path, body in GOOD]
    assert all(r.status_code == 200 for r in alone)
    rng = random.Random(16)
    plan = [(i, False) for i in range(len(GOOD))] * 8 + [(i, True) for i in range(len(POISON))] * 10
    rng.shuffle(plan)
    before = client.get("/metrics").text
    responses = asyncio.run(
        run_mixed(server, [POISON[i][:2] if bad else GOOD[i] for i, bad in plan])  # type: ignore[misc]
    )
    after = client.get("/metrics").text
    failed_good = [
        (GOOD[i][0], r.status_code, r.text[:200])
        for (i, bad), r in zip(plan, responses, strict=True)
        if not bad and (r.status_code != 200 or not same_answer(r.json(), alone[i].json()))
    ]
    assert failed_good == []
    for (i, bad), r in zip(plan, responses, strict=True):
        if bad:
            assert (r.status_code, first_error(r.json())) == POISON[i][2:]
    nonfinite = sum(1 for i, bad in plan if bad and "non-finite" in POISON[i][3])
    assert sample(after, "lnserve_nonfinite_outputs_total", model="forecaster") == (
        sample(before, "lnserve_nonfinite_outputs_total", model="forecaster") + nonfinite
    )


def same_answer(batched: dict[str, Any], alone: dict[str, Any]) -> bool:
    """The answer a request gets among others is the one it gets alone (float noise aside)."""
    if "intent" in batched:
        return bool(
            batched["intent"] == alone["intent"] and abs(batched["confidence"] - alone["confidence"]) < 1e-5
        )
    if "choices" in batched:
        return bool(batched["choices"][0]["message"] == alone["choices"][0]["message"])
    if "forecast" in batched:
        return bool(np.allclose(batched["forecast"], alone["forecast"], rtol=1e-5))
    outputs = {o["name"]: o["data"] for o in batched["outputs"]}
    expected = {o["name"]: o["data"] for o in alone["outputs"]}
    return all(
        np.allclose(outputs[k], v, rtol=1e-4, atol=1e-5) if not isinstance(v[0], str) else outputs[k] == v
        for k, v in expected.items()
    )


@pytest.fixture(scope="module")
def one_chatbot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = Settings(
        model_dir=model_folder(tmp_path_factory.mktemp("fair"), ["chatbot-peri"]), warmup=False
    )
    with serve_in_thread(settings) as base:
        yield base


def test_more_items_than_a_request_may_hold_is_413_naming_the_limit(one_chatbot: str) -> None:
    largest = httpx.post(one_chatbot + "/v2/models/chatbot/infer", json=v2_text(*["hello"] * 256), timeout=60)
    too_many = httpx.post(one_chatbot + "/v2/models/chatbot/infer", json=v2_text(*["hello"] * 257))
    assert largest.status_code == 200
    assert too_many.status_code == 413 and "retry-after" not in too_many.headers
    assert too_many.json() == {
        "error": "this request holds 257 items; model chatbot-peri takes at most 256 per request "
        "(LNSERVE_MAX_ITEMS_PER_REQUEST, at most LNSERVE_MAX_QUEUE_SIZE)"
    }


def test_single_chats_sent_behind_a_request_of_256_long_texts_do_not_wait_for_all_of_it(
    one_chatbot: str,
) -> None:
    long_text = " ".join(TEXTS)  # longer than the model's 64 tokens: every item fills the longest bucket
    big_body = v2_text(*[long_text] * 256) | {"outputs": [{"name": "intent"}]}

    async def scenario() -> tuple[float, float]:
        async with httpx.AsyncClient(base_url=one_chatbot, timeout=60.0) as http:

            async def batches() -> float:
                return sample(
                    (await http.get("/metrics")).text, "lnserve_batch_size_count", model="chatbot-peri"
                )

            before = await batches()
            big = asyncio.create_task(http.post("/v2/models/chatbot/infer", json=big_body))
            pending = "lnserve_pending_requests"
            while sample((await http.get("/metrics")).text, pending, model="chatbot-peri") != 256.0:
                await asyncio.sleep(0.005)
            singles = await asyncio.gather(*(http.post("/v1/chat", json={"message": t}) for t in TEXTS[:8]))
            when_singles_done = await batches() - before
            assert all(r.status_code == 200 for r in singles) and (await big).status_code == 200
            return when_singles_done, await batches() - before

    when_singles_done, in_all = asyncio.run(scenario())
    # Batches are formed round-robin over requests: the singles share the next batch with the large request's items
    # instead of queueing behind all of them (first come, first served: after its 8 batches of 32).
    assert in_all >= 8
    assert when_singles_done < 8
