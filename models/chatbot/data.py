"""The chatbot dataset: utterance files per intent, a fixed hash-based validation split, the challenge split.

``utterances/<intent>.jsonl`` holds one utterance per line, ``{"text", "type", ...}`` (how the files were written
and what the types mean: ``data/README.md``). A line goes to validation iff
``int(sha1(intent + "\\t" + text.lower().strip()).hexdigest(), 16) % 100 < 18``, so the split never depends on
file order or on which other lines exist. ``train.jsonl`` / ``val.jsonl`` are written from it and committed.
``challenge.jsonl`` was written separately, before any training on this data, and is never trained on, selected on
or thresholded on: it only measures. ``field.jsonl`` is a second such test set, written later by yet another
writer in the styles of real support traffic (pasted emails, technical reports, mixed asks), scored over HTTP
(``models.chatbot.http_eval``).

Torch-free; the service imports the paths.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHATBOT_DIR = Path(__file__).resolve().parent
DATA_DIR = CHATBOT_DIR / "data"
UTTERANCE_DIR = DATA_DIR / "utterances"
TRAIN_FILE = DATA_DIR / "train.jsonl"
VAL_FILE = DATA_DIR / "val.jsonl"
CHALLENGE_FILE = DATA_DIR / "challenge.jsonl"
FIELD_FILE = DATA_DIR / "field.jsonl"
INTENTS_FILE = CHATBOT_DIR / "intents.json"
TOKENIZER_FILE = CHATBOT_DIR / "tokenizer.json"
ARTIFACT_DIR = CHATBOT_DIR / "artifacts"
VAL_PERCENT = 18
OOS = "out_of_scope"
NEAR_DUPLICATE = 0.85  # cosine of character 4-gram vectors; pairs above it are near-duplicates


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    type: str = ""


def normalise(text: str) -> str:
    """Case, width, punctuation and spacing folded: what 'the same text' means for leakage checks."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", folded).split())


def is_validation(intent: str, text: str) -> bool:
    digest = hashlib.sha1(f"{intent}\t{text.lower().strip()}".encode()).hexdigest()
    return int(digest, 16) % 100 < VAL_PERCENT


def read_utterances(utterance_dir: Path = UTTERANCE_DIR) -> list[Example]:
    """Every line of every ``<intent>.jsonl``, de-duplicated per intent (case-insensitively), in file order."""
    examples: list[Example] = []
    for path in sorted(utterance_dir.glob("*.jsonl")):
        seen: set[str] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["text"].strip()
            if text and text.lower() not in seen:
                seen.add(text.lower())
                examples.append(Example(text, path.stem, row.get("type", "")))
    return examples


def near_duplicate_pairs(texts: list[str], threshold: float = NEAR_DUPLICATE) -> list[tuple[int, int, float]]:
    """(i, j, similarity) with i < j for every pair of texts whose character 4-gram vectors have cosine >= threshold."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(
        analyzer="char", ngram_range=(4, 4), lowercase=True, use_idf=False
    ).fit_transform([normalise(t) or t for t in texts])  # rows are L2-normalised
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, len(texts), 1000):
        block = (vectors[start : start + 1000] @ vectors.T).tocoo()
        rows, keep = block.row + start, block.data >= threshold
        keep &= rows < block.col
        pairs += zip(rows[keep].tolist(), block.col[keep].tolist(), block.data[keep].tolist(), strict=True)
    return sorted(pairs)


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not is_validation(e.intent, e.text)]
    val = [e for e in examples if is_validation(e.intent, e.text)]
    return train, val


def write_jsonl(path: Path, examples: list[Example]) -> None:
    rows = ({"text": e.text, "intent": e.intent, "type": e.type} for e in examples)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read_jsonl(path: Path) -> list[Example]:
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [Example(r["text"], r["intent"], r.get("type", "")) for r in rows]


def load_labels(intents_file: Path = INTENTS_FILE) -> list[str]:
    """Logits column order: intents.json's order."""
    return [label["name"] for label in json.loads(intents_file.read_text(encoding="utf-8"))["labels"]]


def write_split(utterance_dir: Path = UTTERANCE_DIR, data_dir: Path = DATA_DIR) -> tuple[int, int]:
    """Regenerate ``train.jsonl`` and ``val.jsonl`` from the utterance files; returns their sizes."""
    train, val = split(read_utterances(utterance_dir))
    write_jsonl(data_dir / "train.jsonl", train)
    write_jsonl(data_dir / "val.jsonl", val)
    return len(train), len(val)


def load_split(data_dir: Path = DATA_DIR) -> tuple[list[Example], list[Example]]:
    return read_jsonl(data_dir / "train.jsonl"), read_jsonl(data_dir / "val.jsonl")


def load_challenge(path: Path = CHALLENGE_FILE) -> list[Example]:
    return read_jsonl(path)


def load_field(path: Path = FIELD_FILE) -> list[Example]:
    return read_jsonl(path)


def word_counts(examples: list[Example]) -> np.ndarray:
    return np.array([len(e.text.split()) for e in examples])


if __name__ == "__main__":
    n_train, n_val = write_split()
    print(f"train {n_train}, validation {n_val}")
