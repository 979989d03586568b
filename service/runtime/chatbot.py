"""Chatbot runtime: tokenise with the shipped tokenizer, pad to a length bucket, classify, pick a reply."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from service.runtime.base import ArtifactError, FloatArray, Runtime, split_paths

OUT_OF_SCOPE = "out_of_scope"
N_ALTERNATIVES = 3


@dataclass(frozen=True)
class ChatItem:
    text: str
    diagnostic: bool = False


@dataclass(frozen=True)
class ChatResult:
    intent: str
    confidence: float
    reply: str
    fallback: bool
    alternatives: list[tuple[str, float]]
    logits: FloatArray  # (n_labels,)
    probabilities: FloatArray  # (n_labels,)
    n_tokens: int
    activations: FloatArray | None  # (n_layers, n_statistics) when the item ran the diagnostic graph


def length_buckets(max_length: int) -> list[int]:
    """Padded lengths the graphs see: powers of two from 8, and `max_length` itself."""
    buckets = [b for b in (8, 16, 32, 64, 128, 256, 512) if b < max_length]
    return [*buckets, max_length]


def load_replies(path: str) -> tuple[dict[str, str], str]:
    """Replies per label and the fallback reply from intents.json (`labels: [{name, reply}]`, `fallback_reply`)."""
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    replies = {str(entry["name"]): str(entry["reply"]) for entry in data.get("labels", [])}
    fallback = data.get("fallback_reply") or replies.get(OUT_OF_SCOPE)
    if not fallback:
        raise ArtifactError(f"{path} has no fallback_reply")
    return replies, str(fallback)


class ChatbotRuntime(Runtime[ChatItem, ChatResult]):
    def _load_extras(self) -> None:
        block = self.artifact.sidecar["chatbot"]
        self.labels: list[str] = [str(label) for label in block["labels"]]
        self.max_length = int(block["max_length"])
        self.pad_id = int(block.get("pad_id", 0))
        self.confidence_threshold = float(block.get("confidence_threshold", 0.0))
        self.margin_threshold = float(block.get("margin_threshold", 0.0))
        self.buckets = length_buckets(self.max_length)
        self.tokenizer = Tokenizer.from_file(str(self.artifact.folder / block["tokenizer"]))
        self.replies, self.fallback_reply = load_replies(str(self.artifact.folder / block["intents"]))
        missing = [label for label in self.labels if label not in self.replies and label != OUT_OF_SCOPE]
        if missing:
            raise ArtifactError(f"intents.json has no reply for labels {missing}")

    def encode(self, texts: list[str]) -> list[list[int]]:
        # encode_batch equals encode per text unless the tokenizer pads, in which case it pads to the batch.
        if self.tokenizer.padding is None:
            encodings = self.tokenizer.encode_batch(texts)
        else:
            encodings = [self.tokenizer.encode(text) for text in texts]
        return [enc.ids[: self.max_length] or [self.pad_id] for enc in encodings]

    def warmup_batches(self, batch_size: int) -> list[list[ChatItem]]:
        # A word the tokenizer splits into a few tokens, repeated to reach each bucket's length.
        return [
            [ChatItem("hello " * bucket, diagnostic=diag) for _ in range(batch_size)]
            for bucket in self.buckets
            for diag in (False, True)
        ]

    def predict(self, items: list[ChatItem]) -> list[ChatResult]:
        ids = self.encode([item.text for item in items])
        results: list[ChatResult | None] = [None] * len(items)
        for path, indices in zip(
            ("fast", "diagnostic"), split_paths([i.diagnostic for i in items]), strict=True
        ):
            if not indices:
                continue
            logits, activations = self._run(path, [ids[i] for i in indices])
            for row, index in enumerate(indices):
                stats = activations[row] if activations is not None else None
                results[index] = self._decide(logits[row], len(ids[index]), stats)
        return [result for result in results if result is not None]

    def _run(self, path: str, ids: list[list[int]]) -> tuple[FloatArray, FloatArray | None]:
        longest = max(len(row) for row in ids)
        length = next(b for b in self.buckets if b >= longest)
        input_ids = np.full((len(ids), length), self.pad_id, dtype=np.int64)  # (B, L) right-padded
        mask = np.zeros((len(ids), length), dtype=np.int64)  # (B, L) 1 = real token
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if path == "fast":
            (logits,) = self.run_graph("fast", feeds, ["logits"])
            return logits, None
        logits, activations = self.run_graph("diagnostic", feeds, ["logits", "activations"])
        return logits, activations

    def _decide(self, logits: FloatArray, n_tokens: int, activations: FloatArray | None) -> ChatResult:
        shifted = logits.astype(np.float64) - np.max(logits)
        probabilities = np.exp(shifted) / np.exp(shifted).sum()
        order = np.argsort(-probabilities)
        top, second = (
            float(probabilities[order[0]]),
            float(probabilities[order[1]]) if len(order) > 1 else 0.0,
        )
        label = self.labels[int(order[0])]
        fallback = (
            label == OUT_OF_SCOPE or top < self.confidence_threshold or top - second < self.margin_threshold
        )
        intent = OUT_OF_SCOPE if fallback else label
        alternatives = [
            (self.labels[int(i)], float(probabilities[i])) for i in order if self.labels[int(i)] != intent
        ]
        return ChatResult(
            intent=intent,
            confidence=top,
            reply=self.fallback_reply if fallback else self.replies[label],
            fallback=fallback,
            alternatives=alternatives[:N_ALTERNATIVES],
            logits=logits.astype(np.float32),
            probabilities=probabilities.astype(np.float32),
            n_tokens=n_tokens,
            activations=activations,
        )
