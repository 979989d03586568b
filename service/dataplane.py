"""The protocol-neutral core (as MLServer's `DataPlane`): authorise, resolve, translate, batch, record.

Every protocol adapter (our JSON API, KServe v2 REST, OpenAI, a later gRPC server) only translates its wire format
and calls this object. It is built outside the web app, with its own lifecycle (`start` / `stop`), and it is the one
place that records request metrics: an adapter opens a `call`, and whatever happens inside it (success, or an
`LnserveError` with its reason) is counted once, for the model the request resolved to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import InvalidInput, LnserveError, ModelNotFound, Unauthorized
from service.kinds import AnyKind, Job, Registry, TextReplies, registry
from service.metrics import Metrics
from service.model import ServedModel
from service.repository import ModelRepository
from service.runtime.base import Prediction
from service.schemas import activations_payload
from service.settings import Settings
from service.tensors import TensorSpec, bind, flag

log = logging.getLogger(__name__)
ACTIVATIONS = "activations"


@dataclass
class Call:
    """One request in flight: its endpoint and the model it asked for (set as soon as the adapter knows it)."""

    endpoint: str
    model: str | None = None


class DataPlane:
    def __init__(
        self, settings: Settings, kinds: Registry | None = None, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.kinds = kinds or registry(settings.kind_modules)
        self.metrics = metrics or Metrics()
        # One batch per model runs at a time; the threads are for several models and for loading.
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lnserve-infer")
        self.repository = ModelRepository(settings, self.kinds, self.metrics, self.executor)
        self._api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None
        self._loading: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.repository.discover()
        self._loading = asyncio.create_task(self.repository.load_all())
        if not self.settings.load_in_background:
            await self._loading

    async def stop(self) -> None:
        if self._loading is not None:
            self._loading.cancel()
        await self.repository.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)

    # --- requests ---------------------------------------------------------------------------------------------
    def authorise(self, authorization: str | None) -> None:
        """`Authorization: Bearer <key>` when an API key is configured."""
        if self._api_key is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), self._api_key):
            raise Unauthorized()

    @contextlib.asynccontextmanager
    async def call(
        self, endpoint: str, authorization: str | None, model: str | None = None
    ) -> AsyncIterator[Call]:
        """Authorise, then count the request (success, or failure by reason) for the model it resolved to."""
        call = Call(endpoint, model)
        started = time.perf_counter()
        reason: str | None = None
        try:
            self.authorise(authorization)
            yield call
        except LnserveError as exc:
            reason = exc.reason
            raise
        except Exception:
            reason = "internal"
            raise
        finally:
            resolved = self._artifact_name(call.model)
            self.metrics.request_duration.labels(resolved, endpoint).observe(time.perf_counter() - started)
            if reason is None:
                self.metrics.request_success.labels(resolved, endpoint).inc()
            else:
                self.metrics.request_failure.labels(resolved, endpoint, reason).inc()

    def _artifact_name(self, name: str | None) -> str:
        if not name:
            return "unknown"
        try:
            return self.repository.resolve(name).name
        except ModelNotFound:
            return "unknown"

    def model(self, name: str, version: str | None = None, kind: AnyKind | None = None) -> ServedModel:
        return self.repository.get(name, version, kind)

    async def infer(self, model: ServedModel, job: Job[Any]) -> list[Prediction[Any]]:
        return await model.infer(job)

    # --- the kind's JSON route -----------------------------------------------------------------------------------
    async def infer_json(self, call: Call, kind: AnyKind, body: Any) -> dict[str, Any]:
        call.model = body.model
        model = self.model(body.model, kind=kind)
        job = kind.parse(model.runtime, body)
        return kind.respond(model.runtime, body, job, await model.infer(job))

    # --- KServe v2 tensors ----------------------------------------------------------------------------------------
    def tensor_specs(
        self, model: str, version: str | None = None
    ) -> tuple[list[TensorSpec], list[TensorSpec]]:
        entry = self.repository.resolve(model, version)
        artifact = entry.artifact
        activations = TensorSpec(ACTIVATIONS, "FP32", (-1, len(artifact.layers), len(artifact.statistics)))
        return entry.kind.inputs(artifact), [*entry.kind.outputs(artifact), activations]

    async def infer_tensors(
        self,
        call: Call,
        name: str,
        version: str | None,
        tensors: dict[str, tuple[str, np.ndarray]],
        parameters: Mapping[str, Any],
        requested: list[str] | None,
    ) -> dict[str, np.ndarray]:
        """Declared outputs by name (all of them, or the requested ones; `activations` only when asked for)."""
        call.model = name
        model = self.model(name, version)
        inputs, outputs = self.tensor_specs(name, version)
        declared = [spec.name for spec in outputs]
        unknown = sorted(set(requested or ()) - set(declared))
        if unknown:
            raise InvalidInput(f"outputs: unknown output(s) {unknown}; this model has {declared}")
        job = model.kind.from_tensors(model.runtime, bind(inputs, tensors), parameters)
        job.activations = flag(parameters, "return_activations") or ACTIVATIONS in (requested or ())
        answers = await model.infer(job)
        values = model.kind.to_tensors(model.runtime, job, answers)
        if job.activations:
            values[ACTIVATIONS] = np.stack([a.activations for a in answers if a.activations is not None])
        wanted = requested or [name for name in declared if name in values]
        return {name: values[name] for name in wanted}

    # --- OpenAI chat completions --------------------------------------------------------------------------------
    async def reply(
        self, call: Call, name: str, text: str, activations: bool
    ) -> tuple[ServedModel, str, int, dict[str, Any]]:
        call.model = name
        model = self.model(name)
        if not isinstance(model.kind, TextReplies):
            raise ModelNotFound(f"model {name!r} is a {model.kind.name}, which does not answer chat messages")
        job = model.kind.text_job(model.runtime, text, activations)
        (answer,) = await model.infer(job)
        reply, n_tokens, extra = model.kind.reply(answer)
        extra["artifact"] = model.name
        if activations:
            extra["activations"] = activations_payload(name, model.runtime.artifact, answer.activations)
        return model, reply, n_tokens, extra

    # --- monitoring -------------------------------------------------------------------------------------------
    def publish_activations(self) -> None:
        for entry in self.repository.entries.values():
            if entry.served is not None:
                entry.served.monitor.publish(self.metrics)
