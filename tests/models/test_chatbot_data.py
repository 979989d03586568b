"""The chatbot dataset as committed: sizes, coverage of the hard cases, no near-duplicates, no challenge leakage."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from models.chatbot import data, datacard

EXAMPLES = data.read_utterances()
CHALLENGE = data.load_challenge()
FIELD = data.load_field()
LABELS = data.load_labels()
IN_SCOPE = [label for label in LABELS if label != data.OOS]
WRITTEN_TYPES = {
    "fragment",
    "question",
    "command",
    "statement",
    "long",
    "noisy",
    "non_native",
    "paraphrase",
    "contrast",
}


@pytest.fixture(scope="module")
def pairs() -> list[tuple[int, int, float]]:
    """Near-duplicate pairs among the utterances followed by the challenge and the field messages (one pass for
    every test)."""
    return data.near_duplicate_pairs([e.text for e in EXAMPLES + CHALLENGE + FIELD])


def by_label(label: str) -> list[data.Example]:
    return [e for e in EXAMPLES if e.intent == label]


def test_every_in_scope_label_has_at_least_250_utterances_and_every_written_type() -> None:
    for label in IN_SCOPE:
        items = by_label(label)
        assert len(items) >= 250, label
        assert {e.type for e in items} >= WRITTEN_TYPES, label


def test_every_label_has_at_least_15_percent_of_its_utterances_over_40_words() -> None:
    for label in LABELS:
        words = data.word_counts(by_label(label))
        assert (words > 40).mean() >= 0.15, (label, round(float((words > 40).mean()), 3))


def test_out_of_scope_has_3000_utterances_of_which_40_percent_are_near_misses() -> None:
    rows = [json.loads(line) for line in (data.UTTERANCE_DIR / "out_of_scope.jsonl").read_text().splitlines()]
    assert len(rows) >= 3000
    near = [row for row in rows if row.get("group") == "near_miss"]
    assert len(near) / len(rows) >= 0.40
    assert {row["near"] for row in near} == set(IN_SCOPE)  # every in-scope label has its look-alikes


def test_no_two_utterances_of_one_label_are_near_duplicates(pairs: list[tuple[int, int, float]]) -> None:
    n = len(EXAMPLES)
    same_label = [(i, j) for i, j, _ in pairs if j < n and EXAMPLES[i].intent == EXAMPLES[j].intent]
    assert same_label == []


def test_no_challenge_message_or_near_copy_of_one_is_in_training_or_validation(
    pairs: list[tuple[int, int, float]],
) -> None:
    train, val = data.load_split()
    assert sorted(e.text for e in train + val) == sorted(
        e.text for e in EXAMPLES
    )  # the pairs cover the split
    seen = {data.normalise(e.text) for e in train + val}
    assert [e.text for e in CHALLENGE if data.normalise(e.text) in seen] == []
    n = len(EXAMPLES)
    assert [(i, j) for i, j, _ in pairs if i < n <= j < n + len(CHALLENGE)] == []


def test_no_field_message_or_near_copy_of_one_is_in_training_validation_or_challenge(
    pairs: list[tuple[int, int, float]],
) -> None:
    seen = {data.normalise(e.text) for e in EXAMPLES + CHALLENGE}
    assert [e.text for e in FIELD if data.normalise(e.text) in seen] == []
    first_field = len(EXAMPLES) + len(CHALLENGE)
    assert [(i, j) for i, j, _ in pairs if i < first_field <= j] == []


def test_field_set_covers_every_label_in_every_style() -> None:
    assert len(FIELD) >= 450
    assert set(Counter(e.intent for e in FIELD)) == set(LABELS)
    assert min(Counter(e.intent for e in FIELD if e.intent != data.OOS).values()) >= 8
    in_scope_types = {"chat", "email", "frustrated", "vague", "esl", "technical", "mixed"}
    assert {e.type for e in FIELD if e.intent != data.OOS} == in_scope_types
    assert {e.type for e in FIELD if e.intent == data.OOS} == {"oos_near", "oos_far"}


def test_challenge_split_has_600_typed_messages_covering_every_label() -> None:
    challenge = CHALLENGE
    assert len(challenge) >= 600
    assert set(Counter(e.intent for e in challenge)) == set(LABELS)
    assert min(Counter(e.intent for e in challenge if e.intent != data.OOS).values()) >= 15
    assert {e.type for e in challenge} >= {"short", "long_context", "very_long", "confusable", "paraphrase"}
    assert {"oos_near", "oos_far"} <= {e.type for e in challenge if e.intent == data.OOS}


def test_committed_split_is_the_hash_rule_applied_to_the_utterance_files(
    tmp_path: pytest.TempPathFactory,
) -> None:
    data.write_split(data.UTTERANCE_DIR, tmp_path)  # type: ignore[arg-type]
    assert (tmp_path / "train.jsonl").read_text() == data.TRAIN_FILE.read_text()  # type: ignore[operator]
    assert (tmp_path / "val.jsonl").read_text() == data.VAL_FILE.read_text()  # type: ignore[operator]
    train, val = data.load_split()
    assert all(data.is_validation(e.intent, e.text) for e in val)
    assert not any(data.is_validation(e.intent, e.text) for e in train)
    assert {e.intent for e in train} == {e.intent for e in val} == set(LABELS)


def test_the_data_card_is_up_to_date() -> None:
    assert (data.DATA_DIR / "README.md").read_text(encoding="utf-8") == datacard.render()
