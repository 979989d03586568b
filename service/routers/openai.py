"""OpenAI-compatible `POST /v1/chat/completions`: the assistant's message is the chatbot's reply to the last user
message; `stream: true` sends it as server-sent events ending with `data: [DONE]`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from service.deps import State, note_model
from service.errors import InvalidInput
from service.inference import activations_payload
from service.schemas import ChatCompletionRequest, openapi_errors

router = APIRouter(tags=["openai"])


def last_user_message(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            text = message.text().strip()
            if not 1 <= len(text) <= 2000:
                raise InvalidInput(
                    f"messages: the last user message must have 1..2000 characters, has {len(text)}"
                )
            return text
    raise InvalidInput("messages: there is no user message to answer")


@router.post(
    "/v1/chat/completions", name="openai_chat", responses=openapi_errors(401, 404, 413, 422, 503, 504)
)
async def chat_completions(body: ChatCompletionRequest, request: Request, state: State) -> Response:
    note_model(request, body.model)
    query = last_user_message(body)
    entry, (result,) = await state.inference.chat(body.model, [query], body.return_activations)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    extra: dict[str, Any] = {
        "intent": result.intent,
        "confidence": result.confidence,
        "fallback": result.fallback,
        "artifact": entry.name,
        "alternatives": [{"intent": i, "confidence": p} for i, p in result.alternatives],
    }
    if result.activations is not None and body.return_activations:
        extra["activations"] = activations_payload(body.model, entry, result.activations).model_dump()
    usage = {
        "prompt_tokens": result.n_tokens,
        "completion_tokens": len(result.reply.split()),
        "total_tokens": result.n_tokens + len(result.reply.split()),
    }
    if body.stream:
        return StreamingResponse(
            _events(completion_id, created, body.model, result.reply, extra),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.reply},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
            "lnserve": extra,
        }
    )


async def _events(
    completion_id: str, created: int, model: str, reply: str, extra: dict[str, Any]
) -> AsyncIterator[str]:
    """Role, then the reply word by word, then the finish reason, then `[DONE]`."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **more,
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    words = reply.split(" ")
    for i, word in enumerate(words):
        yield chunk({"content": word if i == 0 else " " + word})
    yield chunk({}, "stop", lnserve=extra)
    yield "data: [DONE]\n\n"
