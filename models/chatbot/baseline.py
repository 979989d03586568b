"""The baseline the transformer must beat: TF-IDF word (1-2) + char (2-5, within word bounds) n-grams and a
multinomial logistic regression, trained on the same training split and scored like the transformer
(`models.chatbot.evaluate`) on validation and on the challenge split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union
from threadpoolctl import threadpool_limits

from models.chatbot import data, evaluate

OOS = data.OOS


def build_pipeline(seed: int = 0) -> Any:
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), lowercase=True, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True, sublinear_tf=True),
    )
    return make_pipeline(features, LogisticRegression(C=10.0, max_iter=2000, random_state=seed))


def fit(texts: list[str], intents: list[str], seed: int = 0) -> Any:
    # One BLAS thread: several times faster than an oversubscribed pool on a shared 2-core machine.
    with threadpool_limits(1):
        return build_pipeline(seed).fit(texts, intents)


def probabilities(pipe: Any, texts: list[str], labels: list[str]) -> np.ndarray:
    """(N, n_labels) in `labels` order."""
    columns = [list(pipe.classes_).index(label) for label in labels]
    with threadpool_limits(1):
        return np.asarray(pipe.predict_proba(texts))[:, columns]


def evaluate_all(data_dir: Path = data.DATA_DIR) -> dict[str, Any]:
    """The baseline on validation and challenge: argmax (as the issue's figures are), and with a confidence /
    margin fallback chosen on validation by the transformer's rule."""
    labels = data.load_labels()
    train_set, val_set = data.load_split(data_dir)
    challenge = data.load_challenge()
    pipe = fit([e.text for e in train_set], [e.intent for e in train_set])
    val_probs = probabilities(pipe, [e.text for e in val_set], labels)
    challenge_probs = probabilities(pipe, [e.text for e in challenge], labels)
    gold = np.array([labels.index(e.intent) for e in val_set])
    chosen = evaluate.choose_thresholds(val_probs, gold, labels.index(OOS))
    conf, margin = chosen["confidence_threshold"], chosen["margin_threshold"]
    return {
        "validation": evaluate.report(val_probs, val_set, labels),
        "challenge": evaluate.report(challenge_probs, challenge, labels),
        "validation_thresholded": evaluate.report(val_probs, val_set, labels, conf, margin),
        "challenge_thresholded": evaluate.report(challenge_probs, challenge, labels, conf, margin),
        "challenge_curve": evaluate.curve(challenge_probs, challenge, labels, margin),
    }


if __name__ == "__main__":
    result = evaluate_all()
    for split in ("validation", "challenge", "validation_thresholded", "challenge_thresholded"):
        r = result[split]
        print(
            f"{split}: accuracy {r['accuracy']:.4f}, in-scope {r['in_scope_accuracy']:.4f}, "
            f"OOS recall {r['oos_recall']:.4f} (conf {r['confidence_threshold']}, margin {r['margin_threshold']})"
        )
