"""`inference.GRPCInferenceService`: each RPC translates its messages and calls the data plane, as the REST adapter
does. Errors are raised as `LnserveError`s; the interceptor turns them into gRPC statuses."""

from __future__ import annotations

from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from service.dataplane import DataPlane
from service.errors import LnserveError
from service.rpc.tensors import decode_inputs, encode_response, parameters

ENDPOINT = "grpc_infer"


def authorization(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    return next((v for k, v in context.invocation_metadata() or () if k == "authorization"), None)


def tensor_metadata(specs: list[dict[str, Any]]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [pb.ModelMetadataResponse.TensorMetadata(**spec) for spec in specs]


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=not self.plane.repository.unready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        try:
            self.plane.model(request.name, request.version or None)
        except LnserveError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**self.plane.server_metadata())

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        metadata = self.plane.model_metadata(request.name, request.version or None)
        specs = {
            key: [{k: s[k] for k in ("name", "datatype", "shape")} for s in metadata[key]]
            for key in ("inputs", "outputs")
        }
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=tensor_metadata(specs["inputs"]),
            outputs=tensor_metadata(specs["outputs"]),
        )

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        plane = self.plane
        async with plane.call(ENDPOINT, authorization(context), request.model_name) as call:
            requested = [output.name for output in request.outputs] or None
            outputs = await plane.infer_tensors(
                call,
                request.model_name,
                request.model_version or None,
                decode_inputs(request),
                parameters(request.parameters),
                requested,
            )
            assert call.served is not None  # set when the model resolved
            return encode_response(request, call.served.version, outputs)

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        rows = self.plane.repository.index(ready_only=request.ready)
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**row) for row in rows]
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        await self.plane.control.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        await self.plane.control.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()
