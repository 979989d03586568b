"""The committed chatbot artifacts: tokenizer, fixed split, the zoo's sidecars that match their files, figures that
the shipped graphs reproduce, and a default that beats the TF-IDF baseline on validation."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from models.chatbot import data, evaluate
from models.chatbot.tokenizer import HEAD_SHARE, PAD_ID, UNK_ID, encode, load_tokenizer, truncate
from models.chatbot.zoo import VARIANTS
from models.sidecar import Sidecar
from service.kinds.chatbot.runtime import ChatbotBlock, length_buckets

SIDECARS = sorted(data.ARTIFACT_DIR.glob("*/sidecar.json"))
MODELS = data.CHATBOT_DIR.parent
MiB = 1024 * 1024


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def default_sidecar() -> tuple[Path, dict[str, Any]]:
    name = load(data.ARTIFACT_DIR / "aliases.json")["chatbot"]
    return data.ARTIFACT_DIR / name, load(data.ARTIFACT_DIR / name / "sidecar.json")


def encode_padded(texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """What the service does: the one encoding (head + tail window), right padding with pad_id to the length
    bucket, mask 1 on real tokens."""
    tok = load_tokenizer(data.TOKENIZER_FILE)
    ids = encode(tok, texts, max_length)
    width = next(b for b in length_buckets(max_length) if b >= max(len(x) for x in ids))
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
        # (NFKC can open a text with a space, e.g. a macron; the decoder drops a leading space)
        assert tok.decode(ids) == unicodedata.normalize("NFKC", text).lower().lstrip(" "), text


def test_unseen_characters_fall_back_to_their_bytes_and_decode_back() -> None:
    tok = load_tokenizer(data.TOKENIZER_FILE)
    vocab = tok.get_vocab()
    text = "ok ᚠᚢᚦ 🦖"  # runes and a dinosaur: in no training utterance
    assert not any(ch in vocab for ch in "ᚠᚢᚦ🦖")
    enc = tok.encode(text)
    assert UNK_ID not in enc.ids
    assert enc.tokens[-4:] == ["<0xF0>", "<0x9F>", "<0xA6>", "<0x96>"]  # U+1F996 in UTF-8
    assert tok.decode(enc.ids) == text
    assert vocab["<0x00>"] == tok.get_vocab_size() - 256 and vocab["<0xFF>"] == tok.get_vocab_size() - 1


def test_a_typo_splits_into_known_pieces_not_unknown_tokens() -> None:
    tok = load_tokenizer(data.TOKENIZER_FILE)
    enc = tok.encode("pasword resset plz")
    assert UNK_ID not in enc.ids and not any(t.startswith("<0x") for t in enc.tokens)
    assert "".join(enc.tokens).replace("▁", " ").strip() == "pasword resset plz"


def test_a_long_message_keeps_its_head_and_its_tail() -> None:
    tok = load_tokenizer(data.TOKENIZER_FILE)
    ids = list(range(2, 302))  # 300 ids standing for a long message
    kept = truncate(ids, 128)
    head = int(128 * HEAD_SHARE)
    assert len(kept) == 128 and kept == ids[:head] + ids[-(128 - head) :]
    assert truncate(ids[:128], 128) == ids[:128]
    text = (
        "Hello there, long story first. "
        + "We moved offices and everything was chaos. " * 30
        + "Cancel my plan."
    )
    (encoded,) = encode(tok, [text], 128)
    assert len(encoded) == 128
    assert tok.decode(encoded[:head]).startswith("hello there, long story first.")
    assert tok.decode(encoded).endswith("cancel my plan.")
    assert encode(tok, [""], 128) == [[UNK_ID]]


def test_one_text_is_encoded_as_in_a_batch() -> None:
    # `encode` takes the tokenizer's single-text path for one text (no thread-pool hand-off); the ids are the same
    tok = load_tokenizer(data.TOKENIZER_FILE)
    texts = [
        "hi",
        "",
        "   ",
        "I FORGOT my pasword!!",
        "é ü 漢字 🙂",
        " ".join(["cancel my plan please"] * 60),
    ]
    batched = encode(tok, texts, 128)
    assert [encode(tok, [text], 128)[0] for text in texts] == batched
    assert batched[1] == [UNK_ID] and len(batched[-1]) == 128


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


def test_the_five_variants_are_committed_within_the_size_budget() -> None:
    assert sorted(p.parent.name for p in SIDECARS) == sorted(VARIANTS)
    chatbots = sum(f.stat().st_size for f in data.ARTIFACT_DIR.rglob("*") if f.is_file())
    every_model = sum(f.stat().st_size for f in MODELS.glob("*/artifacts/**/*") if f.is_file())
    assert chatbots <= 19 * MiB and every_model <= 24 * MiB


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: p.parent.name)
def test_sidecar_checksums_and_sizes_match_the_files(path: Path) -> None:
    files = load(path)["files"]
    assert set(files) == {"fast", "diagnostic", "weights"}  # the two graphs share one weights file
    for entry in files.values():
        blob = (path.parent / entry["path"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
        assert len(blob) == entry["bytes"]


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: p.parent.name)
def test_sidecar_describes_the_graphs_it_ships_with(path: Path) -> None:
    side = load(path)
    ChatbotBlock.model_validate(Sidecar.model_validate(side).block())  # what the service validates on load
    variant = VARIANTS[path.parent.name]
    assert side["name"] == path.parent.name and side["kind"] == "chatbot"
    config = side["config"]
    assert (config["norm_placement"], config["norm_type"], config["residual_scale"]) == (
        variant.placement, variant.norm, variant.residual_scale,
    )  # fmt: skip
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


def test_every_variant_has_the_same_size_data_and_seed() -> None:
    sides = [load(p) for p in SIDECARS]
    shared = ("vocab_size", "max_len", "n_layer", "n_head", "d_model", "d_ff", "dropout", "n_labels")
    assert len({tuple(s["config"][k] for k in shared) for s in sides}) == 1
    settings = [
        {k: v for k, v in s["training"]["train_config"].items() if k not in ("name", "init_from")}
        for s in sides
    ]
    assert all(s == settings[0] for s in settings)
    assert len({s["training"]["tokenizer_sha256"] for s in sides}) == 1


def test_alias_names_the_variant_with_the_best_validation_accuracy() -> None:
    accuracy = {p.parent.name: load(p)["training"]["val_accuracy_onnx"] for p in SIDECARS}
    _, side = default_sidecar()
    assert side["training"]["val_accuracy_onnx"] == max(accuracy.values())


# --- figures recomputed from the shipped graphs -------------------------------------------------------------


@pytest.fixture(scope="module")
def default_outputs() -> dict[str, Any]:
    """The default's fast-graph logits on validation and challenge, as the service pads (length buckets)."""
    folder, side = default_sidecar()
    sess = ort.InferenceSession(str(folder / "fast.onnx"), providers=["CPUExecutionProvider"])
    val, challenge = data.read_jsonl(data.VAL_FILE), data.load_challenge()

    def logits(examples: list[data.Example]) -> np.ndarray:
        return np.concatenate(
            [
                sess.run(
                    None,
                    encode_padded([e.text for e in examples[i : i + 256]], side["chatbot"]["max_length"]),
                )[0]
                for i in range(0, len(examples), 256)
            ]
        )

    return {
        "side": side,
        "val": val,
        "challenge": challenge,
        "val_logits": logits(val),
        "challenge_logits": logits(challenge),
    }


def test_temperature_and_thresholds_are_the_ones_validation_gives(default_outputs: dict[str, Any]) -> None:
    side, labels = default_outputs["side"], default_outputs["side"]["chatbot"]["labels"]
    gold = np.array([labels.index(e.intent) for e in default_outputs["val"]])
    temperature = evaluate.fit_temperature(default_outputs["val_logits"], gold)
    assert side["chatbot"]["temperature"] == pytest.approx(temperature, rel=1e-3)
    chosen = evaluate.choose_thresholds(
        evaluate.softmax(default_outputs["val_logits"], temperature), gold, labels.index(data.OOS)
    )
    assert (side["chatbot"]["confidence_threshold"], side["chatbot"]["margin_threshold"]) == (
        chosen["confidence_threshold"], chosen["margin_threshold"],
    )  # fmt: skip


def test_reported_validation_and_challenge_figures_are_the_shipped_graphs(
    default_outputs: dict[str, Any],
) -> None:
    side = default_outputs["side"]
    block, training = side["chatbot"], side["training"]
    for split, key in (("val", "validation"), ("challenge", "challenge")):
        probs = evaluate.softmax(default_outputs[f"{split}_logits"], block["temperature"])
        again = evaluate.report(
            probs,
            default_outputs[split],
            block["labels"],
            block["confidence_threshold"],
            block["margin_threshold"],
        )
        for figure in ("accuracy", "in_scope_accuracy", "oos_recall"):
            assert again[figure] == pytest.approx(training[key][figure], abs=1e-6), (split, figure)
    gold = np.array([block["labels"].index(e.intent) for e in default_outputs["val"]])
    accuracy = float((default_outputs["val_logits"].argmax(1) == gold).mean())
    assert accuracy == pytest.approx(training["val_accuracy_onnx"], abs=1e-6)


def test_default_beats_the_tfidf_baseline_on_validation() -> None:
    # Beats it, argmax against argmax and thresholded against thresholded; by how much (0.9 points on validation in
    # the second round) is reported in docs/chatbot.md next to the 5-point target on the challenge split.
    _, side = default_sidecar()
    training = side["training"]
    assert training["val_accuracy_onnx"] > training["baseline"]["validation"]["accuracy"]
    assert training["validation"]["accuracy"] > training["baseline"]["validation_thresholded"]["accuracy"]
