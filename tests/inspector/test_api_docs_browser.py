"""`/docs` (Swagger UI) and `/redoc` render in a real browser that may reach nothing but the server itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route, expect

from service.settings import Settings
from tests.service.helpers import model_folder, serve_in_thread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    models = model_folder(tmp_path_factory.mktemp("docs"), ["chatbot-peri"])
    with serve_in_thread(Settings(model_dir=models, warmup=False)) as base:
        yield base


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
def test_api_docs_render_air_gapped(browser: Browser, server: str, path: str, rendered: str) -> None:
    elsewhere: list[str] = []

    def air_gap(route: Route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", air_gap)
    page.goto(server + path)
    expect(page.locator(rendered).first).to_contain_text("lnserve", timeout=20_000)
    if path == "/docs":  # the operations of the model repository extension are listed with their ids
        expect(page.locator("#operations-model-repository-repository_model_load")).to_be_visible()
    page.close()
    # ReDoc's "powered by" badge points at its logo on redoc.ly: decorative, and the page renders without it.
    assert [url for url in elsewhere if not url.endswith("/redoc/logo-mini.svg")] == []


def test_the_docs_assets_ship_in_a_package() -> None:
    import fastapi_offline

    static = Path(fastapi_offline.__file__).parent / "static"
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"} <= {
        p.name for p in static.iterdir()
    }
