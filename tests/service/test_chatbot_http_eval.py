"""`models.chatbot.http_eval` against the real server: what it scores over HTTP is the shipped graph's decision."""

from __future__ import annotations

import json
import urllib.error

import numpy as np
import onnxruntime as ort
import pytest

from models.chatbot import data, evaluate, http_eval
from models.chatbot.tokenizer import encode, load_tokenizer

ARTIFACT = data.ARTIFACT_DIR / "chatbot-post"


def in_process_intents(texts: list[str]) -> list[str]:
    """The default's answers computed here: tokenizer, fast graph at batch 1, temperature and thresholds."""
    block = json.loads((ARTIFACT / "sidecar.json").read_text())["chatbot"]
    labels = block["labels"]
    session = ort.InferenceSession(str(ARTIFACT / "fast.onnx"), providers=["CPUExecutionProvider"])
    logits = []
    for ids in encode(load_tokenizer(data.TOKENIZER_FILE), texts, block["max_length"]):
        row = np.array([ids], dtype=np.int64)
        logits.append(session.run(["logits"], {"input_ids": row, "attention_mask": np.ones_like(row)})[0][0])
    probs = evaluate.softmax(np.array(logits), block["temperature"])
    pred = evaluate.decide(
        probs, labels.index(data.OOS), block["confidence_threshold"], block["margin_threshold"]
    )
    return [labels[i] for i in pred]


def test_http_answers_and_scores_are_the_shipped_graphs_decisions(server: str) -> None:
    examples = data.load_challenge()[::8] + data.load_field()[::8]
    texts = [e.text for e in examples]
    answers = http_eval.ask_all(server, "chatbot-post", texts)
    assert answers == in_process_intents(texts)
    labels = data.load_labels()
    result = http_eval.score(answers, examples, labels)
    gold = np.array([labels.index(e.intent) for e in examples])
    pred = np.array([labels.index(a) for a in answers])
    expected = evaluate.scores(pred, gold, labels.index(data.OOS))
    assert {k: result[k] for k in expected} == expected
    assert sum(v["n"] for v in result["by_type"].values()) == len(examples)
    assert result["by_label"][data.OOS]["n"] == sum(e.intent == data.OOS for e in examples)
    assert 0.5 < result["accuracy"] <= 1.0  # a working model, not a constant answer


def test_a_refused_request_is_an_error_not_a_score(server: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        http_eval.ask(server, "no-such-model", "hello")
    assert refused.value.code == 404
