"""The chatbot dataset: utterance files per intent, a fixed hash-based validation split, the label list.

``utterances/<intent>.txt`` holds one utterance per line. A line goes to validation iff
``int(sha1(intent + "\\t" + text.lower().strip()).hexdigest(), 16) % 100 < 18``, so the split never depends on
file order or on which other lines exist. ``train.jsonl`` / ``val.jsonl`` are written from it and committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

CHATBOT_DIR = Path(__file__).resolve().parent
DATA_DIR = CHATBOT_DIR / "data"
UTTERANCE_DIR = DATA_DIR / "utterances"
TRAIN_FILE = DATA_DIR / "train.jsonl"
VAL_FILE = DATA_DIR / "val.jsonl"
INTENTS_FILE = CHATBOT_DIR / "intents.json"
TOKENIZER_FILE = CHATBOT_DIR / "tokenizer.json"
ARTIFACT_DIR = CHATBOT_DIR / "artifacts"
VAL_PERCENT = 18
# The taxonomy, in its order: the label order until intents.json (the source of truth) exists.
TAXONOMY = [
    "greeting", "goodbye", "thanks", "contact_human", "business_hours", "reset_password",
    "login_problem", "two_factor_auth", "change_email", "update_profile", "delete_account",
    "pricing_info", "upgrade_plan", "downgrade_plan", "cancel_subscription", "refund_request",
    "invoice_request", "update_payment_method", "billing_charge_dispute", "trial_extension",
    "add_team_member", "remove_team_member", "permissions_roles", "export_data", "import_data",
    "integration_setup", "api_access", "report_bug", "feature_request", "performance_issue",
    "mobile_app", "notification_settings", "data_privacy", "security_concern", "out_of_scope",
]  # fmt: skip


@dataclass(frozen=True)
class Example:
    text: str
    intent: str


def is_validation(intent: str, text: str) -> bool:
    digest = hashlib.sha1(f"{intent}\t{text.lower().strip()}".encode()).hexdigest()
    return int(digest, 16) % 100 < VAL_PERCENT


def read_utterances(utterance_dir: Path = UTTERANCE_DIR) -> list[Example]:
    """Every non-empty line of every ``<intent>.txt``, de-duplicated per intent (case-insensitively)."""
    examples: list[Example] = []
    for path in sorted(utterance_dir.glob("*.txt")):
        seen: set[str] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text and text.lower() not in seen:
                seen.add(text.lower())
                examples.append(Example(text, path.stem))
    return examples


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not is_validation(e.intent, e.text)]
    val = [e for e in examples if is_validation(e.intent, e.text)]
    return train, val


def write_jsonl(path: Path, examples: list[Example]) -> None:
    lines = (json.dumps({"text": e.text, "intent": e.intent}, ensure_ascii=False) for e in examples)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_jsonl(path: Path) -> list[Example]:
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [Example(r["text"], r["intent"]) for r in rows]


def load_labels(intents_file: Path = INTENTS_FILE) -> list[str]:
    """Logits column order: intents.json's order (the taxonomy's order until that file exists)."""
    if intents_file.exists():
        return [label["name"] for label in json.loads(intents_file.read_text(encoding="utf-8"))["labels"]]
    return list(TAXONOMY)


def write_split(utterance_dir: Path = UTTERANCE_DIR, data_dir: Path = DATA_DIR) -> tuple[int, int]:
    """Regenerate ``train.jsonl`` and ``val.jsonl`` from the utterance files; returns their sizes."""
    train, val = split(read_utterances(utterance_dir))
    write_jsonl(data_dir / "train.jsonl", train)
    write_jsonl(data_dir / "val.jsonl", val)
    return len(train), len(val)


def load_split(data_dir: Path = DATA_DIR) -> tuple[list[Example], list[Example]]:
    return read_jsonl(data_dir / "train.jsonl"), read_jsonl(data_dir / "val.jsonl")


if __name__ == "__main__":
    n_train, n_val = write_split()
    print(f"train {n_train}, validation {n_val}")
