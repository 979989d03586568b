"""Labelled messages scored the way a user meets the chatbot: each one posted to `POST /v1/chat` of a real lnserve
server, per served model, next to the TF-IDF + LR baseline (its out-of-scope thresholds chosen on validation, as
for the transformer) on the same messages.

    python -m models.chatbot.http_eval --data models/chatbot/data/field.jsonl [--url http://host:port]

Without `--url` a server is started on a free loopback port (`bench.servers`) and stopped at the end. The figures
are the service's own answers (intent after its thresholds), so they include everything between the HTTP body and
the reply. Prints a Markdown table per model (overall, per message type, the lowest labels); `--out` writes the
same as JSON.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from models.chatbot import data, evaluate

ZOO = ("chatbot-post", "chatbot-pre", "chatbot-peri", "chatbot-peri-dt0.1", "chatbot-pre-rms")
BASELINE = "TF-IDF + LR"


def ask(url: str, model: str, message: str) -> str:
    """The intent `/v1/chat` answers for `message` (a non-2xx answer raises)."""
    body = json.dumps({"message": message, "model": model}).encode()
    request = urllib.request.Request(
        url + "/v1/chat", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["intent"])


def ask_all(url: str, model: str, messages: list[str], workers: int = 4) -> list[str]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda m: ask(url, model, m), messages))


def score(predicted: list[str], examples: list[data.Example], labels: list[str]) -> dict[str, Any]:
    """Accuracy, in-scope accuracy, out-of-scope recall; per message type and per gold label."""
    oos = labels.index(data.OOS)
    pred = np.array([labels.index(p) for p in predicted])
    gold = np.array([labels.index(e.intent) for e in examples])
    return {
        **evaluate.scores(pred, gold, oos),
        "by_type": evaluate.breakdown(pred, gold, [e.type for e in examples]),
        "by_label": evaluate.breakdown(pred, gold, [e.intent for e in examples]),
    }


def baseline_answers(examples: list[data.Example], labels: list[str]) -> list[str]:
    """The TF-IDF + LR baseline fitted on the training split, its thresholds chosen on validation."""
    from models.chatbot import baseline

    train_set, val_set = data.load_split()
    pipe = baseline.fit([e.text for e in train_set], [e.intent for e in train_set])
    oos = labels.index(data.OOS)
    val_gold = np.array([labels.index(e.intent) for e in val_set])
    chosen = evaluate.choose_thresholds(
        baseline.probabilities(pipe, [e.text for e in val_set], labels), val_gold, oos
    )
    probs = baseline.probabilities(pipe, [e.text for e in examples], labels)
    pred = evaluate.decide(probs, oos, chosen["confidence_threshold"], chosen["margin_threshold"])
    return [labels[i] for i in pred]


def table(results: dict[str, dict[str, Any]], lowest: int = 3) -> str:
    names = list(results)
    first = results[names[0]]
    lines = [
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| accuracy | " + " | ".join(f"{r['accuracy']:.3f}" for r in results.values()) + " |",
        "| in-scope accuracy | "
        + " | ".join(f"{r['in_scope_accuracy']:.3f}" for r in results.values())
        + " |",
        "| out-of-scope recall | " + " | ".join(f"{r['oos_recall']:.3f}" for r in results.values()) + " |",
    ]
    for kind in first["by_type"]:
        n = first["by_type"][kind]["n"]
        cells = " | ".join(f"{r['by_type'][kind]['accuracy']:.3f}" for r in results.values())
        lines.append(f"| type `{kind}` (n = {n}) | {cells} |")
    for name, r in results.items():
        in_scope = {k: v for k, v in r["by_label"].items() if k != data.OOS}
        worst = sorted(in_scope.items(), key=lambda kv: kv[1]["accuracy"])[:lowest]
        text = ", ".join(f"{label} {v['accuracy']:.2f} (n = {v['n']})" for label, v in worst)
        lines.append(f"\nLowest in-scope labels, {name}: {text}")
    return "\n".join(lines)


def run(
    url: str, examples: list[data.Example], models: list[str], with_baseline: bool
) -> dict[str, dict[str, Any]]:
    labels = data.load_labels()
    messages = [e.text for e in examples]
    results = {model: score(ask_all(url, model, messages), examples, labels) for model in models}
    if with_baseline:
        results[BASELINE] = score(baseline_answers(examples, labels), examples, labels)
    return results


def main() -> None:
    import argparse
    from contextlib import nullcontext

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="JSONL of {text, intent, type}")
    parser.add_argument("--url", help="a running lnserve (default: start one)")
    parser.add_argument("--models", nargs="+", default=list(ZOO))
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    examples = data.read_jsonl(args.data)
    if args.url:
        context: Any = nullcontext({"lnserve": args.url})
    else:
        from bench.servers import ServerSpec, running

        context = running([ServerSpec("lnserve")])
    with context as urls:
        results = run(urls["lnserve"], examples, args.models, not args.no_baseline)
    print(f"{args.data} ({len(examples)} messages) over HTTP\n\n{table(results)}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
