"""The committed chatbot artifacts: tokenizer, fixed split, sidecars that match their files, and a default that is
at least as accurate on validation as the TF-IDF baseline."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from models.chatbot import baseline, data
from models.chatbot.tokenizer import PAD_ID, UNK_ID, load_tokenizer
from models.sidecar import Sidecar
from service.kinds.chatbot.runtime import ChatbotBlock

SIDECARS = sorted(data.ARTIFACT_DIR.glob("*/sidecar.json"))
MiB = 1024 * 1024


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def default_sidecar() -> tuple[Path, dict[str, Any]]:
    name = load(data.ARTIFACT_DIR / "aliases.json")["chatbot"]
    return data.ARTIFACT_DIR / name, load(data.ARTIFACT_DIR / name / "sidecar.json")


def encode_padded(texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """What the service does: ids[:max_length], right padding with pad_id, mask 1 on real tokens."""
    tok = load_tokenizer(data.TOKENIZER_FILE)
    ids = [enc.ids[:max_length] for enc in tok.encode_batch(texts)]
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    return {"input_ids": input_ids, "attention_mask": mask}


# --- tokenizer ----------------------------------------------------------------------------------------------


def test_tokenizer_reserves_pad_0_and_unk_1_and_adds_no_special_tokens() -> None:
    tok = load_tokenizer(data.TOKENIZER_FILE)
    assert tok.token_to_id("[PAD]") == PAD_ID == 0 and tok.token_to_id("[UNK]") == UNK_ID == 1
    enc = tok.encode("I forgot my password")
    assert PAD_ID not in enc.ids and UNK_ID not in enc.ids
    assert len(enc.ids) == len(enc.tokens) and enc.ids == tok.encode("I forgot my password").ids


def test_tokenizer_round_trips_training_utterances_to_their_normalised_text() -> None:
    tok = load_tokenizer(data.TOKENIZER_FILE)
    texts = [e.text for e in data.read_jsonl(data.TRAIN_FILE)]
    for text in texts:
        ids = tok.encode(text).ids
        assert tok.decode(ids) == unicodedata.normalize("NFKC", text).lower(), text


def test_tokenizer_normalises_width_and_case() -> None:
    tok = load_tokenizer(data.TOKENIZER_FILE)
    assert tok.encode("ＲＥＳＥＴ Password").ids == tok.encode("reset password").ids


# --- split --------------------------------------------------------------------------------------------------


def test_committed_split_is_the_hash_rule_applied_to_the_utterance_files(tmp_path: Path) -> None:
    data.write_split(data.UTTERANCE_DIR, tmp_path)
    assert (tmp_path / "train.jsonl").read_text() == data.TRAIN_FILE.read_text()
    assert (tmp_path / "val.jsonl").read_text() == data.VAL_FILE.read_text()
    train, val = data.load_split()
    assert all(data.is_validation(e.intent, e.text) for e in val)
    assert not any(data.is_validation(e.intent, e.text) for e in train)
    assert len(val) / (len(train) + len(val)) >= 0.15


def test_every_label_has_training_and_validation_utterances() -> None:
    train, val = data.load_split()
    labels = data.load_labels()
    assert len(labels) == 35 and labels[-1] == "out_of_scope"
    assert {e.intent for e in train} == {e.intent for e in val} == set(labels)


# --- sidecars -----------------------------------------------------------------------------------------------


def test_three_variants_are_committed_within_the_size_budget() -> None:
    assert [p.parent.name for p in SIDECARS] == ["chatbot-peri", "chatbot-post", "chatbot-pre"]
    total = sum(f.stat().st_size for f in data.ARTIFACT_DIR.rglob("*.onnx"))
    assert total <= 7 * MiB


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: p.parent.name)
def test_sidecar_checksums_and_sizes_match_the_files(path: Path) -> None:
    for entry in load(path)["files"].values():
        blob = (path.parent / entry["path"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
        assert len(blob) == entry["bytes"]


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: p.parent.name)
def test_sidecar_describes_the_graphs_it_ships_with(path: Path) -> None:
    side = load(path)
    ChatbotBlock.model_validate(Sidecar.model_validate(side).block())  # what the service validates on load
    assert side["name"] == path.parent.name and side["kind"] == "chatbot"
    assert side["config"]["norm_placement"] == path.parent.name.removeprefix("chatbot-")
    assert side["chatbot"]["labels"] == data.load_labels()
    fast = ort.InferenceSession(str(path.parent / "fast.onnx"), providers=["CPUExecutionProvider"])
    diag = ort.InferenceSession(str(path.parent / "diagnostic.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in fast.get_inputs()] == [i["name"] for i in side["onnx"]["inputs"]]
    assert [o.name for o in fast.get_outputs()] == ["logits"]
    assert [o.name for o in diag.get_outputs()] == ["logits", "activations"]
    feeds = encode_padded(["hi there", "i was charged twice this month"], side["chatbot"]["max_length"])
    logits, acts = diag.run(None, feeds)
    assert logits.shape == (2, len(side["chatbot"]["labels"]))
    assert acts.shape == (2, len(side["layers"]), len(side["statistics"]))
    assert set(side["reference_activations"]) == {layer["name"] for layer in side["layers"]}
    parity = side["training"]["parity"]
    assert parity["logits_max_abs_diff"] <= 1e-4 and parity["activations_max_abs_diff"] <= 1e-4


def test_alias_names_the_variant_with_the_best_validation_accuracy() -> None:
    accuracy = {p.parent.name: load(p)["training"]["val_accuracy_onnx"] for p in SIDECARS}
    _, side = default_sidecar()
    assert side["training"]["val_accuracy_onnx"] == max(accuracy.values())


# --- the goal -----------------------------------------------------------------------------------------------


def test_default_beats_the_tfidf_baseline_in_its_sidecar() -> None:
    _, side = default_sidecar()
    assert side["training"]["val_accuracy_onnx"] >= side["training"]["baseline_val_accuracy"]


def test_default_beats_the_tfidf_baseline_recomputed_on_the_validation_file() -> None:
    folder, side = default_sidecar()
    val = data.read_jsonl(data.VAL_FILE)
    labels = side["chatbot"]["labels"]
    sess = ort.InferenceSession(str(folder / "fast.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, encode_padded([e.text for e in val], side["chatbot"]["max_length"]))
    accuracy = float(np.mean([labels[i] == e.intent for i, e in zip(logits.argmax(1), val, strict=True)]))
    baseline_accuracy = baseline.evaluate()["val_accuracy"]
    assert accuracy == pytest.approx(side["training"]["val_accuracy_onnx"], abs=1e-6)
    assert baseline_accuracy == pytest.approx(side["training"]["baseline_val_accuracy"], abs=1.5 / len(val))
    assert accuracy >= baseline_accuracy
