"""Ray Serve: the pipeline as one deployment replica batching with ``@serve.batch`` (max 32 requests, 0.5 ms wait),
``max_ongoing_requests`` 64 (Ray Serve asks for at least the batch size; its default of 5 would cap batches at 5),
behind Serve's HTTP proxy on a local Ray instance (no dashboard), no access log.

    python -m bench.peers.apps.rayserve_app --port 8000     # POST / {"message": ...}
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import ray
from ray import serve
from starlette.requests import Request

from bench.peers.pipeline import MAX_BATCH_SIZE, MAX_WAIT_S, ChatPipeline


@serve.deployment(max_ongoing_requests=2 * MAX_BATCH_SIZE)
class Chat:
    def __init__(self) -> None:
        self.pipeline = ChatPipeline()

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=MAX_WAIT_S)
    async def classify(self, messages: list[str]) -> list[dict[str, Any]]:
        return self.pipeline(messages)

    async def __call__(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return await self.classify(str(body["message"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False)
    quiet = {"enable_access_log": False}
    serve.start(http_options={"host": args.host, "port": args.port}, logging_config=quiet)
    serve.run(Chat.bind(), route_prefix="/", logging_config=quiet, blocking=True)


if __name__ == "__main__":
    main()
