"""Scoring a chatbot's probabilities the way the service answers: argmax, then the out-of-scope fallback when the
top probability is under `confidence_threshold` or its gap to the second under `margin_threshold`.

Every figure the export writes into a sidecar (validation and challenge, per message type and per label) and the
docs quote comes from here, for the transformer and the TF-IDF baseline alike. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.chatbot import data

CONFIDENCES = np.round(np.arange(0.0, 0.951, 0.05), 2)
MARGINS = np.round(np.arange(0.0, 0.501, 0.05), 2)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def decide(probs: np.ndarray, oos: int, conf: float, margin: float) -> np.ndarray:
    """The label index the service answers for each row of `probs` (N, n_labels)."""
    top2 = np.sort(probs, axis=1)[:, -2:]  # (N, 2)
    pred = probs.argmax(axis=1)
    return np.where((top2[:, 1] < conf) | (top2[:, 1] - top2[:, 0] < margin), oos, pred)


def scores(pred: np.ndarray, gold: np.ndarray, oos: int) -> dict[str, float]:
    """Accuracy, in-scope accuracy (right intent, no fallback) and out-of-scope recall."""
    in_scope = gold != oos
    return {
        "accuracy": float((pred == gold).mean()),
        "in_scope_accuracy": float((pred[in_scope] == gold[in_scope]).mean())
        if in_scope.any()
        else float("nan"),
        "oos_recall": float((pred[~in_scope] == oos).mean()) if (~in_scope).any() else float("nan"),
        "n": len(gold),
    }


def fallback_metrics(
    probs: np.ndarray, gold: np.ndarray, oos: int, conf: float, margin: float
) -> dict[str, Any]:
    return {
        "confidence_threshold": conf,
        "margin_threshold": margin,
        **scores(decide(probs, oos, conf, margin), gold, oos),
    }


def choose_thresholds(
    probs: np.ndarray, gold: np.ndarray, oos: int, max_in_scope_drop: float = 0.01
) -> dict[str, Any]:
    """On validation: the highest out-of-scope recall that costs at most `max_in_scope_drop` of in-scope accuracy
    against no threshold at all; ties go to the smallest thresholds."""
    grid = [fallback_metrics(probs, gold, oos, c, m) for c in CONFIDENCES for m in MARGINS]
    floor = grid[0]["in_scope_accuracy"] - max_in_scope_drop  # grid[0]: no threshold
    allowed = [r for r in grid if r["in_scope_accuracy"] >= floor - 1e-9]
    return max(allowed, key=lambda r: (r["oos_recall"], -r["confidence_threshold"] - r["margin_threshold"]))


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that minimises the validation negative log-likelihood (golden-section on log T)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        probs = softmax(logits, float(np.exp(log_t)))
        return float(-np.log(probs[np.arange(len(gold)), gold] + 1e-12).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> float:
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs((pred[sel] == gold[sel]).mean() - conf[sel].mean())
    return float(total)


def breakdown(pred: np.ndarray, gold: np.ndarray, groups: Sequence[str]) -> dict[str, dict[str, float]]:
    """Share answered right (and count) per group (message type or label)."""
    keys = np.array(groups)
    return {
        g: {"accuracy": float((pred[keys == g] == gold[keys == g]).mean()), "n": int((keys == g).sum())}
        for g in sorted(set(groups))
    }


def report(
    probs: np.ndarray, examples: list[data.Example], labels: list[str], conf: float = 0.0, margin: float = 0.0
) -> dict[str, Any]:
    """Overall scores, then per message type and per gold label, at the given thresholds."""
    oos = labels.index(data.OOS)
    gold = np.array([labels.index(e.intent) for e in examples])
    pred = decide(probs, oos, conf, margin)
    return {
        "confidence_threshold": conf,
        "margin_threshold": margin,
        **scores(pred, gold, oos),
        "by_type": breakdown(pred, gold, [e.type for e in examples]),
        "by_label": breakdown(pred, gold, [e.intent for e in examples]),
    }


def curve(probs: np.ndarray, examples: list[data.Example], labels: list[str], margin: float) -> list[dict]:
    """In-scope accuracy and out-of-scope recall as the confidence threshold rises (at a fixed margin)."""
    oos = labels.index(data.OOS)
    gold = np.array([labels.index(e.intent) for e in examples])
    return [
        fallback_metrics(probs, gold, oos, float(c), margin) for c in np.round(np.arange(0.0, 1.0, 0.025), 3)
    ]
