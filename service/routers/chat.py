"""`POST /v1/chat`: the chatbot in our own JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.deps import State, note_model
from service.inference import activations_payload
from service.repository import ModelEntry
from service.runtime.chatbot import ChatResult
from service.schemas import Alternative, ChatRequest, ChatResponse, openapi_errors

router = APIRouter(tags=["chat"])


def chat_response(model: str, entry: ModelEntry, result: ChatResult, with_activations: bool) -> ChatResponse:
    activations = result.activations if with_activations else None
    return ChatResponse(
        reply=result.reply,
        intent=result.intent,
        confidence=result.confidence,
        model=model,
        alternatives=[Alternative(intent=intent, confidence=p) for intent, p in result.alternatives],
        activations=activations_payload(model, entry, activations) if activations is not None else None,
        artifact=entry.name,
        version=entry.artifact.version,
        fallback=result.fallback,
    )


@router.post("/v1/chat", name="chat", responses=openapi_errors(401, 404, 413, 422, 503, 504))
async def chat(body: ChatRequest, request: Request, state: State) -> ChatResponse:
    """Classify a message into an intent and answer with that intent's reply."""
    note_model(request, body.model)
    entry, (result,) = await state.inference.chat(body.model, [body.message], body.return_activations)
    return chat_response(body.model, entry, result, body.return_activations)
