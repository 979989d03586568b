"""The chatbot as every server of the peer benchmark runs it: the service's own pre- and post-processing around a
plain ONNX Runtime session of the default artifact's ``fast.onnx``.

- tokens: the shipped tokenizer through ``models.chatbot.tokenizer.encode`` (``ChatbotRuntime.item``);
- feeds: right-padded to the longest message in the batch, as the service does on the CPU (``ChatbotRuntime.feeds``);
- session: ``service.runtime.providers.session_options`` with the service's thread count, CPU provider;
- answer: the service's intent decision (temperature, confidence and margin thresholds, ``out_of_scope``, replies).

Imports numpy, pydantic, onnxruntime and tokenizers only, so it runs in every peer's virtual environment; the
artifact folder and thread count come from the environment the harness starts a server with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnxruntime as ort

from models.sidecar import FAST, read
from service.kinds.chatbot.runtime import ChatbotRuntime
from service.runtime.base import Artifact, RuntimeOptions
from service.runtime.providers import CPU, session_options

ARTIFACT_ENV = "PEERS_ARTIFACT"
THREADS_ENV = "PEERS_INTRA_OP_THREADS"
MAX_BATCH_SIZE = 32
"""Every batching server forms batches of at most this many requests (the service's default)."""
MAX_WAIT_S = 0.0005
"""...and waits at most this long for companions after a batch's first request (the service's default 500 us)."""


class ChatPipeline:
    """Messages in, ``{"intent", "confidence", "reply"}`` out: one graph run per call, whatever the batch size."""

    def __init__(self, folder: Path | None = None, threads: int | None = None) -> None:
        folder = folder or Path(os.environ[ARTIFACT_ENV])
        threads = int(os.environ.get(THREADS_ENV, "0")) if threads is None else threads
        artifact = Artifact(folder, read(folder / "sidecar.json"))
        self.runtime = ChatbotRuntime(artifact, RuntimeOptions("cpu", threads))
        self.runtime.prepare()
        self.session = ort.InferenceSession(
            str(artifact.file(FAST)), session_options(threads), providers=[CPU]
        )

    def __call__(self, messages: list[str]) -> list[dict[str, Any]]:
        items = [self.runtime.item(text) for text in messages]
        (logits,) = self.session.run(["logits"], self.runtime.feeds(items))  # (B, n_labels)
        answers = []
        for row, item in enumerate(items):
            result = self.runtime._decide(logits[row], len(item.ids))
            answers.append({"intent": result.intent, "confidence": result.confidence, "reply": result.reply})
        return answers
