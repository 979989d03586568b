"""The command line and the process: version, help that lists every setting, one-line configuration errors, an
empty model folder, SIGHUP, and an artifact folder that moves away while the server runs."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from service import __version__
from service.cli import app
from service.settings import Settings
from tests.service.helpers import free_port, model_folder, serve_in_thread, start_subprocess

runner = CliRunner()


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"lnserve {__version__}\n"


def test_serve_help_lists_every_setting_with_its_variable_and_default() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = default if isinstance(default, str) else json.dumps(default, default=str)
        assert f"LNSERVE_{name.upper()} = {shown}: " in result.output, name


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (["--port", "99999"], {}, "LNSERVE_PORT=99999: Input should be less than or equal to 65535"),
        ([], {"LNSERVE_MAX_BATCH_SIZE": "abc"},
         "LNSERVE_MAX_BATCH_SIZE='abc': Input should be a valid integer, unable to parse string as an integer"),
        ([], {"LNSERVE_LOG_LEVEL": "loud"},
         "LNSERVE_LOG_LEVEL='loud': Value error, must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ([], {"LNSERVE_MODEL_SETTINGS": '{"chatbot": {"max_batch_size": 0}}'},
         "LNSERVE_MODEL_SETTINGS (chatbot.max_batch_size)=0: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_line_and_exit_status_2(args: list[str], env: dict[str, str], line: str) -> None:
    result = runner.invoke(app, ["serve", *args], env=env)
    assert result.exit_code == 2
    assert result.output == f"lnserve: invalid settings: {line}\n"


def test_an_empty_model_folder_warns_stays_not_ready_and_sighup_does_not_stop_the_server(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    port, log = free_port(), tmp_path / "server.log"
    process = start_subprocess(port, {"LNSERVE_MODEL_DIR": str(empty)}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(base + "/v2/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        ready = httpx.get(base + "/v2/health/ready")
        process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        alive = process.poll() is None
        live = httpx.get(base + "/v2/health/live")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert ready.status_code == 503 and ready.json() == {
        "error": f"not ready: models (no models found in {empty})"
    }
    assert alive and live.status_code == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = [line["message"] for line in lines if line["level"] == "warning"]
    assert (
        f"no models found in {empty} (looked for <kind>/artifacts/<name>/[<version>/]sidecar.json); "
        "the server will not be ready" in warnings
    )
    assert "SIGHUP received and ignored; the server keeps serving (stop it with SIGTERM)" in warnings


def test_models_stay_listed_and_served_when_their_folder_moves_away(tmp_path: Path) -> None:
    models = model_folder(tmp_path, ["chatbot-peri"])
    with serve_in_thread(Settings(model_dir=models, warmup=False)) as base:
        before = httpx.get(base + "/v1/models").json()
        (models / "chatbot/artifacts/chatbot-peri").rename(tmp_path / "elsewhere")
        after = httpx.get(base + "/v1/models")
        chat = httpx.post(base + "/v1/chat", json={"message": "i forgot my password"})
    assert after.status_code == 200 and after.json() == before
    assert chat.status_code == 200 and chat.json()["intent"] == "reset_password"


def test_a_request_on_an_idle_keep_alive_connection_just_after_sigterm_is_answered(tmp_path: Path) -> None:
    """uvicorn alone closes idle connections at once on shutdown, cutting off a request already on its way."""
    empty = tmp_path / "models"
    empty.mkdir()
    port, log = free_port(), tmp_path / "server.log"
    process = start_subprocess(port, {"LNSERVE_MODEL_DIR": str(empty)}, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                time.sleep(0.1)
        with sock:
            request = f"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
            sock.sendall(request)
            first = http.client.HTTPResponse(sock)
            first.begin()
            first.read()
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the server is shutting down; this connection is idle
            sock.sendall(request)
            second = http.client.HTTPResponse(sock)
            second.begin()
            body = second.read()
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    assert first.status == 200 and first.getheader("connection") is None
    assert (
        second.status == 200
        and second.getheader("connection") == "close"
        and json.loads(body) == {"live": True}
    )
