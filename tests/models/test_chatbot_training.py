"""Training mechanics on a tiny model and a slice of the real split: the loss falls, runs are reproducible."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from models.chatbot import data
from models.chatbot.model import ChatbotConfig
from models.chatbot.train import TrainConfig, augment, load_checkpoint, train


def tiny_run(tmp: Path, name: str) -> dict[str, Any]:
    train_set, val_set = data.load_split()
    data_dir = tmp / "data"
    data_dir.mkdir(exist_ok=True)
    data.write_jsonl(data_dir / "train.jsonl", train_set[::6])
    data.write_jsonl(data_dir / "val.jsonl", val_set[::6])
    model = ChatbotConfig(n_layer=1, n_head=2, d_model=16, d_ff=32, norm_placement="pre")
    cfg = TrainConfig(name=name, epochs=4, batch_size=16, lr=3e-3, warmup_steps=10, patience=10, model=model)
    return train(cfg, data_dir=data_dir, runs_dir=tmp / "runs", progress=False)


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
