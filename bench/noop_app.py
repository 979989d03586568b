"""The ceiling of the stack: the same routes and request parsing as the service, but no model behind them.

Started with the service's uvicorn settings, so ``http_load`` can tell how much of a request's cost is the model
and batching, and how much is HTTP + FastAPI + pydantic.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

from service.server import uvicorn_config
from service.settings import Settings


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    return_activations: bool = False
    model: str = "chatbot"


class ForecastRequest(BaseModel):
    series: list[float] = Field(min_length=8)
    horizon: int = Field(gt=0, le=24)
    season_length: int | None = None
    quantiles: list[float] | None = None
    return_activations: bool = False


app = FastAPI(title="lnserve no-op")


@app.get("/v2/health/ready")
def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/v1/chat")
async def chat(req: ChatRequest) -> dict[str, object]:
    return {
        "reply": "ok",
        "intent": "greeting",
        "confidence": 1.0,
        "model": req.model,
        "alternatives": [],
        "activations": None,
    }


@app.post("/v1/forecast")
async def forecast(req: ForecastRequest) -> dict[str, object]:
    zeros = [0.0] * req.horizon
    return {
        "forecast": zeros,
        "quantiles": {"0.1": zeros, "0.5": zeros, "0.9": zeros},
        "model": "forecaster",
        "activations": None,
    }


def serve(app: FastAPI, description: str | None = None) -> None:
    """Run ``app`` on ``--host``/``--port`` with the uvicorn settings of ``service.server.build_server`` (loop, HTTP
    parser and worker count are uvicorn's defaults there too), so stacks served this way differ from the service
    only in what runs behind the route."""
    parser = argparse.ArgumentParser(description=description or __doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # The uvicorn configuration of `lnserve serve` (connection limits included), so both stacks differ only in what
    # runs behind the route.
    uvicorn.Server(uvicorn_config(Settings(host=args.host, port=args.port), app)).run()


if __name__ == "__main__":
    serve(app)
