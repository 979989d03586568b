"""The versioned repository and model control, against real servers: version policies and routes, aliases by
configuration, explicit load / reload / unload through tritonclient, a reload under 32 concurrent clients that
fails no request, a failed load that keeps the old version serving, and poll mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from service.settings import Settings, VersionPolicy
from tests.service.helpers import add_version, model_folder, serve_in_thread, served_subprocess
from tests.service.test_service_protocols import sample

TEXTS = ["i forgot my password", "hello there", "i want a refund", "how do i add a teammate", "bye"]


def chat(base: str, model: str, **extra: object) -> httpx.Response:
    return httpx.post(base + "/v1/chat", json={"message": "i forgot my password", "model": model, **extra})


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ({"latest": 1}, ["3"]),
        ({"latest": 2}, ["3", "2"]),
        ({"all": True}, ["3", "2", "1"]),
        ({"specific": [1, 3, 9]}, ["3", "1"]),
    ],
)
def test_a_version_policy_selects_the_versions_served(policy: dict[str, object], served: list[str]) -> None:
    assert VersionPolicy.model_validate(policy).select(["1", "3", "2"]) == served


def test_a_version_policy_names_exactly_one_rule() -> None:
    with pytest.raises(ValueError, match="give exactly one of latest, all, specific"):
        VersionPolicy.model_validate({"latest": 1, "all": True})


def test_versions_are_served_by_policy_on_their_own_routes_with_aliases_and_labels(tmp_path: Path) -> None:
    models = model_folder(tmp_path, ["chatbot-peri"])  # the unversioned layout: version 1
    for version, source in (("1", "chatbot-post"), ("2", "chatbot-peri"), ("3", "chatbot-pre")):
        add_version(models, "chat", version, source)
    settings = Settings(
        model_dir=models,
        warmup=False,
        model_settings={"chat": {"version_policy": {"latest": 2}}},
        aliases={"chat-stable": "chat/2"},
    )
    with serve_in_thread(settings) as base:
        default = chat(base, "chat").json()
        stable = chat(base, "chat-stable").json()
        legacy = chat(base, "chatbot").json()
        v2 = httpx.post(
            base + "/v2/models/chat/versions/2/infer",
            json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]},
        ).json()
        retired = httpx.get(base + "/v2/models/chat/versions/1/ready")
        metadata = httpx.get(base + "/v2/models/chat").json()
        index = httpx.post(base + "/v2/repository/index").json()
        listed = {m["id"]: m for m in httpx.get(base + "/v1/models").json()["data"]}
        metrics = httpx.get(base + "/metrics").text
    assert (default["artifact"], default["version"]) == ("chat", "3")
    assert (stable["artifact"], stable["version"]) == ("chat", "2")
    assert (legacy["artifact"], legacy["version"]) == ("chatbot-peri", "1")
    assert v2["model_name"] == "chat" and v2["model_version"] == "2"
    assert retired.status_code == 404
    assert retired.json() == {"error": "model 'chat' has no version '1' (it serves 2, 3)"}
    assert metadata["versions"] == ["2", "3"] and metadata["version"] == "3"
    assert [(r["name"], r.get("version"), r["state"]) for r in index] == [
        ("chat", "2", "READY"),
        ("chat", "3", "READY"),
        ("chatbot-peri", "1", "READY"),
    ]
    assert listed["chat-stable"]["alias_of"] == "chat" and listed["chat"]["versions"] == ["2", "3"]
    assert sample(metrics, "lnserve_model_ready", model="chat", version="3") == 1.0
    assert sample(metrics, "lnserve_request_success_total", model="chat", version="2", endpoint="chat") == 1.0
    assert sample(metrics, "lnserve_request_success_total", model="chat", version="3", endpoint="chat") == 1.0
    assert 'lnserve_model_ready{model="chat",version="1"}' not in metrics


@pytest.fixture
def explicit_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`lnserve serve` in explicit mode with warm-up, loading `chat` (version 1 = chatbot-post) at start."""
    models = model_folder(tmp_path, ["chatbot-peri"])
    add_version(models, "chat", "1", "chatbot-post")
    env = {
        "LNSERVE_MODEL_DIR": str(models),
        "LNSERVE_MODEL_CONTROL": "explicit",
        "LNSERVE_LOAD_MODELS": '["chat"]',
        "LNSERVE_REQUIRED_MODELS": '["chat"]',
        "LNSERVE_ACTIVATION_SAMPLE_RATE": "0",
    }
    with served_subprocess(env, tmp_path / "server.log") as base:
        yield base, models


async def hammer(base: str, clients: int, stop: asyncio.Event, results: list[tuple[float, int, str]]) -> None:
    """`clients` connections each posting the next message as soon as the answer came: (time, status, version)."""

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            n = i
            while not stop.is_set():
                response = await http.post(
                    "/v1/chat", json={"message": TEXTS[n % len(TEXTS)], "model": "chat"}
                )
                version = response.json().get("version", "") if response.status_code == 200 else response.text
                results.append((time.monotonic(), response.status_code, version))
                n += 1

    await asyncio.gather(*(client(i) for i in range(clients)))


def test_reload_under_32_concurrent_clients_fails_no_request(explicit_server: tuple[str, Path]) -> None:
    """A new version, a reload of it and a broken version, each loaded while 32 clients keep sending."""
    base, models = explicit_server
    events: dict[str, tuple[float, float, httpx.Response]] = {}

    async def load(control: httpx.AsyncClient, event: str) -> None:
        sent = time.monotonic()
        events[event] = (sent, 0.0, await control.post("/v2/repository/models/chat/load"))
        events[event] = (sent, time.monotonic(), events[event][2])

    results: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        clients = asyncio.create_task(hammer(base, 32, stop, results))
        async with httpx.AsyncClient(base_url=base, timeout=120) as control:
            while len(results) < 64:
                await asyncio.sleep(0.05)
            add_version(models, "chat", "2", "chatbot-peri")
            await load(control, "new")
            await asyncio.sleep(0.5)
            await load(control, "reload")
            broken = add_version(models, "chat", "3", "chatbot-pre")
            (broken / "fast.onnx").unlink()
            (broken / "fast.onnx").write_bytes(b"not an onnx graph")
            await load(control, "broken")
            await asyncio.sleep(0.5)
        stop.set()
        await clients

    asyncio.run(scenario())
    failures = [r for r in results if r[1] != 200]
    assert len(results) > 100 and failures == []
    assert events["new"][2].status_code == 200 and events["reload"][2].status_code == 200
    broken = events["broken"][2]
    assert broken.status_code == 400
    assert broken.json()["error"].startswith(
        "failed to load model 'chat': version 3: size mismatch for fast.onnx"
    )
    assert broken.json()["error"].endswith("(versions serving: 2)")
    before = [v for t, _, v in results if t < events["new"][0]]
    after = [v for t, _, v in results if t > events["new"][1] + 0.2]
    assert set(before) == {"1"} and set(after) == {"2"}
    during = [r for r in results if any(sent <= r[0] <= done for sent, done, _ in events.values())]
    print(f"\n{len(results)} requests, {len(failures)} failed; {len(during)} answered during the 3 loads")
    index = httpx.post(base + "/v2/repository/index").json()
    assert [(r["name"], r.get("version"), r["state"]) for r in index][:2] == [
        ("chat", "2", "READY"),
        ("chat", "3", "UNAVAILABLE"),
    ]
    metrics = httpx.get(base + "/metrics").text
    assert sample(metrics, "lnserve_model_ready", model="chat", version="2") == 1.0
    assert 'lnserve_model_ready{model="chat",version="3"} 0.0' in metrics
    assert 'lnserve_model_ready{model="chat",version="1"}' not in metrics


def test_explicit_load_and_unload_through_tritonclient(explicit_server: tuple[str, Path]) -> None:
    base, _ = explicit_server
    client = triton.InferenceServerClient(base.removeprefix("http://"))
    assert client.is_model_ready("chat") and not client.is_model_ready("chatbot-peri")
    assert {(m["name"], m["state"]) for m in client.get_model_repository_index()} == {
        ("chat", "READY"),
        ("chatbot-peri", "UNAVAILABLE"),
    }
    client.load_model("chatbot-peri")
    assert (
        client.is_model_ready("chatbot-peri") and chat(base, "chatbot").json()["artifact"] == "chatbot-peri"
    )
    client.unload_model("chatbot-peri")
    assert not client.is_model_ready("chatbot-peri")
    assert chat(base, "chatbot-peri").json() == {
        "error": "model 'chatbot-peri' is not loaded (POST /v2/repository/models/chatbot-peri/load loads it)"
    }
    with pytest.raises(InferenceServerException, match="no model 'nope' in the repository"):
        client.load_model("nope")
    assert httpx.get(base + "/v2/health/ready").status_code == 200  # chat, the required model, still serves


def test_load_and_unload_are_refused_outside_explicit_mode(tmp_path: Path) -> None:
    settings = Settings(model_dir=model_folder(tmp_path, ["chatbot-peri"]), warmup=False)
    with serve_in_thread(settings) as base:
        response = httpx.post(base + "/v2/repository/models/chatbot-peri/unload")
        still = chat(base, "chatbot-peri").status_code
    assert response.status_code == 403 and response.json() == {
        "error": "explicit model unload is not allowed in model control mode 'none' "
        "(LNSERVE_MODEL_CONTROL=explicit allows it)"
    }
    assert still == 200


def test_poll_mode_serves_a_new_version_and_drops_a_removed_model(tmp_path: Path) -> None:
    models = model_folder(tmp_path, ["chatbot-peri"])
    add_version(models, "chat", "1", "chatbot-post")
    settings = Settings(model_dir=models, warmup=False, model_control="poll", repository_poll_s=0.2)

    def until(condition: object, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, "the poll never picked up the change"
            time.sleep(0.1)

    with serve_in_thread(settings) as base:
        assert chat(base, "chat").json()["version"] == "1"
        add_version(models, "chat", "2", "chatbot-pre")
        until(lambda: chat(base, "chat").json().get("version") == "2")
        (models / "chatbot" / "artifacts" / "chatbot-peri").unlink()  # a symlink to the bundled artifact
        until(lambda: chat(base, "chatbot-peri").status_code == 404)
        index = httpx.post(base + "/v2/repository/index", json={"ready": True}).json()
    assert index == [{"name": "chat", "version": "2", "state": "READY", "reason": ""}]


def test_a_sidecar_that_does_not_parse_is_a_failed_model_with_a_ready_series(tmp_path: Path) -> None:
    models = model_folder(tmp_path, ["chatbot-peri"])
    broken = models / "chatbot" / "artifacts" / "chatbot-bad"
    broken.mkdir()
    (broken / "sidecar.json").write_text(json.dumps({"format_version": 2, "name": "chatbot-bad"}))
    settings = Settings(model_dir=models, warmup=False)
    with serve_in_thread(settings, allow_failed=frozenset({"chatbot-bad"})) as base:
        ready = httpx.get(base + "/v2/health/ready")
        model_ready = httpx.get(base + "/v2/models/chatbot-bad/ready")
        metrics = httpx.get(base + "/metrics").text
    assert ready.status_code == 200  # the default chatbot serves: only the broken model is degraded
    assert model_ready.status_code == 503
    assert model_ready.json()["error"].startswith(
        "model chatbot-bad is not ready: invalid sidecar: kind: Field"
    )
    assert 'lnserve_model_ready{model="chatbot-bad",version="1"} 0.0' in metrics
