"""Debian's chromium for every browser test of this folder (skipped, with the reason, where it cannot be had)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.inspector.browser import chromium, ensure_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    why = ensure_chromium()
    if why is not None:
        pytest.skip(f"no chromium for the browser tests: {why}")
    with chromium() as instance:
        yield instance
