"""Chatbot runtime: the shipped tokenizer per item, a length bucket per batch (padded to its longest message on the
CPU, to the bucket on CUDA), the thresholds and replies per item."""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from models.chatbot.tokenizer import encode, load_tokenizer
from service.runtime.base import ArtifactError, FloatArray, Outcome, Runtime, with_activations

OUT_OF_SCOPE = "out_of_scope"
N_ALTERNATIVES = 3


class ChatbotBlock(BaseModel):
    """The sidecar's `chatbot` block."""

    labels: list[str] = Field(min_length=2)
    tokenizer: str
    intents: str
    max_length: int = Field(ge=1)
    pad_id: int = 0
    confidence_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    margin_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    temperature: float = Field(default=1.0, gt=0.0)


@dataclass(frozen=True)
class ChatItem:
    ids: list[int]  # token ids, truncated to max_length, never empty


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
    def prepare(self) -> None:
        self.config = self.block(ChatbotBlock)
        self.labels = self.config.labels
        self.buckets = length_buckets(self.config.max_length)
        self.tokenizer = load_tokenizer(self.shared_file(self.config.tokenizer))
        self.replies, self.fallback_reply = load_replies(str(self.shared_file(self.config.intents)))
        missing = [label for label in self.labels if label not in self.replies and label != OUT_OF_SCOPE]
        if missing:
            raise ArtifactError(f"intents.json has no reply for labels {missing}")

    def shared_file(self, relative: str) -> Path:
        """A file the sidecar names relative to its folder (`../../tokenizer.json`); a version folder
        `<name>/<version>/` sits one level below the unversioned artifact folder the path was written for."""
        folder = self.artifact.folder
        path = folder / relative
        return path if path.is_file() or not folder.name.isdigit() else folder.parent / relative

    def item(self, text: str) -> ChatItem:
        return ChatItem(encode(self.tokenizer, [text], self.config.max_length)[0])

    def bucket(self, n_tokens: int) -> int:
        return next(b for b in self.buckets if b >= n_tokens)

    def batch_key(self, item: ChatItem) -> Hashable:
        return self.bucket(len(item.ids))

    def warmup_batches(self, batch_size: int) -> list[list[ChatItem]]:
        return [
            [ChatItem([self.config.pad_id + 2] * bucket) for _ in range(batch_size)]
            for bucket in self.buckets
        ]

    def feeds(self, items: list[ChatItem]) -> dict[str, np.ndarray]:
        longest = max(len(item.ids) for item in items)
        # On the CPU a batch is padded to its longest message only: the graph takes any length and the mask makes
        # padding inert, so a lone 13-token message is not computed at 16 tokens, nor a batch of <= 40 at 64. On
        # CUDA, to the bucket's length: the shape its graph was captured at.
        length = self.bucket(longest) if self.on_cuda else longest
        input_ids = np.full((len(items), length), self.config.pad_id, dtype=np.int64)  # (B, L) right-padded
        mask = np.zeros((len(items), length), dtype=np.int64)  # (B, L) 1 = real token
        for row, item in enumerate(items):
            input_ids[row, : len(item.ids)] = item.ids
            mask[row, : len(item.ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def predict(self, items: list[ChatItem], diagnostic: bool) -> list[Outcome[ChatResult]]:
        (logits,), activations = self.run_graph(diagnostic, self.feeds(items), ["logits"])
        results = [self._decide(logits[row], len(item.ids)) for row, item in enumerate(items)]
        return with_activations(results, activations)

    def _decide(self, logits: FloatArray, n_tokens: int) -> ChatResult:
        config = self.config
        shifted = logits.astype(np.float64) / config.temperature
        shifted -= shifted.max()
        probabilities = np.exp(shifted) / np.exp(shifted).sum()
        order = np.argsort(-probabilities)
        top = float(probabilities[order[0]])
        second = float(probabilities[order[1]])
        label = self.labels[int(order[0])]
        fallback = (
            label == OUT_OF_SCOPE
            or top < config.confidence_threshold
            or top - second < config.margin_threshold
        )
        intent = OUT_OF_SCOPE if fallback else label
        alternatives = [(self.labels[int(i)], float(probabilities[i])) for i in order[: N_ALTERNATIVES + 1]]
        return ChatResult(
            intent=intent,
            confidence=top,
            reply=self.fallback_reply if fallback else self.replies[label],
            fallback=fallback,
            alternatives=[(name, p) for name, p in alternatives if name != intent][:N_ALTERNATIVES],
            logits=logits.astype(np.float32),
            probabilities=probabilities.astype(np.float32),
            n_tokens=n_tokens,
        )
