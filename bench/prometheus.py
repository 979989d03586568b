"""A real Prometheus server (Debian's package, scripts/ensure-prometheus.sh) scraping one URL every second."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.servers import _stop, free_port

Query = Callable[[str], list[dict[str, Any]]]


@contextmanager
def scraping(target: str, timeout_s: float = 60.0) -> Iterator[Query]:
    """Prometheus scraping `target` (http://127.0.0.1:PORT) every second; yields an instant-query function."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit(
            "prometheus is not installed: scripts/ensure-prometheus.sh (or pass --no-prometheus)"
        )
    with tempfile.TemporaryDirectory(prefix="lnserve-prometheus-") as tmp:
        folder, port = Path(tmp), free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "lnserve", "static_configs": [{"targets": [target.removeprefix("http://")]}]}
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        command = [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with (folder / "prometheus.log").open("wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"

        def query(expr: str) -> list[dict[str, Any]]:
            body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
            if body.get("status") != "success":
                raise RuntimeError(f"{expr}: {body}")
            return list(body["data"]["result"])

        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    if query('up{job="lnserve"} == 1'):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"prometheus did not scrape {target}: {(folder / 'prometheus.log').read_text()}"
                    )
                time.sleep(0.5)
            yield query
        finally:
            _stop(proc)
