"""Markdown tables (printed, and pasted into docs/benchmarks.md) and an optional JSON dump of the raw figures."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, rule, *body])


def load_cells(c: int, name: str, point: dict[str, float]) -> list[str]:
    """The first cells of a load table's row: concurrency, server, req/s (2xx), p50 and p99 in ms."""
    return [str(c), name, f"{point['ok_per_s']:.0f}", f"{point['p50_ms']:.2f}", f"{point['p99_ms']:.2f}"]


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, load avg {load}"


def header(title: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"## {title}\n{now}; {machine()}\n"


def dump_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
