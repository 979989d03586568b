"""Debian's chromium driven by Playwright (never `playwright install`: the browser comes from apt through
scripts/ensure-chromium.sh, which `make test` runs)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("LNSERVE_CHROMIUM", "/usr/bin/chromium"))
# Headless, as root, and quiet on a machine without a network: no background requests to Google's hosts.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ensure_chromium() -> str | None:
    """None when chromium is there (installing it if it can), else why not."""
    if CHROMIUM.exists():
        return None
    installer = subprocess.run(
        [str(ROOT / "scripts" / "ensure-chromium.sh")], capture_output=True, text=True, timeout=900
    )
    return None if CHROMIUM.exists() else installer.stderr.strip() or "chromium is not installed"


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
