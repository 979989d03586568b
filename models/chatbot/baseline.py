"""The baseline the transformer must beat: TF-IDF word (1-2) + char (2-5, within word bounds) n-grams and a
multinomial logistic regression, trained and scored on the same fixed split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union
from threadpoolctl import threadpool_limits

from models.chatbot import data

OOS = "out_of_scope"


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


def evaluate(data_dir: Path = data.DATA_DIR) -> dict[str, float]:
    """Validation accuracy, in-scope accuracy and out-of-scope recall of the baseline (argmax, no threshold)."""
    train_set, val_set = data.load_split(data_dir)
    pipe = fit([e.text for e in train_set], [e.intent for e in train_set])
    pred = np.array(pipe.predict([e.text for e in val_set]))
    gold = np.array([e.intent for e in val_set])
    oos = gold == OOS
    return {
        "val_accuracy": float((pred == gold).mean()),
        "in_scope_accuracy": float((pred[~oos] == gold[~oos]).mean()),
        "oos_recall": float((pred[oos] == OOS).mean()) if oos.any() else float("nan"),
    }


if __name__ == "__main__":
    print(evaluate())
