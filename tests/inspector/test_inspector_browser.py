"""The activation inspector in a real browser (Debian's chromium through Playwright) against a real server: the
charts show exactly what the API answers, for every chatbot the server lists, and nothing is fetched from
elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect
from pydantic import SecretStr

from models.sidecar import read
from service.settings import Settings
from tests.service.helpers import CHATBOT_ARTIFACTS, model_folder, serve_in_thread

pytestmark = pytest.mark.timeout(300)
STATISTICS = ("mean", "std", "rms", "abs_mean", "abs_max")
SERIES = [float(100 + 10 * (t % 12) + t) for t in range(48)]
KEY = "inspector-secret"


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "activation_sample_rate": 1.0,
        "warmup": False,
        "intra_op_threads": 1,
        "log_format": "text",
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_in_thread(settings()) as base:
        yield base


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/inspector")
    yield page
    page.close()
    assert not errors, errors


def chatbots(server: str) -> list[str]:
    models = httpx.get(f"{server}/v1/models").json()["data"]
    return sorted(m["id"] for m in models if m["kind"] == "chatbot" and m["alias_of"] is None)


def drawn(page: Page, container: str, stat: str, model: str) -> list[float]:
    points = page.locator(f'{container} svg[data-stat="{stat}"] circle.point[data-model="{model}"]')
    return [float(v) for v in points.evaluate_all("nodes => nodes.map(n => n.dataset.value)")]


def test_chat_tab_answers_with_every_chatbot_and_draws_the_apis_statistics(page: Page, server: str) -> None:
    message = "i was charged twice for my subscription"
    page.fill("#chat-message", message)
    page.click("#chat-form button")
    expect(page.locator("#chat-charts")).to_have_attribute("data-state", "done", timeout=30_000)
    variants = chatbots(server)
    assert len(variants) >= 3
    cards = page.locator("#chat-answers article.variant")
    assert sorted(cards.evaluate_all("nodes => nodes.map(n => n.dataset.model)")) == variants
    assert page.locator("#chat-charts svg.layer-chart").count() == len(STATISTICS)
    for model in variants:
        answer = httpx.post(
            f"{server}/v1/chat", json={"message": message, "model": model, "return_activations": True}
        ).json()
        card = page.locator(f'#chat-answers article[data-model="{model}"]')
        expect(card.locator(".intent")).to_have_text(answer["intent"])
        assert float(card.locator(".confidence").get_attribute("data-value") or "nan") == pytest.approx(
            answer["confidence"], abs=1e-6
        )
        layers = answer["activations"]["layers"]
        for stat in STATISTICS:
            assert drawn(page, "#chat-charts", stat, model) == pytest.approx(
                [layer[stat] for layer in layers], rel=1e-6, abs=1e-9
            )
        # the reference band of each model: one polygon per statistic
        assert page.locator(f'#chat-charts polygon.band[data-model="{model}"]').count() == len(STATISTICS)
    assert page.locator("#chat-charts").get_attribute("data-layers") == str(len(layers))


def test_forecast_tab_draws_the_fan_chart_and_the_forecasters_layers(page: Page, server: str) -> None:
    page.click("#tab-forecast")
    page.fill("#forecast-series", ", ".join(f"{v:g}" for v in SERIES))
    page.fill("#forecast-horizon", "6")
    page.click("#forecast-form button[type=submit]")
    expect(page.locator("#forecast-charts")).to_have_attribute("data-state", "done", timeout=30_000)
    answer = httpx.post(
        f"{server}/v1/forecast",
        json={"series": SERIES, "horizon": 6, "season_length": 12, "return_activations": True},
    ).json()
    median = page.locator("#fan-chart polyline.median").get_attribute("data-values") or "[]"
    assert [float(v) for v in median.strip("[]").split(",")] == pytest.approx(answer["forecast"], rel=1e-6)
    levels = sorted(float(q) for q in answer["quantiles"])
    bands = page.locator("#fan-chart polygon.fan")
    assert bands.count() == len(levels) // 2
    assert float(bands.first.get_attribute("data-lower") or "nan") == levels[0]
    for stat in STATISTICS:
        assert drawn(page, "#forecast-charts", stat, "forecaster") == pytest.approx(
            [layer[stat] for layer in answer["activations"]["layers"]], rel=1e-6, abs=1e-9
        )


def test_forecast_tab_shows_the_apis_error_for_a_short_series(page: Page) -> None:
    page.click("#tab-forecast")
    page.fill("#forecast-series", "1, 2, 3")
    page.click("#forecast-form button[type=submit]")
    expect(page.locator("#forecast-error")).to_have_text(
        "series: List should have at least 8 items after validation, not 3"
    )


def test_live_tab_heatmap_and_table_come_from_the_windowed_api(page: Page, server: str) -> None:
    model = "chatbot-pre"
    for text in ("hello", "where is my invoice", "Привет, у меня не работает вход"):
        httpx.post(f"{server}/v1/chat", json={"message": text, "model": model})
    page.click("#tab-live")
    page.select_option("#live-model", model)
    n_layers = len(read(CHATBOT_ARTIFACTS / model / "sidecar.json").layers)
    expect(page.locator("#live-table tbody tr")).to_have_count(n_layers, timeout=30_000)
    snapshot = httpx.get(f"{server}/v1/models/{model}/activations", params={"window_s": 60}).json()
    cells = page.locator("#drift-heatmap rect.cell")
    columns = cells.evaluate_all("nodes => Math.max(...nodes.map(n => Number(n.dataset.column)))") + 1
    newest = page.locator(f'#drift-heatmap rect.cell[data-column="{columns - 1}"]')
    drift = [float(v) for v in newest.evaluate_all("nodes => nodes.map(n => n.dataset.drift)")]
    assert drift == pytest.approx([layer["drift"] for layer in snapshot["layers"]], rel=1e-6)
    assert cells.count() == columns * len(snapshot["layers"]) and columns >= 2  # the past columns backfilled
    assert int(page.locator("#live-samples").get_attribute("data-samples") or -1) == snapshot["samples"] >= 3
    first = page.locator("#live-table tbody tr").first
    expect(first.locator("td").nth(0)).to_have_text(snapshot["layers"][0]["name"])
    expect(first.locator("td").nth(5)).to_have_text(str(snapshot["layers"][0]["nonfinite_total"]))


def test_the_page_fetches_nothing_from_other_hosts(page: Page, server: str) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.reload()
    page.fill("#chat-message", "hello")
    page.click("#chat-form button")
    expect(page.locator("#chat-charts")).to_have_attribute("data-state", "done", timeout=30_000)
    assert requests and all(url.startswith(server + "/") for url in requests), requests


def test_with_an_api_key_the_page_asks_for_it_and_sends_it_as_a_bearer_token(
    browser: Browser, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path, ["chatbot-post"])
    with serve_in_thread(settings(model_dir=folder, api_key=SecretStr(KEY))) as base:
        page = browser.new_page()
        sent: list[Request] = []
        page.on("request", lambda request: sent.append(request))
        page.goto(f"{base}/inspector")
        expect(page.locator("#auth")).to_be_visible()
        page.fill("#api-key", "wrong")
        page.click("#auth button")
        expect(page.locator("#auth-error")).to_have_text("that key was refused")
        page.fill("#api-key", KEY)
        page.click("#auth button")
        expect(page.locator("#auth")).to_be_hidden()
        page.fill("#chat-message", "i forgot my password")
        page.click("#chat-form button")
        expect(page.locator("#chat-charts")).to_have_attribute("data-state", "done", timeout=30_000)
        expect(page.locator("#chat-answers article.variant")).to_have_count(1)
        chat = [r for r in sent if r.url.endswith("/v1/chat")]
        assert chat and all(r.headers.get("authorization") == f"Bearer {KEY}" for r in chat)
        page.close()
