"""Int8 on the CPU (`LNSERVE_PRECISION=int8`, or per model): the fast graph quantized at load by ONNX Runtime's
dynamic quantization, gated against fp32 like fp16, and served with the same answers."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from bench.artifacts import KINDS, default_artifact
from models.chatbot import data
from models.sidecar import FAST
from service.runtime.base import RuntimeOptions
from service.runtime.precision import (
    INT8_TOLERANCE,
    PrecisionUnavailable,
    convert,
    float32_weights,
    relative_error,
    to_int8,
)
from service.runtime.providers import CPU, session_options
from service.settings import Settings
from tests.service.helpers import served_subprocess

VALIDATION_TEXTS = 400


def test_float32_weights_answers_as_the_shipped_graph_without_weight_casts() -> None:
    path = default_artifact("chatbot").file(FAST)
    shipped, folded = onnx.load(str(path)), float32_weights(onnx.load(str(path)))
    weights = {init.name for init in folded.graph.initializer}
    assert not [n for n in folded.graph.node if n.op_type == "Cast" and n.input[0] in weights]
    assert onnx.TensorProto.FLOAT16 not in {init.data_type for init in folded.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {
        "input_ids": rng.integers(5, 4000, (3, 20)).astype(np.int64),
        "attention_mask": np.ones((3, 20), np.int64),
    }
    shipped_logits, folded_logits = (
        ort.InferenceSession(m.SerializeToString(), session_options(1), providers=[CPU]).run(
            ["logits"], feeds
        )[0]
        for m in (shipped, folded)
    )
    np.testing.assert_allclose(folded_logits, shipped_logits, atol=1e-5)


def test_the_int8_graph_multiplies_every_weight_in_int8() -> None:
    graph = onnx.load_from_string(to_int8(default_artifact("chatbot").file(FAST)))
    ops = collections.Counter(node.op_type for node in graph.graph.node)
    # 4 blocks x (q, k, v, out, two MLP matrices) + the head = 25 weights; q/k/v are one fused matrix per block
    assert ops["MatMulInteger"] == ops["DynamicQuantizeLinear"] == 17
    weights = {init.name for init in graph.graph.initializer}
    assert not [n for n in graph.graph.node if n.op_type in ("MatMul", "Gemm") and set(n.input) & weights]
    assert [i.type.tensor_type.elem_type for i in graph.graph.output] == [onnx.TensorProto.FLOAT]


def test_int8_is_refused_for_a_gpu_provider() -> None:
    with pytest.raises(PrecisionUnavailable, match="CPU provider only"):
        convert(default_artifact("chatbot").file(FAST), "int8", ["CUDAExecutionProvider", CPU])


def test_a_chatbot_served_in_int8_gives_the_fp32_intents_on_validation_utterances() -> None:
    artifact = default_artifact("chatbot")
    runtimes = {p: KINDS["chatbot"].runtime(artifact, RuntimeOptions("cpu", 1, p)) for p in ("fp32", "int8")}
    for runtime in runtimes.values():
        runtime.load()
    int8 = runtimes["int8"]
    assert int8.precision == "int8" and 0 < int8.precision_error <= INT8_TOLERANCE
    _, validation = data.load_split()
    items = [int8.item(e.text) for e in validation[:VALIDATION_TEXTS]]
    answers = {p: runtime.predict(items, False) for p, runtime in runtimes.items()}
    intents = {p: np.array([a.result.intent for a in out]) for p, out in answers.items()}
    agreement = float((intents["int8"] == intents["fp32"]).mean())
    assert agreement >= 0.985  # 99.7% over the whole validation split (docs/benchmarks.md)
    logits = {p: [np.stack([a.result.logits for a in out])] for p, out in answers.items()}
    assert 0 < relative_error(logits["fp32"], logits["int8"]) <= INT8_TOLERANCE
    # the statistics keep coming from the fp32 diagnostic graph
    (fp32_stats,), (int8_stats,) = (r.predict(items[:1], True) for r in runtimes.values())
    np.testing.assert_array_equal(int8_stats.activations, fp32_stats.activations)


def test_precision_is_set_per_kind_and_per_model() -> None:
    settings = Settings(
        model_settings={"chatbot": {"precision": "int8"}, "chatbot-pre": {"precision": "fp32"}}
    )
    assert settings.model_precision("chatbot", "chatbot-post") == "int8"
    assert settings.model_precision("chatbot", "chatbot-pre") == "fp32"
    assert settings.model_precision("forecaster", "forecaster") == "fp32"
    assert Settings(precision="int8").model_precision("forecaster", "forecaster") == "int8"
    assert "precision" not in settings.batch_policy("chatbot", {}, "chatbot-post").model_dump()


def test_a_server_told_int8_for_the_chatbot_serves_it_quantized_and_the_forecaster_in_fp32(
    tmp_path: Path, client: httpx.Client
) -> None:
    env = {
        "LNSERVE_MODEL_SETTINGS": json.dumps({"chatbot": {"precision": "int8"}}),
        "LNSERVE_LOG_FORMAT": "json",
        "LNSERVE_ACTIVATION_SAMPLE_RATE": "0",
    }
    log_path = tmp_path / "server.log"
    messages = ["i forgot my password", "how much is the pro plan", "what's the capital of peru"]
    with (
        served_subprocess(env, log_path, timeout_s=180) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        answers = [http.post("/v1/chat", json={"message": m}).json() for m in messages]
        fp32 = [client.post("/v1/chat", json={"message": m}).json() for m in messages]
    assert [a["intent"] for a in answers] == [a["intent"] for a in fp32]
    assert [a["confidence"] for a in answers] != [a["confidence"] for a in fp32]  # really another graph
    loaded = [
        json.loads(line)["message"]
        for line in log_path.read_text().splitlines()
        if line.startswith("{") and json.loads(line)["message"].startswith("loaded ")
    ]
    assert any(m.startswith("loaded chatbot-post on CPUExecutionProvider (int8)") for m in loaded), loaded
    assert any(m.startswith("loaded forecaster on CPUExecutionProvider (fp32)") for m in loaded), loaded
