"""OpenAI-compatible `POST /v1/chat/completions`: the assistant's message is the model's reply to the last user
message; `stream: true` sends it as server-sent events ending with `data: [DONE]`. Any kind with the `TextReplies`
capability can answer.

The reply is deterministic, so sampling parameters (`temperature`, `top_p`, `seed`, penalties) change nothing and
are accepted; `n` gives n identical choices; `max_tokens` / `max_completion_tokens` cut the reply after that many
words (`finish_reason: "length"`); `stop` cuts it before the first stop sequence; `stream_options.include_usage`
adds the usage chunk. What the model cannot do (tools, function calls, JSON output, log-probabilities, audio) is a
400 naming the parameter, as OpenAI answers for what a model does not support; any other unknown field is a 422.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema
from pydantic_core import PydanticCustomError

from service.errors import BadRequest
from service.rest.common import get_plane, json_body_schema, json_response, json_value, read_body, validate
from service.schemas import MESSAGE_MAX, ModelName, StrictRequest, Text, Whole, openapi_errors

router = APIRouter(tags=["openai"])
ENDPOINT = "openai_chat"
UNSUPPORTED = {
    "tools": "tool calls",
    "tool_choice": "tool calls",
    "parallel_tool_calls": "tool calls",
    "functions": "function calls",
    "function_call": "function calls",
    "logit_bias": "logit biases",
    "top_logprobs": "log-probabilities",
    "audio": "audio output",
    "modalities": "output modalities other than text",
    "prediction": "predicted outputs",
    "web_search_options": "web search",
}
HAS_TEXT = r"\S"
EVENT = {  # one server-sent event (Open API 3.1: `schema` of an event stream describes each event)
    "type": "object",
    "properties": {
        "data": {"type": "string", "description": "a `chat.completion.chunk` as JSON, or `[DONE]`"}
    },
    "required": ["data"],
}


def _has_text(text: str) -> str:
    if not text.strip():
        raise PydanticCustomError("no_text", "must contain a non-whitespace character")
    return text


class TextPart(StrictRequest):
    model_config = ConfigDict(strict=True, extra="allow")
    type: Literal["text"]
    text: Text


def _parts_have_text(parts: list[TextPart]) -> list[TextPart]:
    _has_text("".join(part.text for part in parts))
    return parts


UserText = Annotated[Text, AfterValidator(_has_text), WithJsonSchema({"type": "string", "pattern": HAS_TEXT})]
UserParts = Annotated[
    list[TextPart],
    AfterValidator(_parts_have_text),
    Field(json_schema_extra={"contains": {"type": "object", "properties": {"text": {"pattern": HAS_TEXT}}}}),
]


class UserMessage(StrictRequest):
    model_config = ConfigDict(strict=True, extra="allow")
    role: Literal["user"]
    content: Annotated[
        Annotated[UserText, Tag("text")] | Annotated[UserParts, Tag("parts")],
        Discriminator(lambda value: "parts" if isinstance(value, list) else "text"),
    ]

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text for part in self.content)
        return self.content


class OtherMessage(StrictRequest):
    """Every other turn of the conversation: kept as context by OpenAI, not read by a classifier."""

    model_config = ConfigDict(strict=True, extra="allow")
    role: Literal["system", "developer", "assistant", "tool", "function"]
    content: Text | list[TextPart] | None = None


def _last_user_text(messages: list[UserMessage | OtherMessage]) -> list[UserMessage | OtherMessage]:
    if not any(isinstance(message, UserMessage) for message in messages):
        raise PydanticCustomError("no_user_message", "there is no user message to answer")
    return messages


Messages = Annotated[
    list[Annotated[UserMessage | OtherMessage, Field(discriminator="role")]],
    Field(min_length=1, json_schema_extra={"contains": {"properties": {"role": {"const": "user"}}}}),
    AfterValidator(_last_user_text),
]


class StreamOptions(StrictRequest):
    model_config = ConfigDict(strict=True, extra="forbid")
    include_usage: bool = False


class ResponseFormat(StrictRequest):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["text"]


class ChatCompletionRequest(StrictRequest):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "chatbot", "messages": [{"role": "user", "content": "i forgot my password"}]}
            ]
        },
    )
    model: ModelName = "chatbot"
    messages: Messages
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=16), Whole] = Field(
        default=1, description="Identical choices (the reply is deterministic)."
    )
    max_tokens: Annotated[int, Field(ge=1), Whole] | None = Field(
        default=None, description="Cut the reply after this many words."
    )
    max_completion_tokens: Annotated[int, Field(ge=1), Whole] | None = Field(
        default=None, description="As `max_tokens`; wins over it."
    )
    stop: Text | Annotated[list[Text], Field(max_length=4)] | None = None
    response_format: ResponseFormat | None = None
    logprobs: Annotated[bool, WithJsonSchema({"type": "boolean", "const": False})] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: Annotated[int, Whole] | None = None
    user: Text | None = None
    store: bool | None = None
    metadata: dict[Text, Text] | None = None
    return_activations: bool = False

    def query(self) -> str:
        """The last user message's text, trimmed; a classifier reads its start, so only MESSAGE_MAX characters."""
        last = next(m for m in reversed(self.messages) if isinstance(m, UserMessage))
        return last.text().strip()[:MESSAGE_MAX]


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    lnserve: dict[str, Any] = Field(
        description="The intent, confidence, alternatives and artifact behind the reply."
    )


def refuse_unsupported(payload: Any) -> None:
    """400 for what the model cannot do, named (before the schema, which would only say 'extra input')."""
    if not isinstance(payload, dict):
        return
    for name, what in UNSUPPORTED.items():
        if name in payload:
            raise BadRequest(f"{name}: this model does not support {what}; it answers with text only")
    response_format = payload.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        raise BadRequest(
            f"response_format: {response_format.get('type')!r} is not supported; this model answers with text"
        )
    if payload.get("logprobs") is True:
        raise BadRequest("logprobs: this model does not support log-probabilities")


def shape_reply(reply: str, body: ChatCompletionRequest) -> tuple[str, str]:
    """The reply cut at the first stop sequence, then after the word limit; and the finish reason."""
    stops = [body.stop] if isinstance(body.stop, str) else body.stop or []
    cut = min((reply.find(s) for s in stops if s and s in reply), default=len(reply))
    reply = reply[:cut]
    limit = body.max_completion_tokens or body.max_tokens
    words = reply.split(" ")
    if limit is not None and len([w for w in words if w]) > limit:
        kept = [w for w in words if w][:limit]
        return " ".join(kept), "length"
    return reply, "stop"


@router.post(
    "/v1/chat/completions",
    name=ENDPOINT,
    operation_id="create_chat_completion",
    response_class=Response,
    responses={
        200: {
            "model": ChatCompletion,
            "content": {"text/event-stream": {"schema": EVENT}},
            "description": "The completion; with `stream: true`, server-sent events ending with `data: [DONE]`.",
        },
        **openapi_errors(400, 401, 404, 408, 413, 422, 503, 504),
    },
    openapi_extra=json_body_schema(ChatCompletionRequest),
)
async def chat_completions(request: Request) -> Response:
    plane = await get_plane(request)
    async with plane.call(ENDPOINT, request.headers.get("authorization"), "chatbot") as call:
        payload = json_value(await read_body(request, plane.settings.max_body_bytes))
        refuse_unsupported(payload)
        body = validate(payload, ChatCompletionRequest)
        _, reply, n_tokens, extra = await plane.reply(call, body.model, body.query(), body.return_activations)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    reply, finish = shape_reply(reply, body)
    words = len(reply.split()) * body.n
    usage = {"prompt_tokens": n_tokens, "completion_tokens": words, "total_tokens": n_tokens + words}
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = _events(completion_id, created, body, reply, finish, extra, usage if include_usage else None)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    choice = {"message": {"role": "assistant", "content": reply}, "finish_reason": finish, "logprobs": None}
    return json_response(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [{"index": i, **choice} for i in range(body.n)],
            "usage": usage,
            "lnserve": extra,
        }
    )


async def _events(
    completion_id: str,
    created: int,
    body: ChatCompletionRequest,
    reply: str,
    finish: str,
    extra: dict[str, Any],
    usage: dict[str, int] | None,
) -> AsyncIterator[str]:
    """Per choice: the role, then the reply word by word, then the finish reason; the usage when asked for; then
    `[DONE]`."""

    def chunk(choices: list[dict[str, Any]], **more: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": choices,
            **more,
        }
        if usage is not None:
            payload.setdefault("usage", None)
        return f"data: {json.dumps(payload)}\n\n"

    def delta(index: int, content: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": content, "finish_reason": finish_reason, "logprobs": None}

    words = reply.split(" ")
    for index in range(body.n):
        yield chunk([delta(index, {"role": "assistant", "content": ""})])
        for i, word in enumerate(words):
            yield chunk([delta(index, {"content": word if i == 0 else " " + word})])
        yield chunk([delta(index, {}, finish)], lnserve=extra)
    if usage is not None:
        yield chunk([], usage=usage)
    yield "data: [DONE]\n\n"
