"""Shared helpers for the service tests: free ports, servers in a thread or a subprocess, small model folders."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.server import uvicorn_config
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("LNSERVE_MODEL_DIR", REPO / "models"))  # the bundled models unless told
CHATBOT_ARTIFACTS = MODELS / "chatbot" / "artifacts"
FORECASTER_ARTIFACTS = MODELS / "forecaster" / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    url: str,
    timeout_s: float = 120.0,
    process: subprocess.Popen[bytes] | None = None,
    allow_failed: frozenset[str] = frozenset(),
    headers: dict[str, str] | None = None,
) -> None:
    """Poll `url` until it answers 200 and no model is still loading; fail at once when the server died or refused
    a model it should serve."""
    base = url.split("/v", 1)[0]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} was ready")
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(url, timeout=2.0).status_code == 200
            models = httpx.get(base + "/v1/models", timeout=2.0, headers=headers).json()["data"]
            failed = {
                m["id"]: m["error"] for m in models if m["state"] == "failed" and m["id"] not in allow_failed
            }
            if failed:
                raise RuntimeError(f"the server refused models: {failed}")
            if ready and all(m["state"] != "loading" for m in models):
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {timeout_s} s")


def add_version(models: Path, name: str, version: str, source: str, kind: str = "chatbot") -> Path:
    """`models/<kind>/artifacts/<name>/<version>/`: the files of the bundled artifact `source` (graphs and shared
    weights, symlinked) and its sidecar, renamed to `name`."""
    folder = models / kind / "artifacts" / name / version
    folder.mkdir(parents=True)
    origin = MODELS / kind / "artifacts" / source
    sidecar = json.loads((origin / "sidecar.json").read_text())
    sidecar["name"] = name
    for path in sorted(origin.iterdir()):
        if path.name != "sidecar.json":
            (folder / path.name).symlink_to(path)
    (folder / "sidecar.json").write_text(json.dumps(sidecar))
    return folder


def default_chatbot() -> str:
    return str(json.loads((CHATBOT_ARTIFACTS / "aliases.json").read_text())["chatbot"])


def model_folder(root: Path, chatbots: list[str], forecaster: bool = False, copy: bool = False) -> Path:
    """A `models/` folder holding only the named artifacts (symlinked, or copied when a test will damage them)."""
    models = root / "models"
    (models / "chatbot" / "artifacts").mkdir(parents=True)
    for name in ("tokenizer.json", "intents.json"):
        (models / "chatbot" / name).symlink_to(MODELS / "chatbot" / name)
    for name in chatbots:
        target = models / "chatbot" / "artifacts" / name
        if copy:
            shutil.copytree(CHATBOT_ARTIFACTS / name, target)
        else:
            target.symlink_to(CHATBOT_ARTIFACTS / name)
    aliases = {"chatbot": chatbots[0]}
    (models / "chatbot" / "artifacts" / "aliases.json").write_text(json.dumps(aliases))
    if forecaster:
        (models / "forecaster" / "artifacts").mkdir(parents=True)
        (models / "forecaster" / "artifacts" / "forecaster").symlink_to(FORECASTER_ARTIFACTS / "forecaster")
    return models


@contextlib.contextmanager
def serve_in_thread(
    settings: Settings,
    ready_path: str = "/v2/health/ready",
    allow_failed: frozenset[str] = frozenset(),
    app: FastAPI | None = None,
) -> Iterator[str]:
    """A real uvicorn server for `create_app(settings)` (or `app`) on a free port, configured as `lnserve serve`
    configures it (connection limits included); yields its base URL."""
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
    server = uvicorn.Server(uvicorn_config(settings, app or create_app(settings)))
    port = settings.port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        key = settings.api_key.get_secret_value() if settings.api_key else None
        headers = {"Authorization": f"Bearer {key}"} if key else None
        wait_until(base + ready_path, timeout_s=60, allow_failed=allow_failed, headers=headers)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def start_subprocess(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`lnserve serve` in a child process (the console script's entry point, run by this interpreter)."""
    command = [
        sys.executable,
        "-c",
        "from service.cli import app; app()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )


@contextlib.contextmanager
def served_subprocess(
    env: dict[str, str], log_path: Path, timeout_s: float = 120.0, headers: dict[str, str] | None = None
) -> Iterator[str]:
    """`lnserve serve` in a child process (`start_subprocess`) until it is ready, then its base URL; SIGTERM and
    wait on exit. A server that does not become ready is killed and the tail of its log raised."""
    port = free_port()
    process = start_subprocess(port, env, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(base + "/v2/health/ready", timeout_s=timeout_s, process=process, headers=headers)
    except Exception:
        process.kill()
        raise RuntimeError(f"server did not become ready:\n{log_path.read_text()[-4000:]}") from None
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
