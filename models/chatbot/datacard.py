"""Writes ``data/README.md``, the data card: how the data was written and its counts, from the files themselves.

.venv/bin/python -m models.chatbot.datacard        (also run by `lnserve train chatbot-data`)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from models.chatbot import data

FIELD_WRITTEN = 500  # messages the field writer wrote, before the leakage filter

HOW = """\
# Chatbot data card

## What it is
Customer-support messages for a generic SaaS collaboration product (workspaces, projects, teams, subscriptions),
each labelled with one of 34 support intents or `out_of_scope` (`models/chatbot/intents.json` defines every label,
its meaning and its reply). English, with some non-native English, texting style and typos; out-of-scope messages
also include other languages and scripts, gibberish and pasted logs.

## How it was written
- **Seed set** (`type: seed`, {seed} lines): the first hand-written utterances of the project, 60–68 per intent and
  about 600 out of scope (short, mostly one request each).
- **Written set** (every other type): written per label by language-model writers working from one brief
  (`data/BRIEF.md`, kept as it was given), by hand — no templates, slot filling or programmatic paraphrase. The brief asked,
  for every label, for these types on purpose:
  `fragment` (1–4 words), `question`, `command`, `statement` (the situation without an explicit ask), `long`
  (2–6 sentences, context before the ask, more than 40 words; some over 70), `noisy` (typos, texting style, all
  caps, no punctuation), `non_native` (plausible non-native phrasing), `paraphrase` (the request without the
  label's obvious keyword) and `contrast` (explicitly not the confusable neighbour: "I don't want to cancel, just
  pay less"). Writers were told the confusable pairs (export↔import, delete account↔remove member↔cancel,
  downgrade↔cancel, invoice↔charge dispute↔refund, payment method↔charge dispute, permissions↔remove member,
  login problem↔reset password↔2FA↔security, bug↔performance↔mobile app, integration↔API) and varied persona,
  tone, English variety and where the ask sits.
- **Second round** (2026-12-01, types `email`, `technical`, `mixed`, `widget`; {round2} lines): written per label
  from `data/BRIEF2.md` by six more writers, about 60 per in-scope label (30 for greeting, goodbye and thanks) and
  365 out of scope, after the field set below showed what real support traffic looks like and where the models
  failed on it: pasted emails with greeting, context and sign-off; technical reports with error codes, versions and
  endpoints; messages whose main ask comes with a second, settled topic; what people type into a chat widget.
  The writers did not see the field set or the challenge split; lines equal or near (cosine ≥ {near}) to either,
  or to a line of the same label, were dropped (11 of 2,315).
- **Third round** (2026-12-02, `round: 3` in the files; {round3} lines): written from `data/BRIEF3.md` by four more
  writers, about eight in-scope labels each: for every in-scope label 35 out-of-scope near misses (10 for the
  courtesies) that ask the label's kind of thing about somebody else — another company's product or service, the
  customer's own business, a bank, landlord or tax office, a general technical or programming how-to, a job
  application or sales pitch addressed to us — and 8 in-scope twins (`group: twin`) that name a third-party
  product but ask about ours (importing from Asana, our Slack integration's notifications, our API called from a
  GitHub Action). It answers the weakest spot the challenge split and the field set showed after the second round:
  a product name next to in-scope words read as in scope. The writers saw neither held-out set nor the results on
  them (the brief names the kind of failure, not the messages); no line was equal or near (cosine ≥ {near}) to a
  held-out message or to a line of its own label (0 of 1,363 dropped).
- **Fourth round** (2026-12-02, `round: 4` in the files; {round4} lines): written from `data/BRIEF4.md` by six more
  writers, five or six in-scope labels each: for every in-scope label 22 lines of non-native English (16 for the
  courtesies), each tagged with the first language or English variety it imitates (`l1`: at least 10 per
  label, 20–22 in practice: Spanish, Brazilian Portuguese, Russian, Hindi/Indian English, Chinese, Arabic, Nigerian
  English, …; fragments, questions, long messages, formal pasted emails, contrasts with the confusable neighbour),
  12 lines that tell the request without the label's usual keyword (`group: keyword_free`, type `paraphrase`, half
  of them non-native), and 50 out-of-scope lines per writer (30 non-native near misses, 20 general). Non-native
  English and keyword-free paraphrase are two of the kinds the issue names; the writers saw neither held-out set nor
  any result on them; lines equal or near (cosine ≥ {near}) to a held-out message, to a line of their own label or
  to each other were dropped (2 of 1,420, near each other).
- **Out of scope**: near misses (`group: near_miss`, with the in-scope label whose vocabulary they borrow in
  `near`): other products' passwords and accounts, banks and invoices, cancelling other services, routers, phones,
  email providers, opening hours of other organisations, general how-to questions; and general messages
  (`group: general`, with a `topic`): small talk, trivia, coding, cooking, travel, other languages (`foreign`),
  gibberish, pasted logs and stack traces (`pasted`), spam, prompt injection.
- **The challenge split** (`challenge.jsonl`) was written by another writer who saw only `intents.json`, before
  any training on this data; it is never used for training, model selection or thresholds.
- **The field set** (`field.jsonl`, 2026-12-01) was written after the first models were trained, by a third writer who
  saw only `intents.json` (not the utterances, the brief or the challenge split), in the styles of real support
  traffic: `chat` (what people type into a widget), `email` (pasted, with greeting, context and sign-off),
  `frustrated`, `vague` (the feature described by its symptoms), `esl`, `technical` (error codes, versions,
  endpoints), `mixed` (two topics, one main ask), `oos_near`, `oos_far`. Its {n_field_written} messages lost
  {n_field_dropped} whose normalised text equals, or whose cosine is ≥ {near} to, a training, validation or
  challenge message (mostly short courtesies and out-of-scope small talk). It only measures, over HTTP
  (`python -m models.chatbot.http_eval --data models/chatbot/data/field.jsonl`). Its *styles* chose the second
  round's types (above), so after that round it measures unseen messages in known styles, no longer unseen styles.

## Cleaning
- Exact duplicates within a label (case-insensitive) are dropped.
- Near-duplicates: character 4-gram vectors, cosine ≥ {near} (`data.near_duplicate_pairs`); within a label the
  later one is dropped. Across labels the near pairs were deliberate contrasts (upgrade/downgrade, "what time does
  customer service close" vs the same about Amazon) and both stay, except texts that truly carry both labels
  ("ciao" as greeting and goodbye, "how do i change my name after getting married" as update_profile and
  out_of_scope), which were dropped.
- Leakage: every training or validation utterance whose normalised text (NFKC, lower case, punctuation and spacing
  folded) equals a challenge message, or whose cosine to one is ≥ {near}, was dropped (mostly one- and two-word
  greetings and thanks). `tests/models/test_chatbot_data.py` checks all of this on every run.

## Split
Validation: `sha1(intent + "\\t" + text.lower().strip()) % 100 < {val_percent}` (fixed, order-independent); the
rest is training. Train {n_train}, validation {n_val}, challenge {n_challenge}, field {n_field}.
"""


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def render() -> str:
    examples = data.read_utterances()
    train, val = data.load_split()
    challenge = data.load_challenge()
    field = data.load_field()
    labels = data.load_labels()
    types = [t for t, _ in Counter(e.type for e in examples).most_common()]
    by_label = {label: [e for e in examples if e.intent == label] for label in labels}
    rows = []
    for label, items in by_label.items():
        counts = Counter(e.type for e in items)
        over40 = float((data.word_counts(items) > 40).mean())
        rows.append([label, str(len(items)), f"{over40:.1%}", *(str(counts.get(t, 0)) for t in types)])
    totals = Counter(e.type for e in examples)
    rows.append(["**all**", str(len(examples)), "", *(str(totals[t]) for t in types)])
    # the files' own rows, with the keys read_utterances drops (group, near, round)
    raw = {
        path.stem: [
            json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        for path in sorted(data.UTTERANCE_DIR.glob("*.jsonl"))
    }
    oos_rows = raw[data.OOS]
    all_rows = [row for file_rows in raw.values() for row in file_rows]
    rounds = Counter(row.get("round") for row in all_rows)
    groups = Counter(row.get("group", "seed") for row in oos_rows)
    near = groups["near_miss"] / len(oos_rows)
    challenge_types = Counter(e.type for e in challenge)
    challenge_labels = Counter(e.intent for e in challenge)
    text = HOW.format(
        round3=rounds[3],
        round4=rounds[4],
        seed=totals["seed"],
        # the second round is the only unmarked one with these types
        round2=sum(
            row.get("type") in ("email", "technical", "mixed", "widget") and "round" not in row
            for row in all_rows
        ),
        near=data.NEAR_DUPLICATE,
        val_percent=data.VAL_PERCENT,
        n_train=len(train),
        n_val=len(val),
        n_challenge=len(challenge),
        n_field=len(field),
        n_field_written=FIELD_WRITTEN,
        n_field_dropped=FIELD_WRITTEN - len(field),
    )
    text += "\n## Counts per label and type (utterance files, before the split)\n\n"
    text += table(["label", "utterances", "over 40 words", *types], rows) + "\n"
    text += (
        f"\nOut of scope: {len(oos_rows)} utterances — {groups['near_miss']} near misses ({near:.1%}), "
        f"{groups['general']} general, {groups['seed']} from the seed set.\n"
    )
    text += "\n## Challenge split\n\n"
    text += table(["type", "messages"], [[t, str(n)] for t, n in challenge_types.most_common()]) + "\n\n"
    text += table(["label", "messages"], [[label, str(challenge_labels[label])] for label in labels]) + "\n"
    text += "\n## Field set\n\n"
    text += table(
        ["type", "messages"], [[t, str(n)] for t, n in Counter(e.type for e in field).most_common()]
    )
    text += "\n"
    return text


def write(path: Path = data.DATA_DIR / "README.md") -> Path:
    path.write_text(render(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"wrote {write()}")
