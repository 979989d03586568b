"""Activation statistics: present only when asked, equal to a direct ONNX Runtime run of the diagnostic graph,
the same batched or alone, and fed into the live aggregates."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from models.chatbot.tokenizer import encode, load_tokenizer
from models.chatbot.zoo import VARIANTS
from models.forecaster import features
from service.runtime.providers import session_options
from tests.service.helpers import CHATBOT_ARTIFACTS, FORECASTER_ARTIFACTS


def direct_chatbot_activations(variant: str, text: str) -> tuple[np.ndarray, np.ndarray]:
    folder = CHATBOT_ARTIFACTS / variant
    sidecar = json.loads((folder / "sidecar.json").read_text())
    tok = load_tokenizer(folder / sidecar["chatbot"]["tokenizer"])
    (ids,) = encode(tok, [text], sidecar["chatbot"]["max_length"])  # the one encoding (head + tail window)
    session = ort.InferenceSession(
        str(folder / "diagnostic.onnx"), session_options(1), providers=["CPUExecutionProvider"]
    )
    feeds = {
        "input_ids": np.array([ids], dtype=np.int64),
        "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
    }
    logits, activations = session.run(["logits", "activations"], feeds)
    return logits[0], activations[0]


def as_matrix(payload: dict[str, object]) -> np.ndarray:
    stats = ("mean", "std", "rms", "abs_mean", "abs_max")
    return np.array([[layer[s] for s in stats] for layer in payload["layers"]], dtype=np.float64)  # type: ignore[index]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_chat_activations_equal_a_direct_run_of_the_diagnostic_graph(
    client: httpx.Client, variant: str
) -> None:
    text = "how do i add a new member to my team"
    body = client.post(
        "/v1/chat", json={"message": text, "model": variant, "return_activations": True}
    ).json()
    logits, expected = direct_chatbot_activations(variant, text)
    sidecar = json.loads((CHATBOT_ARTIFACTS / variant / "sidecar.json").read_text())
    activations = body["activations"]
    assert activations["model"] == variant
    assert activations["norm_placement"] == variant.split("-")[1] == sidecar["config"]["norm_placement"]
    assert [layer["name"] for layer in activations["layers"]] == [
        layer["name"] for layer in sidecar["layers"]
    ]
    np.testing.assert_allclose(as_matrix(activations), expected, rtol=1e-4, atol=1e-5)
    scaled = logits / sidecar["chatbot"]["temperature"]  # the service's calibrated softmax
    probabilities = np.exp(scaled - scaled.max()) / np.exp(scaled - scaled.max()).sum()
    assert body["confidence"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_activations_are_absent_unless_asked(client: httpx.Client) -> None:
    assert client.post("/v1/chat", json={"message": "hello"}).json()["activations"] is None
    series = [float(v) for v in range(100, 160)]
    assert client.post("/v1/forecast", json={"series": series, "horizon": 4}).json()["activations"] is None


def test_forecast_activations_equal_a_direct_run_of_the_diagnostic_graph(client: httpx.Client) -> None:
    folder = FORECASTER_ARTIFACTS / "forecaster"
    sidecar = json.loads((folder / "sidecar.json").read_text())
    series = (100 + 10 * np.sin(np.arange(50) / 2)).astype(np.float32)
    body = client.post(
        "/v1/forecast",
        json={"series": series.tolist(), "horizon": 4, "season_length": 12, "return_activations": True},
    ).json()
    feeds, scales = features.make_inputs([series], [12], sidecar["forecaster"]["context_length"])
    session = ort.InferenceSession(
        str(folder / "diagnostic.onnx"), session_options(1), providers=["CPUExecutionProvider"]
    )
    quantiles, activations = session.run(["quantiles", "activations"], feeds)
    np.testing.assert_allclose(as_matrix(body["activations"]), activations[0], rtol=1e-4, atol=1e-5)
    median = features.to_original_units(quantiles, scales)[
        0, :4, sidecar["forecaster"]["quantiles"].index(0.5)
    ]
    np.testing.assert_allclose(body["forecast"], median, rtol=1e-5)


LONG = (
    "Hi, I look after the tools for a twelve person agency and we have been on your product since spring. "
    "Last week we merged two workspaces, the client folders moved, half of the team got new roles and the "
    "weekly report broke twice, which I fixed by hand. None of that is why I write though. "
) * 3 + "What I need is a copy of every invoice from this year as PDFs for our accountant."


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_requests_statistics_are_the_same_batched_or_alone(client: httpx.Client, variant: str) -> None:
    """KServe infer sends several texts of different lengths as one batch (one of them longer than the window);
    each row must match its lone run."""
    texts = ["hi", "i forgot my password and cannot log in to my account anymore", LONG, "refund please"]
    request = {
        "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
        "parameters": {"return_activations": True},
    }
    body = client.post(f"/v2/models/{variant}/infer", json=request).json()
    outputs = {output["name"]: output for output in body["outputs"]}
    batched = np.array(outputs["activations"]["data"]).reshape(outputs["activations"]["shape"])
    logits = np.array(outputs["logits"]["data"]).reshape(outputs["logits"]["shape"])
    for row, text in enumerate(texts):
        alone_logits, alone = direct_chatbot_activations(variant, text)
        np.testing.assert_allclose(batched[row], alone, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(logits[row], alone_logits, rtol=1e-4, atol=1e-5)


STATS = ("mean", "std", "rms", "abs_mean", "abs_max")


def table(snapshot: dict, key: str, sub: str | None = None) -> np.ndarray:
    return np.array(
        [
            [(layer[key][s] if sub is None else layer[key][s][sub]) or 0.0 for s in STATS]
            for layer in snapshot["layers"]
        ]
    )


def test_live_aggregates_over_a_window_hold_exactly_the_requests_that_asked(client: httpx.Client) -> None:
    """The shared server samples no ordinary traffic, so only return_activations requests feed the aggregates;
    a window of the last few seconds holds only this test's requests, and its drift follows docs/monitoring.md."""
    time.sleep(2.1)  # nothing of earlier tests in the last 2 seconds
    texts = ["where is my invoice", "please cancel my subscription", "i was charged twice"]
    for text in texts:
        client.post("/v1/chat", json={"message": text, "model": "chatbot-pre", "return_activations": True})
    client.post("/v1/chat", json={"message": "not sampled", "model": "chatbot-pre"})
    after = client.get("/v1/models/chatbot-pre/activations", params={"window_s": 2}).json()
    assert (after["window_s"], after["offset_s"], after["samples"]) == (2, 0, 3)
    assert after["samples_total"] >= 3 and after["sample_rate"] == 0.0
    rows = np.array([direct_chatbot_activations("chatbot-pre", t)[1] for t in texts], dtype=np.float64)
    np.testing.assert_allclose(table(after, "live"), rows.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(table(after, "live_std"), rows.std(axis=0), rtol=1e-3, atol=1e-5)
    sidecar = json.loads((CHATBOT_ARTIFACTS / "chatbot-pre" / "sidecar.json").read_text())
    ref = sidecar["reference_activations"]
    names = [layer["name"] for layer in sidecar["layers"]]
    ref_mean = np.array([[ref[n][s]["mean"] for s in STATS] for n in names])
    ref_std = np.array([[ref[n][s]["std"] for s in STATS] for n in names])
    edges = np.array([[ref[n][s]["quantiles"] for s in STATS] for n in names])  # [L, S, 9]
    shift = (np.abs(rows.mean(axis=0) - ref_mean) / (ref_std + 1e-6)).mean(axis=1)
    bins = (rows[..., None] > edges[None]).sum(axis=3)  # [N, L, S] bin index 0..9
    counts = np.stack([(bins == b).sum(axis=0) for b in range(10)], axis=2)
    fractions = (counts + 0.5) / (len(texts) + 5)
    psi = ((fractions - 0.1) * np.log(fractions / 0.1)).sum(axis=2).mean(axis=1)
    layers = after["layers"]
    np.testing.assert_allclose([layer["mean_shift"] for layer in layers], shift, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose([layer["psi"] for layer in layers], psi, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose([layer["drift"] for layer in layers], shift + psi, rtol=1e-3, atol=1e-3)
    assert layers[0]["reference"]["rms"]["quantiles"] == ref[names[0]]["rms"]["quantiles"]
    assert all(layer["nonfinite"] == 0 for layer in layers)
    time.sleep(2.1)
    later = client.get("/v1/models/chatbot-pre/activations", params={"window_s": 2}).json()
    assert (
        later["samples"] == 0
        and later["layers"][0]["drift"] is None
        and later["layers"][0]["live"]["rms"] is None
    )
    earlier = client.get("/v1/models/chatbot-pre/activations", params={"window_s": 3, "offset_s": 2}).json()
    assert earlier["samples"] == 3


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("window_s=0", "query.window_s: Input should be greater than or equal to 1"),
        (
            "window_s=ten",
            "query.window_s: Input should be a valid integer, unable to parse string as an integer",
        ),
        ("offset_s=-1", "query.offset_s: Input should be greater than or equal to 0"),
    ],
)
def test_a_bad_window_is_a_422_that_says_why(client: httpx.Client, query: str, error: str) -> None:
    response = client.get(f"/v1/models/chatbot-pre/activations?{query}")
    assert response.status_code == 422 and response.json() == {"error": error}


def test_a_window_beyond_the_history_answers_what_is_kept(client: httpx.Client) -> None:
    whole = client.get("/v1/models/chatbot-pre/activations", params={"window_s": 900}).json()
    beyond = client.get(
        "/v1/models/chatbot-pre/activations", params={"window_s": 86_400, "offset_s": 10}
    ).json()
    past = client.get("/v1/models/chatbot-pre/activations", params={"window_s": 1, "offset_s": 86_399}).json()
    assert whole["history_s"] == beyond["history_s"] == 900 and past["samples"] == 0
    assert beyond["samples"] <= whole["samples"]


def test_the_default_window_is_300_seconds(client: httpx.Client) -> None:
    assert client.get("/v1/models/forecaster/activations").json()["window_s"] == 300


def test_activations_of_an_unknown_model_are_404(client: httpx.Client) -> None:
    response = client.get("/v1/models/nope/activations")
    assert response.status_code == 404 and response.json()["error"].startswith("unknown model 'nope'")
