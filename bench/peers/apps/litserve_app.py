"""LitServe: the pipeline as a ``LitAPI`` with LitServe's batching (max 32 requests, ``batch_timeout`` 0.5 ms), one
inference worker (one ONNX Runtime session, as every server here), ``fast_queue`` (ZeroMQ between the HTTP server and
the worker, which LitServe's documentation advises above 100 requests per second), no access log.

    python -m bench.peers.apps.litserve_app --port 8000     # POST /predict {"message": ...}
"""

from __future__ import annotations

import argparse
from typing import Any

import litserve as ls

from bench.peers.pipeline import MAX_BATCH_SIZE, MAX_WAIT_S, ChatPipeline


class ChatAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.pipeline = ChatPipeline()

    # Unannotated: LitServe builds its route from this signature (with `from __future__ import annotations` an
    # annotation reaches FastAPI as a string, and `request` became a required query parameter).
    def decode_request(self, request):
        return str(request["message"])

    def predict(self, messages: list[str]) -> list[dict[str, Any]]:
        return self.pipeline(messages)

    def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return output

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    api = ChatAPI(max_batch_size=MAX_BATCH_SIZE, batch_timeout=MAX_WAIT_S)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, fast_queue=True)
    server.run(host=args.host, port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
