"""Drive an HTTP endpoint with ``wrk`` (fixed concurrency, fixed duration) and read its summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "post.lua"


@dataclass(frozen=True)
class Load:
    requests: int  # completed, any status
    errors: int  # non-2xx/3xx answers, socket errors and timeouts
    seconds: float
    p50_ms: float
    p99_ms: float
    read: int = 0  # socket read errors (an answer cut off)
    connect: int = 0  # connections refused
    write: int = 0  # requests that could not be written
    status: int = 0  # answers other than 2xx/3xx

    @property
    def ok_per_s(self) -> float:
        return max(0, self.requests - self.errors) / self.seconds


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return path


def run_wrk(url: str, bodies: list[str], concurrency: int, seconds: float, timeout_s: int = 10) -> Load:
    """``concurrency`` connections that each send the next body as soon as the previous answer arrives."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("benchmarks only send traffic to 127.0.0.1")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(bodies) + "\n")
    try:
        cmd = [
            require_wrk(),
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            f"--timeout={timeout_s}s",
            "-s",
            str(LUA),
            url,
        ]
        out = subprocess.run(
            cmd,
            env={**os.environ, "BENCH_BODIES": f.name},
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(f.name)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    errors = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return Load(
        r["requests"],
        errors,
        r["duration_us"] / 1e6,
        r["p50_us"] / 1e3,
        r["p99_us"] / 1e3,
        r["read"],
        r["connect"],
    )
