"""MLServer: the pipeline as a custom inference runtime (``MLModel``), batched by MLServer's adaptive batching (max
32 requests, 0.5 ms; ``mlserver/model-settings.json``), run in MLServer's default parallel inference worker,
answered over KServe v2 (``POST /v2/models/chatbot/infer``).

    mlserver start bench/peers/apps/mlserver     # MLSERVER_HTTP_PORT, MLSERVER_GRPC_PORT, MLSERVER_METRICS_PORT
"""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse

from bench.peers.pipeline import ChatPipeline


class ChatRuntime(MLModel):
    async def load(self) -> bool:
        self.pipeline = ChatPipeline()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        answers = self.pipeline(StringCodec.decode_input(payload.inputs[0]))
        confidence = np.array([[a["confidence"]] for a in answers], dtype=np.float32)  # (B, 1)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                StringCodec.encode_output("intent", [a["intent"] for a in answers]),
                NumpyCodec.encode_output("confidence", confidence),
            ],
        )
