"""BentoML: the pipeline as a batchable API (``@bentoml.api(batchable=True)``): BentoML's adaptive batching merges
concurrent requests' lists (at most 32 messages) and tunes its own wait from the batch times it observes; there is
no fixed window to set. ``max_latency_ms`` is a deadline past which queued requests are refused with 503, not a
window: BentoML's default (60 s) is kept so that no request is shed. One worker, no access log.

    bentoml serve bench.peers.apps.bentoml_app:Chat --host 127.0.0.1 --port 3000    # POST /classify {"messages": [...]}
"""

from __future__ import annotations

from typing import Any

import bentoml

from bench.peers.pipeline import MAX_BATCH_SIZE, ChatPipeline


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Chat:
    def __init__(self) -> None:
        self.pipeline = ChatPipeline()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=60_000)
    def classify(self, messages: list[str]) -> list[dict[str, Any]]:
        return self.pipeline(messages)
