"""Our JSON API (`/v1/chat`, `/v1/forecast`, `/v1/models`) against the real bundled artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

import service.app as app_module
from service.settings import Settings
from tests.service.helpers import MODELS, default_chatbot, model_folder, serve_in_thread

REPLIES = {
    entry["name"]: entry["reply"]
    for entry in json.loads((MODELS / "chatbot" / "intents.json").read_text())["labels"]
}
MAX_HORIZON = json.loads((MODELS / "forecaster/artifacts/forecaster/sidecar.json").read_text())["forecaster"][
    "max_horizon"
]


def air_passengers_like(n: int = 72) -> list[float]:
    t = np.arange(n)
    return (120 + 2.0 * t + 25 * np.sin(2 * np.pi * t / 12)).round(1).tolist()


def test_password_question_lands_on_reset_password_with_its_reply(client: httpx.Client) -> None:
    response = client.post("/v1/chat", json={"message": "i forgot my password"})
    assert response.status_code == 200
    body = response.json()
    assert body["intent"] == "reset_password"
    assert body["reply"] == REPLIES["reset_password"]
    assert 0.0 <= body["confidence"] <= 1.0
    assert body["model"] == "chatbot" and body["artifact"] == default_chatbot()
    assert body["activations"] is None and body["fallback"] is False
    assert "reset_password" not in [alt["intent"] for alt in body["alternatives"]]
    assert all(alt["confidence"] <= body["confidence"] for alt in body["alternatives"])


@pytest.mark.parametrize("variant", ["chatbot-post", "chatbot-pre", "chatbot-peri"])
def test_each_variant_is_served_under_its_own_name(client: httpx.Client, variant: str) -> None:
    body = client.post("/v1/chat", json={"message": "hello there", "model": variant}).json()
    assert body["artifact"] == variant and body["model"] == variant
    assert body["intent"] in {*REPLIES, "out_of_scope"}


def test_message_is_trimmed_before_classification(client: httpx.Client) -> None:
    plain = client.post("/v1/chat", json={"message": "i forgot my password"}).json()
    padded = client.post("/v1/chat", json={"message": "   i forgot my password \n"}).json()
    assert padded["intent"] == plain["intent"] and padded["confidence"] == pytest.approx(
        plain["confidence"], abs=1e-6
    )


def test_forecast_has_horizon_points_in_input_units_and_ordered_quantiles(client: httpx.Client) -> None:
    series = air_passengers_like()
    request = {"series": series, "horizon": 12, "season_length": 12, "quantiles": [0.1, 0.5, 0.9]}
    response = client.post("/v1/forecast", json=request)
    assert response.status_code == 200
    body = response.json()
    assert len(body["forecast"]) == 12 and body["model"] == "forecaster" and body["activations"] is None
    assert sorted(body["quantiles"]) == ["0.1", "0.5", "0.9"]
    low, mid, high = (np.array(body["quantiles"][q]) for q in ("0.1", "0.5", "0.9"))
    assert (low <= mid + 1e-4).all() and (mid <= high + 1e-4).all()
    np.testing.assert_allclose(body["forecast"], mid, rtol=1e-6)
    # In the series' own units: a series around 190 is not forecast around 1 (scaled units).
    assert 0.5 * min(series) < np.mean(body["forecast"]) < 2 * max(series)


def test_forecast_scales_with_its_input(client: httpx.Client) -> None:
    series = np.array(air_passengers_like())
    small = client.post(
        "/v1/forecast", json={"series": series.tolist(), "horizon": 6, "season_length": 12}
    ).json()
    large = client.post(
        "/v1/forecast", json={"series": (series * 1000).tolist(), "horizon": 6, "season_length": 12}
    )
    np.testing.assert_allclose(
        np.array(large.json()["forecast"]), np.array(small["forecast"]) * 1000, rtol=1e-3
    )


def test_forecast_without_quantiles_returns_the_models_levels(client: httpx.Client) -> None:
    sidecar = json.loads((MODELS / "forecaster/artifacts/forecaster/sidecar.json").read_text())
    body = client.post("/v1/forecast", json={"series": air_passengers_like(), "horizon": 3}).json()
    assert [float(q) for q in body["quantiles"]] == sidecar["forecaster"]["quantiles"]
    assert all(len(values) == 3 for values in body["quantiles"].values())


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/v1/chat", {"message": "   "}, "message: String should have at least 1 character"),
        ("/v1/chat", {"message": "a" * 2001}, "message: String should have at most 2000 characters"),
        ("/v1/chat", {}, "message: Field required"),
        (
            "/v1/chat",
            {"message": "hi", "return_activations": "maybe"},
            "return_activations: Input should be a valid boolean",
        ),
        (
            "/v1/forecast",
            {"series": [1.0] * 5, "horizon": 3},
            "series: List should have at least 8 items after validation, not 5",
        ),
        (
            "/v1/forecast",
            {"series": [1.0] * 10, "horizon": 0},
            "horizon: Input should be greater than or equal to 1",
        ),
        (
            "/v1/forecast",
            {"series": [1.0] * 10, "horizon": MAX_HORIZON + 1},
            f"horizon: {MAX_HORIZON + 1} is beyond the model's maximum horizon of {MAX_HORIZON}",
        ),
        (
            "/v1/forecast",
            {"series": [1.0] * 10, "quantiles": [0.5, 1.5]},
            "quantiles[1]: Input should be less than 1",
        ),
    ],
)
def test_bad_bodies_get_422_with_a_message_that_says_which(
    client: httpx.Client, path: str, body: dict[str, object], error: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert response.json() == {"error": error}


def test_non_finite_series_values_are_refused_by_position(client: httpx.Client) -> None:
    raw = b'{"series": [1, 2, 3, 4, 5, 6, 7, NaN, 9], "horizon": 3}'
    response = client.post("/v1/forecast", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"error": "series[7]: Input should be a finite number"}


def test_malformed_json_is_422_in_the_error_shape(client: httpx.Client) -> None:
    response = client.post("/v1/chat", content=b'{"message": ', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"error": "request body is not valid JSON (Expecting value)"}


def test_unknown_model_is_404_naming_the_known_ones(client: httpx.Client) -> None:
    response = client.post("/v1/chat", json={"message": "hello", "model": "gpt-9"})
    assert response.status_code == 404
    assert response.json()["error"].startswith("unknown model 'gpt-9'; known models: chatbot, chatbot-peri")


def test_a_chatbot_cannot_be_asked_for_a_forecast(client: httpx.Client) -> None:
    response = client.post("/v1/forecast", json={"series": [1.0] * 10, "model": "chatbot-pre"})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'chatbot-pre' is a chatbot, not a forecaster"}


def test_unknown_route_and_wrong_method_use_the_error_shape(client: httpx.Client) -> None:
    assert client.get("/v1/nothing").json() == {"error": "Not Found"}
    response = client.get("/v1/chat")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed"}


def test_body_over_the_limit_is_413_with_or_without_content_length(client: httpx.Client) -> None:
    big = b'{"message": "' + b"a" * 1_100_000 + b'"}'
    expected = {"error": "request body exceeds the limit of 1048576 bytes"}
    response = client.post("/v1/chat", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json() == expected

    def chunks():  # no Content-Length: the server must count while reading
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = client.post("/v1/chat", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json() == expected


def test_models_list_has_openai_shape_with_architecture_training_and_readiness(client: httpx.Client) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    models = {entry["id"]: entry for entry in body["data"]}
    assert {"chatbot-post", "chatbot-pre", "chatbot-peri", "forecaster", "chatbot"} <= set(models)
    for variant in ("post", "pre", "peri"):
        entry = models[f"chatbot-{variant}"]
        assert entry["object"] == "model" and entry["owned_by"] == "lnserve" and entry["ready"] is True
        assert entry["architecture"]["norm_placement"] == variant
        assert entry["architecture"]["parameters"] > 0 and entry["architecture"]["layers"][0]["index"] == 0
        assert "val_accuracy" in entry["training"]
    assert models["chatbot"]["alias_of"] == default_chatbot()
    assert models["forecaster"]["kind"] == "forecaster"


def test_responses_carry_a_request_id_and_echo_the_callers(client: httpx.Client) -> None:
    assert len(client.get("/v2/health/live").headers["x-request-id"]) == 32
    assert (
        client.get("/v2/health/live", headers={"x-request-id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )


DIRECT_CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("POST", "/v1/chat", {"authorization": "Bearer k"}, b'{"message": "i forgot my password"}'),
    ("POST", "/v1/chat", {"authorization": "Bearer k"}, b'{"message": "hi", "return_activations": true}'),
    ("POST", "/v1/chat", {}, b'{"message": "i forgot my password"}'),
    ("POST", "/v1/chat", {"authorization": "Bearer wrong"}, b'{"message": "hi"}'),
    ("POST", "/v1/chat", {"authorization": "Bearer k"}, b'{"message": '),
    ("POST", "/v1/chat", {"authorization": "Bearer k"}, b'{"message": 5}'),
    ("POST", "/v1/chat", {"authorization": "Bearer k"}, b'{"message": "hi", "model": "nope"}'),
    ("POST", "/v1/chat", {"authorization": "Bearer k"}, b'{"message": "' + b"x" * 5000 + b'"}'),
    ("POST", "/v1/forecast", {"authorization": "Bearer k"}, b'{"series": [1, 2, 3]}'),
    ("GET", "/v1/chat", {"authorization": "Bearer k"}, b""),
]


def test_the_direct_kind_routes_answer_exactly_as_the_fastapi_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The middleware answers POST /v1/chat and /v1/forecast without FastAPI (service.rest.direct); the FastAPI
    # routes behind it are the reference: same status, body and headers for answers and every kind of error.
    settings = Settings(
        model_dir=model_folder(tmp_path, ["chatbot-peri"]),
        api_key=SecretStr("k"),
        max_body_bytes=4096,
        warmup=False,
    )

    def answers() -> list[tuple[int, object, str | None, str | None]]:
        with serve_in_thread(settings) as base, httpx.Client(base_url=base, timeout=30) as http:
            out = []
            for method, path, headers, body in DIRECT_CASES:
                response = http.request(method, path, headers=headers, content=body)
                out.append(
                    (
                        response.status_code,
                        response.json(),
                        response.headers.get("content-type"),
                        response.headers.get("www-authenticate"),
                    )
                )
            return out

    direct = answers()
    monkeypatch.setattr(app_module, "KindRoutes", lambda plane, kinds: None)  # the middleware passes them on
    reference = answers()
    assert [status for status, *_ in direct] == [200, 200, 401, 401, 422, 422, 404, 413, 422, 405]
    assert direct == reference
