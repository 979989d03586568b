"""Real servers for the HTTP benchmarks: subprocesses on free loopback ports, always stopped on the way out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PIDS: dict[str, int] = {}  # base URL -> pid of the server started for it


@dataclass(frozen=True)
class ServerSpec:
    """A server to start: ``lnserve`` with LNSERVE_* overrides, or the no-op app (``noop=True``)."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    noop: bool = False
    cwd: Path | None = None  # another checkout of lnserve (its code runs; this interpreter and its packages)

    def command(self, port: int) -> list[str]:
        if self.noop:
            return [sys.executable, "-m", "bench.noop_app", "--host", HOST, "--port", str(port)]
        # The CLI through this interpreter, not the `lnserve` script: hosts that run the code from a checkout (the
        # GPU check) have no installed script.
        serve = "from service.cli import app; app()"
        return [sys.executable, "-c", serve, "serve", "--host", HOST, "--port", str(port)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def clean_env(overrides: dict[str, str]) -> dict[str, str]:
    """The caller's environment without its LNSERVE_* settings (so results do not depend on the shell) except
    LNSERVE_MODEL_DIR (which artifacts to serve), plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LNSERVE_") or k == "LNSERVE_MODEL_DIR"}
    return {**env, **overrides}


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def started(spec: ServerSpec, log_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = log_dir / f"{spec.name.replace(' ', '_').replace('/', '_')}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            spec.command(port),
            cwd=spec.cwd or ROOT,
            env=clean_env(spec.env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{HOST}:{port}"
    PIDS[url] = proc.pid
    try:
        yield url, proc, log
    finally:
        _stop(proc)
        PIDS.pop(url, None)


def cpu_seconds(url: str) -> float:
    """CPU time (user + system, every thread) the server at ``url`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{PIDS[url]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running(
    specs: list[ServerSpec], timeout_s: float = 300.0, log_dir: Path | None = None
) -> Iterator[dict[str, str]]:
    """Start every server at once, wait until each answers ``/v2/health/ready``; yields name -> base URL. Their logs
    go to ``log_dir`` (``<name>.log``, kept) or to a temporary folder.

    SIGTERM becomes an exit while they run, so the servers are stopped on the way out even then (a background job
    ignores SIGINT)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        stack.callback(signal.signal, signal.SIGTERM, previous)
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lnserve-bench-")))
        servers = {s.name: stack.enter_context(started(s, log_dir)) for s in specs}
        deadline = time.monotonic() + timeout_s
        for name, (url, proc, log) in servers.items():
            while not is_ready(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"server {name!r} did not become ready:\n{tail}")
                time.sleep(0.5)
        yield {name: url for name, (url, _, _) in servers.items()}


def batch_totals(url: str) -> tuple[float, float] | None:
    """Sum and count of ``lnserve_batch_size`` over every model (None for a server without those metrics)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for key in totals:
            if line.startswith(f"lnserve_batch_size_{key}{{"):
                totals[key] += float(line.rsplit(" ", 1)[1])
    return totals["sum"], totals["count"]
