"""PyTriton: the pipeline as a Python model of Triton Inference Server, batched by Triton's dynamic batcher (max 32
requests, 500 us queue delay), answered over KServe v2 (``POST /v2/models/chatbot/infer``, BYTES ``text`` [1, 1]).

    python -m bench.peers.apps.pytriton_app --port 8000 --grpc-port 8001 --metrics-port 8002

Triton's Python stub must find the interpreter's own libpython first: the harness puts its ``LIBDIR`` at the head of
``LD_LIBRARY_PATH`` (bench/peers/README.md).
"""

from __future__ import annotations

import argparse

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from bench.peers.pipeline import MAX_BATCH_SIZE, MAX_WAIT_S, ChatPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    args = parser.parse_args()
    pipeline = ChatPipeline()

    @batch
    def infer(text: np.ndarray) -> dict[str, np.ndarray]:  # text: (B, 1) bytes
        answers = pipeline([row[0].decode("utf-8") for row in text])
        return {
            "intent": np.array([[a["intent"].encode()] for a in answers], dtype=np.bytes_),  # (B, 1)
            "confidence": np.array([[a["confidence"]] for a in answers], dtype=np.float32),  # (B, 1)
        }

    config = TritonConfig(
        http_address=args.host,
        http_port=args.port,
        grpc_address=args.host,
        grpc_port=args.grpc_port,
        metrics_address=args.host,
        metrics_port=args.metrics_port,
        exit_on_error=True,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="chatbot",
            infer_func=infer,
            inputs=[Tensor(name="text", dtype=np.bytes_, shape=(1,))],
            outputs=[
                Tensor(name="intent", dtype=np.bytes_, shape=(1,)),
                Tensor(name="confidence", dtype=np.float32, shape=(1,)),
            ],
            config=ModelConfig(
                max_batch_size=MAX_BATCH_SIZE,
                batcher=DynamicBatcher(max_queue_delay_microseconds=round(MAX_WAIT_S * 1e6)),
            ),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main()
