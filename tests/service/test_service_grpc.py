"""KServe v2 gRPC through `tritonclient.grpc` against a real server: health, metadata, both models' inference (the
same answers as REST), errors as gRPC statuses, the API key, the repository RPCs and the request metrics."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from service.settings import Settings
from tests.service.helpers import free_port, model_folder, serve_in_thread
from tests.service.test_service_protocols import sample

KEY = "s3cret"
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, triton.InferenceServerClient]]:
    models = model_folder(tmp_path_factory.mktemp("grpc"), ["chatbot-peri"], forecaster=True)
    port = free_port()
    settings = Settings(
        model_dir=models, warmup=False, grpc_port=port, api_key=KEY, activation_sample_rate=0.0
    )
    with serve_in_thread(settings) as base:
        yield base, triton.InferenceServerClient(f"127.0.0.1:{port}")


def test_health_and_metadata_over_grpc(servers: tuple[str, triton.InferenceServerClient]) -> None:
    _, client = servers
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("chatbot", headers=AUTH) and not client.is_model_ready("nope", headers=AUTH)
    assert client.get_server_metadata(headers=AUTH, as_json=True)["extensions"] == [
        "binary_tensor_data",
        "model_repository",
    ]
    metadata = client.get_model_metadata("forecaster", headers=AUTH, as_json=True)
    assert metadata["versions"] == ["1"] and metadata["platform"] == "onnxruntime_onnx"
    assert [o["name"] for o in metadata["outputs"]] == ["forecast", "quantiles"]


def test_chatbot_infer_over_grpc_answers_as_rest(servers: tuple[str, triton.InferenceServerClient]) -> None:
    base, client = servers
    texts = ["i forgot my password", "i want a refund for last month"]
    tensor = triton.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_))
    result = client.infer("chatbot", [tensor], headers=AUTH)
    assert result.get_response().model_version == "1"
    for row, text in enumerate(texts):
        alone = httpx.post(base + "/v1/chat", json={"message": text}, headers=AUTH).json()
        assert result.as_numpy("intent")[row].decode() == alone["intent"]
        assert result.as_numpy("confidence")[row] == pytest.approx(alone["confidence"], abs=1e-5)
    assert result.as_numpy("logits").shape == (2, 35)


def test_forecaster_infer_over_grpc_answers_as_rest(
    servers: tuple[str, triton.InferenceServerClient],
) -> None:
    base, client = servers
    t = np.arange(48)
    series = (100 + t + 10 * np.sin(2 * np.pi * t / 12)).astype(np.float32)[None, :]
    tensor = triton.InferInput("series", [1, 48], "FP32")
    tensor.set_data_from_numpy(series)
    horizon = triton.InferInput("horizon", [1], "INT64")
    horizon.set_data_from_numpy(np.array([6], dtype=np.int64))
    outputs = [triton.InferRequestedOutput("forecast"), triton.InferRequestedOutput("activations")]
    result = client.infer(
        "forecaster", [tensor, horizon], outputs=outputs, parameters={"season_length": 12}, headers=AUTH
    )
    alone = httpx.post(
        base + "/v1/forecast",
        json={"series": series[0].tolist(), "horizon": 6, "season_length": 12},
        headers=AUTH,
    ).json()
    np.testing.assert_allclose(result.as_numpy("forecast")[0], alone["forecast"], rtol=1e-5)
    assert result.as_numpy("activations").shape[0] == 1 and result.as_numpy("quantiles") is None


@pytest.mark.parametrize(
    ("model", "data", "headers", "status", "message"),
    [
        ("chatbot", ["hi"], {}, "StatusCode.UNAUTHENTICATED", "missing or invalid API key"),
        ("nope", ["hi"], AUTH, "StatusCode.NOT_FOUND", "unknown model 'nope'"),
        (
            "chatbot",
            ["   "],
            AUTH,
            "StatusCode.INVALID_ARGUMENT",
            "inputs.text[0]: String should have at least 1",
        ),
    ],
)
def test_grpc_errors_are_statuses_with_the_message(
    servers: tuple[str, triton.InferenceServerClient],
    model: str,
    data: list[str],
    headers: dict[str, str],
    status: str,
    message: str,
) -> None:
    _, client = servers
    tensor = triton.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(data, dtype=np.object_))
    with pytest.raises(InferenceServerException) as error:
        client.infer(model, [tensor], headers=headers)
    assert error.value.status() == status and message in error.value.message()


def test_grpc_metadata_needs_the_key_and_requests_are_counted(
    servers: tuple[str, triton.InferenceServerClient],
) -> None:
    base, client = servers
    with pytest.raises(InferenceServerException, match="missing or invalid API key"):
        client.get_model_metadata("chatbot")
    index = client.get_model_repository_index(headers=AUTH, as_json=True)["models"]
    assert {(m["name"], m["state"]) for m in index} == {("chatbot-peri", "READY"), ("forecaster", "READY")}
    with pytest.raises(InferenceServerException, match="explicit model load is not allowed"):
        client.load_model("chatbot-peri", headers=AUTH)
    metrics = httpx.get(base + "/metrics").text
    labels = {"model": "chatbot-peri", "version": "1", "endpoint": "grpc_infer"}
    assert sample(metrics, "lnserve_request_success_total", **labels) >= 1
    assert sample(metrics, "lnserve_request_failure_total", **labels, reason="unauthorized") >= 1
