"""Ecosystem clients against the real server: tritonclient (KServe v2), openai, promtool and Prometheus values."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import httpx
import numpy as np
import openai
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.service.helpers import FORECASTER_ARTIFACTS, default_chatbot


@pytest.fixture
def v2(server: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.removeprefix("http://"))


@pytest.fixture
def oai(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)


def test_v2_health_and_metadata_through_tritonclient(v2: triton.InferenceServerClient) -> None:
    assert v2.is_server_live() and v2.is_server_ready()
    assert v2.get_server_metadata()["name"] == "lnserve"
    for name in ("chatbot", "chatbot-peri", "forecaster"):
        assert v2.is_model_ready(name)
    metadata = v2.get_model_metadata("chatbot")
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in metadata["outputs"]] == ["intent", "confidence", "probabilities", "logits"]
    assert [o["name"] for o in metadata["optional_outputs"]] == ["activations"]
    assert (
        metadata["artifact"] == default_chatbot()
        and len(metadata["labels"]) == metadata["outputs"][2]["shape"][1]
    )
    assert v2.get_model_metadata("forecaster", model_version="1")["inputs"][0]["name"] == "series"


def test_v2_unknown_model_and_version_are_errors_with_the_message(v2: triton.InferenceServerClient) -> None:
    assert not v2.is_model_ready("nope")
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        v2.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="has no version '7'"):
        v2.get_model_metadata("forecaster", model_version="7")


@pytest.mark.parametrize("binary", [True, False])
def test_v2_chatbot_infer_through_tritonclient(
    v2: triton.InferenceServerClient, client: httpx.Client, binary: bool
) -> None:
    texts = ["i forgot my password", "hello there", "i want a refund for last month"]
    tensor = triton.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_), binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary) for name in ("intent", "confidence", "logits")
    ]
    result = v2.infer("chatbot", [tensor], outputs=outputs)
    intents = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("intent")]
    confidence, logits = result.as_numpy("confidence"), result.as_numpy("logits")
    assert confidence.dtype == np.float32 and logits.shape[0] == 3
    for row, text in enumerate(texts):  # each row is what /v1/chat says for that text alone
        alone = client.post("/v1/chat", json={"message": text}).json()
        assert intents[row] == alone["intent"]
        assert confidence[row] == pytest.approx(alone["confidence"], abs=1e-5)
    assert intents[0] == "reset_password"


@pytest.mark.parametrize("model", ["chatbot", "forecaster"])
def test_v2_infer_naming_no_outputs_returns_every_declared_output_to_tritonclient(
    v2: triton.InferenceServerClient, model: str
) -> None:
    """The Open Inference Protocol: no outputs named = every output the metadata declares (a generic loop)."""
    metadata = v2.get_model_metadata(model)
    inputs = []
    for spec in metadata["inputs"]:
        if spec["datatype"] == "BYTES":
            data = np.array(["i forgot my password", "hello"], dtype=np.object_)
        elif spec["name"] == "series":
            data = (100 + np.arange(48, dtype=np.float32) % 12).reshape(1, 48).repeat(2, axis=0)
        else:
            continue  # optional inputs
        tensor = triton.InferInput(spec["name"], list(data.shape), spec["datatype"])
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    result = v2.infer(model, inputs)
    for output in metadata["outputs"]:
        array = result.as_numpy(output["name"])
        assert array is not None, output["name"]
        assert array.shape[0] == 2 and array.ndim == len(output["shape"])
    assert result.as_numpy("activations") is None  # opt-in: only when asked for
    asked = v2.infer(model, inputs, outputs=[triton.InferRequestedOutput("activations")])
    assert asked.as_numpy("activations").shape == (2, *metadata["optional_outputs"][0]["shape"][1:])


def test_v2_chatbot_accepts_n_by_1_text_and_returns_all_outputs_by_default(client: httpx.Client) -> None:
    request = {
        "id": "r1",
        "inputs": [
            {
                "name": "text",
                "shape": [2, 1],
                "datatype": "BYTES",
                "data": [["i forgot my password"], ["thanks a lot"]],
            }
        ],
    }
    body = client.post("/v2/models/chatbot/infer", json=request).json()
    assert body["id"] == "r1" and body["model_name"] == "chatbot" and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert set(outputs) == {"intent", "confidence", "probabilities", "logits"}
    assert outputs["intent"]["datatype"] == "BYTES" and outputs["intent"]["data"][0] == "reset_password"
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(outputs["probabilities"]["shape"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_v2_forecaster_infer_through_tritonclient(
    v2: triton.InferenceServerClient, client: httpx.Client
) -> None:
    t = np.arange(60)
    series = np.stack([100 + t + 10 * np.sin(2 * np.pi * t / 12), 5 + 0.1 * t]).astype(np.float32)  # [2, 60]
    tensor = triton.InferInput("series", list(series.shape), "FP32")
    tensor.set_data_from_numpy(series)
    horizon = triton.InferInput("horizon", [1], "INT64")
    horizon.set_data_from_numpy(np.array([6], dtype=np.int64))
    result = v2.infer("forecaster", [tensor, horizon], parameters={"season_length": 12})
    forecast, quantiles = result.as_numpy("forecast"), result.as_numpy("quantiles")
    levels = json.loads((FORECASTER_ARTIFACTS / "forecaster/sidecar.json").read_text())["forecaster"][
        "quantiles"
    ]
    assert forecast.shape == (2, 6) and quantiles.shape == (2, 6, len(levels))
    assert (np.diff(quantiles, axis=2) >= -1e-4).all()
    for row in range(2):
        alone = client.post(
            "/v1/forecast", json={"series": series[row].tolist(), "horizon": 6, "season_length": 12}
        )
        np.testing.assert_allclose(forecast[row], alone.json()["forecast"], rtol=1e-5)


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        (
            {"inputs": [{"name": "series", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            "inputs: unknown input(s) ['series']; this model takes ['text']",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": []},
            "inputs: unknown input(s) ['x']; this model takes ['text']",
        ),
        (
            {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["only one"]}]},
            "inputs.text: 1 values do not fit shape [2]",
        ),
        (  # no values, but the other dimensions multiply past what numpy can address (found by schemathesis)
            {
                "inputs": [
                    {
                        "name": "text",
                        "shape": [0, 10**6, 10**6, 10**6, 10**6],
                        "datatype": "BYTES",
                        "data": [],
                    }
                ]
            },
            "inputs.text: shape [0, 1000000, 1000000, 1000000, 1000000] is too large for an array",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [None]}]},
            "inputs.text: BYTES data must be strings, got None",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            "inputs.text: datatype must be BYTES, got FP32",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]},
            "inputs.text: shape must be [-1] or [-1, 1] (-1: any size), got [1, 2]",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["   "]}]},
            "inputs.text[0]: String should have at least 1 character",
        ),
        ({"inputs": []}, "inputs: List should have at least 1 item after validation, not 0"),
    ],
)
def test_v2_bad_infer_requests_are_422_with_the_reason(
    client: httpx.Client, request_body: dict, error: str
) -> None:
    response = client.post("/v2/models/chatbot/infer", json=request_body)
    assert response.status_code == 422 and response.json() == {"error": error}


def test_openai_client_chat_completion(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="chatbot",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "i forgot my password"},
        ],
    )
    reply = completion.choices[0].message
    assert reply.role == "assistant" and "password" in (reply.content or "").lower()
    assert completion.choices[0].finish_reason == "stop" and completion.model == "chatbot"
    assert (
        completion.model_extra is not None and completion.model_extra["lnserve"]["intent"] == "reset_password"
    )
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


def test_openai_client_streaming_yields_the_same_reply(oai: openai.OpenAI, client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "i forgot my password"}]
    whole = oai.chat.completions.create(model="chatbot", messages=messages).choices[0].message.content
    chunks = list(oai.chat.completions.create(model="chatbot", messages=messages, stream=True))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert streamed == whole and chunks[-1].choices[0].finish_reason == "stop"
    raw = client.post("/v1/chat/completions", json={"messages": messages, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_openai_errors_keep_the_error_shape(client: httpx.Client, oai: openai.OpenAI) -> None:
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]})
    assert response.status_code == 422 and response.json() == {
        "error": "messages: there is no user message to answer"
    }
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])


def test_openai_client_lists_models(oai: openai.OpenAI) -> None:
    ids = {model.id for model in oai.models.list()}
    assert {"chatbot", "chatbot-post", "chatbot-pre", "chatbot-peri", "forecaster"} <= ids


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metric_values_move_as_requests_are_made(client: httpx.Client) -> None:
    model = default_chatbot()
    before = client.get("/metrics").text
    for _ in range(3):
        client.post("/v1/chat", json={"message": "hello"})
    client.post("/v1/chat", json={"message": " "})
    sampled = client.post("/v1/chat", json={"message": "hello", "return_activations": True}).json()
    after = client.get("/metrics").text
    assert sample(after, "lnserve_request_success_total", model=model, endpoint="chat") == pytest.approx(
        sample(before, "lnserve_request_success_total", model=model, endpoint="chat") + 4
    )
    assert sample(
        after, "lnserve_request_failure_total", model=model, endpoint="chat", reason="bad_request"
    ) == (
        sample(before, "lnserve_request_failure_total", model=model, endpoint="chat", reason="bad_request")
        + 1
    )
    assert sample(after, "lnserve_request_duration_seconds_count", model=model, endpoint="chat") == (
        sample(before, "lnserve_request_duration_seconds_count", model=model, endpoint="chat") + 5
    )
    assert (
        sample(after, "lnserve_batch_size_count", model=model)
        >= sample(before, "lnserve_batch_size_count", model=model) + 1
    )
    assert sample(after, "lnserve_compute_duration_seconds_count", model=model, path="diagnostic") >= 1
    assert sample(after, "lnserve_activation_samples_total", model=model) == (
        sample(before, "lnserve_activation_samples_total", model=model) + 1
    )
    assert sample(after, "lnserve_model_ready", model="forecaster") == 1.0
    assert sample(after, "lnserve_model_load_duration_seconds", model="forecaster") > 0
    assert sample(after, "lnserve_pending_requests", model=model) == 0.0
    assert sample(after, "lnserve_activation_reference", model=model, layer="embed", statistic="rms") > 0
    # The sampled request's own statistics went into the counters: one more value, its sum, its decile bin.
    embed = sampled["activations"]["layers"][0]
    for stat in ("rms", "mean"):
        labels = {"model": model, "layer": "embed", "statistic": stat}
        delta = {
            name: sample(after, f"lnserve_activation_{name}_total", **labels)
            - sample(before, f"lnserve_activation_{name}_total", **labels)
            for name in ("count", "positive_sum", "negative_sum")
        }
        assert delta["count"] == 1
        assert delta["positive_sum"] - delta["negative_sum"] == pytest.approx(embed[stat], rel=1e-5, abs=1e-9)
        bins = [
            sample(after, "lnserve_activation_bin_total", **labels, bin=str(b))
            - sample(before, "lnserve_activation_bin_total", **labels, bin=str(b))
            for b in range(1, 11)
        ]
        assert sorted(bins) == [0] * 9 + [1]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not on PATH (apt package prometheus)")
def test_metrics_pass_promtool(client: httpx.Client) -> None:
    client.post("/v1/chat", json={"message": "hello", "return_activations": True})
    text = client.get("/metrics").text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_openai_n_and_max_tokens_are_implemented(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "i forgot my password"}]
    whole = oai.chat.completions.create(model="chatbot", messages=messages).choices[0].message.content or ""
    cut = oai.chat.completions.create(model="chatbot", messages=messages, n=3, max_tokens=4)
    assert [c.index for c in cut.choices] == [0, 1, 2]
    assert {c.message.content for c in cut.choices} == {" ".join(whole.split()[:4])}
    assert {c.finish_reason for c in cut.choices} == {"length"}
    assert cut.usage is not None and cut.usage.completion_tokens == 3 * 4
    short = oai.chat.completions.create(model="chatbot", messages=messages, max_completion_tokens=1000)
    assert short.choices[0].message.content == whole and short.choices[0].finish_reason == "stop"
    stopped = oai.chat.completions.create(model="chatbot", messages=messages, stop=[whole.split()[2]])
    assert stopped.choices[0].message.content == whole[: whole.index(whole.split()[2])]


def test_openai_stream_include_usage_ends_with_the_usage_chunk(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "i forgot my password"}]
    chunks = list(
        oai.chat.completions.create(
            model="chatbot",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=5,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5 and chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]},
         "tools: this model does not support tool calls; it answers with text only"),
        ({"tool_choice": "auto"}, "tool_choice: this model does not support tool calls; it answers with text only"),
        ({"response_format": {"type": "json_object"}},
         "response_format: 'json_object' is not supported; this model answers with text"),
        ({"logprobs": True}, "logprobs: this model does not support log-probabilities"),
    ],
)  # fmt: skip
def test_openai_parameters_the_model_cannot_honour_are_a_400_naming_them(
    oai: openai.OpenAI, extra: dict[str, object], error: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(
            model="chatbot", messages=[{"role": "user", "content": "hi"}], extra_body=extra
        )
    assert refused.value.status_code == 400 and refused.value.response.json() == {"error": error}


def test_openai_unknown_parameters_are_a_422_and_sampling_ones_are_accepted(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        oai.chat.completions.create(model="chatbot", messages=messages, extra_body={"temprature": 0.2})
    assert refused.value.response.json() == {"error": "temprature: Extra inputs are not permitted"}
    sampled = oai.chat.completions.create(
        model="chatbot",
        messages=messages,
        temperature=0.2,
        top_p=0.9,
        seed=3,
        user="u1",
        presence_penalty=0.5,
    )
    assert sampled.choices[0].finish_reason == "stop"
