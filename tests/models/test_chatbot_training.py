"""Training mechanics on a tiny model and a slice of the real split: the loss falls, runs are reproducible."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.chatbot import data
from models.chatbot.model import Chatbot, ChatbotConfig, layer_specs
from models.chatbot.pretrain import PretrainConfig, pretrain
from models.chatbot.tokenizer import load_tokenizer
from models.chatbot.train import (
    TrainConfig,
    augment,
    compose,
    courtesies,
    fold_of,
    length_batches,
    load_checkpoint,
    load_encoder,
    train,
)


def tiny_data(tmp: Path) -> Path:
    """A slice of the real split (every 12th utterance), short messages only, so a tiny run takes seconds."""
    train_set, val_set = data.load_split()
    data_dir = tmp / "data"
    data_dir.mkdir(exist_ok=True)
    data.write_jsonl(data_dir / "train.jsonl", [e for e in train_set[::12] if len(e.text) < 200])
    data.write_jsonl(data_dir / "val.jsonl", [e for e in val_set[::12] if len(e.text) < 200])
    return data_dir


def tiny_model() -> ChatbotConfig:
    return ChatbotConfig(n_layer=1, n_head=2, d_model=16, d_ff=32, max_len=32, norm_placement="pre")


def tiny_run(tmp: Path, name: str, **options: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "warmup_steps": 10, "patience": 10}
    cfg = TrainConfig(name=name, model=tiny_model(), **{**settings, **options})
    return train(cfg, data_dir=tiny_data(tmp), runs_dir=tmp / "runs", progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("chatbot")
    return tmp, tiny_run(tmp, "tiny")


def test_a_few_epochs_lower_the_training_loss(run: tuple[Path, dict[str, Any]]) -> None:
    losses = [row["train_loss"] for row in run[1]["history"]]
    assert losses[-1] < losses[0] - 0.1


def test_every_epoch_records_loss_accuracy_and_the_gradient_norm_of_every_layer(
    run: tuple[Path, dict[str, Any]],
) -> None:
    for row in run[1]["history"]:
        assert set(row["grad_norm"]) == {"embed", "block0", "final_norm", "head", "total"}
        assert all(v > 0 for v in row["grad_norm"].values())
        assert 0.0 <= row["val_accuracy"] <= 1.0 and row["val_loss"] > 0
        assert 0.0 <= row["train_accuracy"] <= 1.0


def test_every_epoch_records_the_hidden_state_rms_of_every_statistics_row(
    run: tuple[Path, dict[str, Any]],
) -> None:
    names = [str(spec["name"]) for spec in layer_specs(ChatbotConfig(**run[1]["model_config"]))]
    rms = [row["hidden_rms"] for row in run[1]["history"]]
    assert all(list(r) == names for r in rms)
    assert all(v > 0 for r in rms for v in r.values())
    assert rms[0] != rms[-1]  # measured on the current weights every epoch


def test_the_checkpoint_reloads_the_best_epoch(run: tuple[Path, dict[str, Any]]) -> None:
    tmp, record = run
    model, saved = load_checkpoint("tiny", tmp / "runs")
    best = max(record["history"], key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert saved["best_epoch"] == best["epoch"] and saved["val_accuracy"] == best["val_accuracy"]
    assert model.num_parameters() == record["parameters"]


def test_the_same_seed_gives_the_same_run(run: tuple[Path, dict[str, Any]]) -> None:
    tmp, record = run
    again = tiny_run(tmp, "tiny-again")
    assert [r["train_loss"] for r in again["history"]] == [r["train_loss"] for r in record["history"]]


def test_augmentation_is_seeded_and_keeps_text_non_empty() -> None:
    texts = ["i forgot my password and cannot log in", "hi", "refund please?"]
    first = [augment(t, random.Random(3), 1.0) for t in texts]
    assert first == [augment(t, random.Random(3), 1.0) for t in texts]
    assert all(first) and first[0] != texts[0]


def test_composition_wraps_other_labels_in_training_courtesies_and_keeps_the_label() -> None:
    train_set, _ = data.load_split()
    openers, closers = courtesies(train_set)
    assert openers and closers and all(len(t.split()) <= 8 for t in openers + closers)
    examples = [e for e in train_set if e.intent in ("refund_request", "greeting", "thanks", data.OOS)][:400]
    wrapped = [compose(e, random.Random(i), 1.0, openers, closers) for i, e in enumerate(examples)]
    assert wrapped == [compose(e, random.Random(i), 1.0, openers, closers) for i, e in enumerate(examples)]
    for e, text in zip(examples, wrapped, strict=True):
        if e.intent in ("greeting", "thanks"):
            assert text == e.text
        else:
            assert any(text == f"{o} {e.text}" for o in openers) or any(
                text == f"{e.text} {c}" for c in closers
            )
    assert {
        text.startswith(e.text) for e, text in zip(examples, wrapped, strict=True) if e.intent == data.OOS
    } == {True, False}
    rng = random.Random(5)
    assert [compose(e, rng, 0.0, openers, closers) for e in examples] == [e.text for e in examples]
    assert (
        rng.random() == random.Random(5).random()
    )  # off: no draw, so the default recipe's runs are unchanged


def test_length_batches_cover_every_row_once_and_group_similar_lengths() -> None:
    lengths = [random.Random(i).randrange(1, 129) for i in range(1000)]
    batches = length_batches(lengths, 32, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # against about 120 for shuffled batches of this spread of lengths


def test_a_cross_fitting_fold_trains_without_its_rows_and_predicts_them(tmp_path: Path) -> None:
    record = tiny_run(tmp_path, "fold1", fold=1, n_folds=3, epochs=1)
    train_set = data.read_jsonl(tmp_path / "data" / "train.jsonl")
    held = [e for e in train_set if fold_of(e, 3) == 1]
    assert record["n_train"] == len(train_set) - len(held) and 0 < len(held) < len(train_set)
    logits = np.load(tmp_path / "runs" / "fold1" / "held_out_logits.npy")
    assert logits.shape == (len(held), len(data.load_labels()))


def test_soft_targets_are_fitted_and_a_pretrained_encoder_starts_the_run(tmp_path: Path) -> None:
    data_dir = tiny_data(tmp_path)
    n_train, n_labels = len(data.read_jsonl(data_dir / "train.jsonl")), len(data.load_labels())
    mlm = pretrain(
        PretrainConfig(name="mlm", epochs=2, batch_size=16, warmup_steps=5, model=tiny_model()),
        data_dir=data_dir,
        runs_dir=tmp_path / "runs",
    )
    assert mlm["history"][-1]["train_loss"] < mlm["history"][0]["train_loss"]
    uniform = np.full((n_train, n_labels), 1.0 / n_labels, dtype=np.float32)
    np.save(tmp_path / "soft.npy", uniform)
    cfg = TrainConfig(
        name="student", epochs=1, batch_size=16, warmup_steps=5, model=tiny_model(), init_from="mlm",
        soft_targets=str(tmp_path / "soft.npy"), tfidf_share=0.0, distill_weight=1.0,
    )  # fmt: skip
    record = train(cfg, data_dir=data_dir, runs_dir=tmp_path / "runs", progress=False)
    # the soft targets alone are uniform: the loss is the cross-entropy to uniform, at least log(n_labels)
    assert record["history"][0]["train_loss"] >= np.log(n_labels) - 1e-4
    pretrained = torch.load(tmp_path / "runs" / "mlm" / "checkpoint.pt", weights_only=True)["state_dict"]
    started = Chatbot(tiny_model_for(n_labels))
    load_encoder(started, "mlm", tmp_path / "runs")
    assert torch.equal(started.tok_emb.weight, pretrained["tok_emb.weight"])


def tiny_model_for(n_labels: int) -> ChatbotConfig:
    cfg = tiny_model()
    cfg.vocab_size, cfg.n_labels = load_tokenizer(data.TOKENIZER_FILE).get_vocab_size(), n_labels
    return cfg
