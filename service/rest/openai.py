"""OpenAI-compatible `POST /v1/chat/completions`: the assistant's message is the model's reply to the last user
message; `stream: true` sends it as server-sent events ending with `data: [DONE]`. Any kind with the `TextReplies`
capability can answer."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidInput
from service.rest.common import get_plane, json_body_schema, json_response, parse, read_body
from service.schemas import ModelName, openapi_errors

router = APIRouter(tags=["openai"])
ENDPOINT = "openai_chat"


# Only the fields the chatbot uses are validated, the rest are accepted.
class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str = ""


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text for part in self.content if part.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: ModelName = "chatbot"
    messages: Annotated[list[OpenAIMessage], Field(min_length=1)]
    stream: bool = False
    return_activations: bool = False


def last_user_message(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            return message.text()
    raise InvalidInput("messages: there is no user message to answer")


@router.post(
    "/v1/chat/completions",
    name=ENDPOINT,
    operation_id="create_chat_completion",
    response_class=Response,
    responses=openapi_errors(401, 404, 413, 422, 503, 504),
    openapi_extra=json_body_schema(ChatCompletionRequest),
)
async def chat_completions(request: Request) -> Response:
    plane = await get_plane(request)
    async with plane.call(ENDPOINT, request.headers.get("authorization"), "chatbot") as call:
        body = parse(await read_body(request, plane.settings.max_body_bytes), ChatCompletionRequest)
        query = last_user_message(body)
        _, reply, n_tokens, extra = await plane.reply(call, body.model, query, body.return_activations)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    words = len(reply.split())
    usage = {"prompt_tokens": n_tokens, "completion_tokens": words, "total_tokens": n_tokens + words}
    if body.stream:
        return StreamingResponse(
            _events(completion_id, created, body.model, reply, extra),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return json_response(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
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
