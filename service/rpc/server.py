"""The gRPC server on its own port (`LNSERVE_GRPC_PORT`), on the web server's event loop, so both protocols share
one data plane and its batchers. One interceptor per call: the request id (from `x-request-id` metadata, or new),
the API key for everything but the health RPCs and `ModelInfer` (whose data plane call authorises and counts it, as
for REST), the `LnserveError` -> gRPC status mapping with `retry-after`, and one access log line."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from tritonclient.grpc import service_pb2_grpc

from service.dataplane import DataPlane
from service.errors import InternalError, LnserveError
from service.logging import request_id_var
from service.rpc.servicer import InferenceServicer

log = logging.getLogger("service.access")
SERVICE = "/inference.GRPCInferenceService/"
OPEN = {SERVICE + "ServerLive", SERVICE + "ServerReady", SERVICE + "ModelInfer"}  # ModelInfer: in its call
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method
        metadata = dict(details.invocation_metadata or ())
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary, method, metadata),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, behaviour: Behaviour, method: str, metadata: dict[str, Any]) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = request_id_var.set(str(metadata.get("x-request-id") or uuid.uuid4().hex))
            started, code = time.perf_counter(), grpc.StatusCode.OK
            try:
                if method not in OPEN:
                    self.plane.authorise(metadata.get("authorization"))
                return await behaviour(request, context)
            except grpc.aio.AbortError:
                raise
            except LnserveError as exc:
                code = CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)
                trailing = tuple((k.lower(), v) for k, v in exc.headers.items() if k.lower() == "retry-after")
                await context.abort(code, exc.message, trailing)
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error on %s", method)
                await context.abort(code, InternalError("internal server error").message)
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                extra = {
                    "method": "grpc",
                    "path": method,
                    "status": code.name,
                    "duration_ms": round(elapsed_ms, 3),
                }
                log.info("gRPC %s %s %.1f ms", method, code.name, elapsed_ms, extra=extra)
                request_id_var.reset(token)

        return call


async def start(plane: DataPlane, host: str, port: int, max_message_bytes: int) -> grpc.aio.Server:
    interceptors: list[Any] = [CallInterceptor(plane)]
    if plane.tracing.on:  # first: the request span encloses the call
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.insert(0, aio_server_interceptor())  # type: ignore[no-untyped-call]
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", max_message_bytes)],
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(plane), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    logging.getLogger(__name__).info("gRPC server on %s:%d", host, bound)
    return server
