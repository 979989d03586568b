"""Soft targets for distillation: a teacher's probabilities of every training utterance, row for row with
``train.jsonl``, written as ``.npy`` for ``lnserve train chatbot --soft-targets``.

Two teachers: an ensemble of trained runs (their mean softmax on the clean training text), and cross-fitting
(``--fold k`` runs, each trained without one fold of the training split: every row is predicted by the run that did
not see it, so the targets carry what a model really makes of an unseen message, not its memory of the label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.chatbot import data
from models.chatbot.tokenizer import encode, load_tokenizer
from models.chatbot.train import RUNS_DIR, fold_of, load_checkpoint, predict_logits


def ensemble_targets(
    runs: list[str], runs_dir: Path = RUNS_DIR, data_dir: Path = data.DATA_DIR
) -> np.ndarray:
    """Mean softmax (n_train, n_labels) of the runs on the clean training utterances."""
    train_set, _ = data.load_split(data_dir)
    tok = load_tokenizer(data.TOKENIZER_FILE)
    probs = []
    for run in runs:
        model, _ = load_checkpoint(run, runs_dir)
        ids = encode(tok, [e.text for e in train_set], model.cfg.max_len)
        probs.append(torch.softmax(predict_logits(model, ids), dim=1).numpy())
    return np.mean(probs, axis=0).astype(np.float32)


def cross_fitted_targets(
    runs: list[str], n_folds: int, runs_dir: Path = RUNS_DIR, data_dir: Path = data.DATA_DIR
) -> np.ndarray:
    """Softmax (n_train, n_labels) of each row by the run that left its fold out (`runs[k]` left out fold k)."""
    train_set, _ = data.load_split(data_dir)
    folds = np.array([fold_of(e, n_folds) for e in train_set])
    out = np.zeros((len(train_set), len(data.load_labels())), dtype=np.float32)
    for k, run in enumerate(runs):
        logits = torch.from_numpy(np.load(runs_dir / run / "held_out_logits.npy"))
        assert len(logits) == (folds == k).sum(), f"{run} did not leave out fold {k} of {n_folds}"
        out[folds == k] = torch.softmax(logits, dim=1).numpy()
    return out
