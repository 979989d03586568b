"""The chatbot kind: a message in, an intent and that intent's reply out (`POST /v1/chat`, KServe v2, OpenAI)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from models.chatbot.data import VAL_FILE
from service.errors import InvalidInput
from service.kinds.base import Job, ModelKind, Route, TextReplies
from service.kinds.chatbot.runtime import ChatbotRuntime, ChatItem, ChatResult
from service.runtime.base import Artifact, Prediction
from service.schemas import Activations, Message, ModelName, StrictRequest, activations_payload
from service.tensors import TensorSpec


class ChatRequest(StrictRequest):
    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "i forgot my password"}]})
    message: Message
    return_activations: bool = False
    model: ModelName = "chatbot"


class Alternative(BaseModel):
    intent: str
    confidence: float


class ChatResponse(BaseModel):
    reply: str
    intent: str
    confidence: float = Field(ge=0.0, le=1.0)
    model: str
    alternatives: list[Alternative]
    activations: Activations | None = None
    artifact: str = Field(description="The artifact that answered (the alias resolved), e.g. chatbot-peri.")
    version: str
    fallback: bool = Field(
        description="True when the confidence or margin thresholds sent the query to out_of_scope."
    )


ROUTE = Route("/v1/chat", "chat", ChatRequest, ChatResponse, "Classify a message and answer with its reply")
MESSAGE = TypeAdapter(Message)


def message(text: str, where: str) -> str:
    """The one message rule (1..2000 characters after trimming), for text that did not come in a `ChatRequest`."""
    try:
        return MESSAGE.validate_python(text)
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {exc.errors()[0]['msg']}") from None


class ChatbotKind(ModelKind[ChatItem, ChatResult], TextReplies[ChatItem, ChatResult]):
    name = "chatbot"
    runtime_class = ChatbotRuntime
    route = ROUTE
    training = "models.chatbot.hooks"
    # A batch takes one length bucket only: a 128-token message no longer pads 31 short ones (attention grows with
    # the square of the length). Measured side by side: 1.46x req/s at c = 16, 2.04x at c = 64 (docs/benchmarks.md).
    batching: ClassVar[Mapping[str, Any]] = {"group_by_key": True}

    def parse(self, runtime: Any, body: Any) -> Job[ChatItem]:
        return Job([runtime.item(body.message)], body.return_activations)

    def respond(
        self, runtime: Any, body: Any, job: Job[ChatItem], answers: list[Prediction[ChatResult]]
    ) -> dict[str, Any]:
        (answer,) = answers
        result = answer.result
        return {
            "reply": result.reply,
            "intent": result.intent,
            "confidence": result.confidence,
            "model": body.model,
            "alternatives": [{"intent": i, "confidence": p} for i, p in result.alternatives],
            "activations": activations_payload(body.model, runtime.artifact, answer.activations)
            if job.activations
            else None,
            "artifact": runtime.name,
            "version": runtime.artifact.version,
            "fallback": result.fallback,
        }

    def inputs(self, artifact: Artifact) -> list[TensorSpec]:
        return [TensorSpec("text", "BYTES", (-1,), also=((-1, 1),), description="one message per row")]

    def outputs(self, artifact: Artifact) -> list[TensorSpec]:
        n_labels = len(artifact.sidecar.block()["labels"])
        return [
            TensorSpec("intent", "BYTES", (-1,)),
            TensorSpec("confidence", "FP32", (-1,)),
            TensorSpec("probabilities", "FP32", (-1, n_labels)),
            TensorSpec("logits", "FP32", (-1, n_labels)),
        ]

    def from_tensors(
        self, runtime: Any, tensors: dict[str, np.ndarray], parameters: Mapping[str, Any]
    ) -> Job[ChatItem]:
        texts = [
            message(str(text), f"inputs.text[{row}]") for row, text in enumerate(tensors["text"].reshape(-1))
        ]
        return Job([runtime.item(text) for text in texts])

    def to_tensors(
        self, runtime: Any, job: Job[ChatItem], answers: list[Prediction[ChatResult]]
    ) -> dict[str, np.ndarray]:
        results = [answer.result for answer in answers]
        return {
            "intent": np.array([r.intent for r in results], dtype=np.object_),
            "confidence": np.array([r.confidence for r in results], dtype=np.float32),
            "probabilities": np.stack([r.probabilities for r in results]),
            "logits": np.stack([r.logits for r in results]),
        }

    def text_job(self, runtime: Any, text: str, activations: bool) -> Job[ChatItem]:
        return Job([runtime.item(message(text, "messages: the last user message"))], activations)

    def reply(self, answer: Prediction[ChatResult]) -> tuple[str, int, dict[str, Any]]:
        result = answer.result
        extra = {
            "intent": result.intent,
            "confidence": result.confidence,
            "fallback": result.fallback,
            "alternatives": [{"intent": i, "confidence": p} for i, p in result.alternatives],
        }
        return result.reply, result.n_tokens, extra

    def bench_bodies(self, n: int) -> list[dict[str, Any]]:
        """`n` validation utterances spread evenly over the file (so over intents and lengths)."""
        lines = [
            json.loads(line)["text"] for line in VAL_FILE.read_text(encoding="utf-8").splitlines() if line
        ]
        step = max(1, len(lines) // n)
        return [{"message": text} for text in lines[::step][:n]]


KIND = ChatbotKind()
