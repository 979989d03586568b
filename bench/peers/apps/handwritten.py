"""A hand-written FastAPI endpoint: the chat pipeline on each request alone, no batching. A plain ``def`` route, so
FastAPI runs the blocking ONNX Runtime call in its thread pool, as its documentation advises for blocking code; the
uvicorn settings are those of the service and of the no-op ceiling.

    python -m bench.peers.apps.handwritten --port 8001
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from bench.noop_app import ChatRequest, serve
from bench.peers.pipeline import ChatPipeline

pipeline = ChatPipeline()
app = FastAPI(title="hand-written chat endpoint")


@app.post("/v1/chat")
def chat(request: ChatRequest) -> dict[str, Any]:
    (answer,) = pipeline([request.message])
    return answer


if __name__ == "__main__":
    serve(app, __doc__)
