"""Loading, refusing and stopping: corrupt artifacts, API keys, the CLI server and graceful shutdown."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from service.settings import Settings
from tests.service.helpers import free_port, model_folder, serve_in_thread, start_subprocess, wait_until


def test_a_corrupt_artifact_is_refused_and_the_others_still_serve(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = model_folder(tmp_path, ["chatbot-peri", "chatbot-pre"], copy=True)
    onnx = models / "chatbot/artifacts/chatbot-pre/fast.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    onnx.write_bytes(bytes(data))
    settings = Settings(model_dir=models, warmup=False, strict_readiness=True)
    with (
        caplog.at_level("ERROR"),
        serve_in_thread(settings, "/v2/models/chatbot-peri/ready", frozenset({"chatbot-pre"})) as base,
    ):
        assert httpx.post(base + "/v1/chat", json={"message": "i forgot my password"}).json()["intent"] == (
            "reset_password"
        )
        refused = httpx.post(base + "/v1/chat", json={"message": "hello", "model": "chatbot-pre"})
        ready = httpx.get(base + "/v2/health/ready")
        model_ready = httpx.get(base + "/v2/models/chatbot-pre/ready")
        listed = {m["id"]: m for m in httpx.get(base + "/v1/models").json()["data"]}
        metrics = httpx.get(base + "/metrics").text
    assert refused.status_code == 503
    assert refused.json()["error"].startswith("model chatbot-pre is not ready: sha256 mismatch for fast.onnx")
    assert ready.status_code == 503 and "chatbot-pre (sha256 mismatch" in ready.json()["error"]
    assert model_ready.status_code == 503
    assert listed["chatbot-pre"]["ready"] is False and listed["chatbot-pre"]["state"] == "failed"
    assert 'lnserve_model_ready{model="chatbot-pre",version="1"} 0.0' in metrics
    assert 'lnserve_model_ready{model="chatbot-peri",version="1"} 1.0' in metrics
    assert any(
        "refusing model chatbot-pre: sha256 mismatch for fast.onnx" in r.getMessage() for r in caplog.records
    )


def test_an_api_key_guards_inference_but_not_health(tmp_path: Path) -> None:
    settings = Settings(model_dir=model_folder(tmp_path, ["chatbot-peri"]), api_key="s3cret", warmup=False)
    with serve_in_thread(settings) as base:
        missing = httpx.post(base + "/v1/chat", json={"message": "hello"})
        wrong = httpx.post(
            base + "/v1/chat", json={"message": "hello"}, headers={"Authorization": "Bearer nope"}
        )
        good = httpx.post(
            base + "/v1/chat", json={"message": "hello"}, headers={"Authorization": "Bearer s3cret"}
        )
        live = httpx.get(base + "/v2/health/live")
        metrics = httpx.get(base + "/metrics").text
    assert missing.status_code == 401 and missing.json() == {"error": "missing or invalid API key"}
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401 and good.status_code == 200 and live.status_code == 200
    assert (
        'lnserve_request_failure_total{endpoint="chat",model="chatbot-peri",reason="unauthorized",version="1"} 2.0'
        in metrics
    )


def wait_for_pending(base: str, model: str, timeout_s: float = 10.0) -> None:
    line = f'lnserve_pending_requests{{model="{model}",version="1"}} 1.0'
    deadline = time.monotonic() + timeout_s
    while line not in httpx.get(base + "/metrics").text:
        assert time.monotonic() < deadline, "the request never reached the batcher"
        time.sleep(0.05)


def test_sigterm_finishes_the_in_flight_request_then_exits(tmp_path: Path) -> None:
    """`lnserve serve` as a process: a request held in the batch queue still gets its answer after SIGTERM."""
    port = free_port()
    env = {
        "LNSERVE_MODEL_DIR": str(model_folder(tmp_path, ["chatbot-peri"])),
        "LNSERVE_WARMUP": "false",
        "LNSERVE_MAX_QUEUE_DELAY_US": "1500000",
        "LNSERVE_WAIT_WHEN_IDLE": "true",  # a lone request is held for the delay
        "LNSERVE_MAX_BATCH_SIZE": "8",
    }
    log = tmp_path / "server.log"
    process = start_subprocess(port, env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(base + "/v2/health/ready", timeout_s=60, process=process)
        result: dict[str, httpx.Response] = {}
        thread = threading.Thread(
            target=lambda: result.update(
                r=httpx.post(base + "/v1/chat", json={"message": "i forgot my password"}, timeout=30)
            )
        )
        thread.start()
        wait_for_pending(base, "chatbot-peri")  # the request now waits in the batcher for 1.5 s
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        # uvicorn re-raises the SIGTERM it caught once shut down, so the exit status says "terminated".
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    assert result["r"].status_code == 200 and result["r"].json()["intent"] == "reset_password"
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/v2/health/live")
    lines = log.read_text().splitlines()
    finished = next(i for i, line in enumerate(lines) if "Finished server process" in line)
    answered = next(i for i, line in enumerate(lines) if '"POST /v1/chat 200' in line)
    assert answered < finished


def test_every_setting_is_documented_in_the_readme_settings_table() -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"| `LNSERVE_{name.upper()}` |" in text, name
        assert field.description, f"{name} has no docstring"
