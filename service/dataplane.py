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

from service import __version__
from service.activations import ActivationMonitor
from service.control import ModelControl
from service.errors import InvalidInput, LnserveError, ModelNotFound, ModelNotReady, Unauthorized
from service.kinds import AnyKind, Job, Registry, TextReplies, registry
from service.metrics import ActivationCollector, Metrics
from service.model import ServedModel
from service.repository import ModelRepository
from service.runtime.base import Prediction
from service.schemas import activations_payload
from service.settings import Settings
from service.tensors import TensorSpec, bind, flag
from service.tracing import Tracing

log = logging.getLogger(__name__)
ACTIVATIONS = "activations"
AGGREGATE_EVERY_S = 1.0


@dataclass
class Call:
    """One request in flight: its endpoint and the model it asked for (set as soon as the adapter knows it)."""

    endpoint: str
    model: str | None = None
    served: ServedModel | None = None  # the model version it resolved to


class DataPlane:
    def __init__(
        self, settings: Settings, kinds: Registry | None = None, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.kinds = kinds or registry(settings.kind_modules)
        self.metrics = metrics or Metrics()
        # Loading and warming up versions (each served model runs its batches on a thread of its own).
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lnserve-load")
        self.tracing = Tracing(settings.tracing)
        self.repository = ModelRepository(settings, self.kinds)
        self.control = ModelControl(settings, self.repository, self.metrics, self.executor, self.tracing)
        self._api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None
        self._loading: asyncio.Task[None] | None = None
        self._aggregating: asyncio.Task[None] | None = None
        self.metrics.registry.register(ActivationCollector(self.monitors))

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loading = asyncio.create_task(self.control.start())
        self._aggregating = asyncio.create_task(self._aggregate())
        if not self.settings.load_in_background:
            await self._loading

    async def stop(self) -> None:
        for task in (self._loading, self._aggregating):
            if task is not None:
                task.cancel()
        await self.control.stop()
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
            served = call.served
            model, version = (served.name, served.version) if served else self.repository.labels(call.model)
            self.metrics.request_duration.labels(model, version, endpoint).observe(
                time.perf_counter() - started
            )
            if reason is None:
                self.metrics.request_success.labels(model, version, endpoint).inc()
            else:
                self.metrics.request_failure.labels(model, version, endpoint, reason).inc()
            self.tracing.annotate(model, version, endpoint, reason)

    def model(
        self, name: str, version: str | None = None, kind: AnyKind | None = None, call: Call | None = None
    ) -> ServedModel:
        """The served model version a request names; between this and `ServedModel.infer` there must be no await
        (a reload drains the replaced batcher right after the switch)."""
        served = self.repository.get(name, version, kind)
        if call is not None:
            call.served = served
        return served

    async def infer(self, model: ServedModel, job: Job[Any]) -> list[Prediction[Any]]:
        return await model.infer(job)

    # --- the kind's JSON route -----------------------------------------------------------------------------------
    async def infer_json(self, call: Call, kind: AnyKind, body: Any) -> dict[str, Any]:
        call.model = body.model
        model = self.model(body.model, kind=kind, call=call)
        job = kind.parse(model.runtime, body)
        return kind.respond(model.runtime, body, job, await model.infer(job))

    # --- KServe v2 metadata and tensors ---------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {
            "name": "lnserve",
            "version": __version__,
            "extensions": ["binary_tensor_data", "model_repository"],
        }

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Open Inference Protocol model metadata, plus the opt-in outputs and the kind's own block."""
        entry = self.repository.resolve(name, version)
        inputs, outputs, opt_in = self.tensor_specs(name, version)
        assert entry.kind is not None and entry.artifact is not None  # tensor_specs checked both
        return {
            "name": name,
            "versions": sorted(self.repository.models[entry.name].versions, key=int)
            if version is None
            else [entry.version],
            "platform": "onnxruntime_onnx",
            "inputs": [spec.metadata() for spec in inputs],
            "outputs": [spec.metadata() for spec in outputs],
            # Not in `outputs`: a request that names no outputs gets every declared one, and statistics cost the
            # instrumented graph. Name it in `outputs`, or send the parameter `return_activations: true`.
            "optional_outputs": [{**opt_in.metadata(), "description": opt_in.description}],
            "artifact": entry.name,
            "version": entry.version,
            "kind": entry.kind.name,
            "ready": entry.ready,
            **entry.kind.describe(entry.artifact),
        }

    def tensor_specs(
        self, model: str, version: str | None = None
    ) -> tuple[list[TensorSpec], list[TensorSpec], TensorSpec]:
        """Declared inputs, declared outputs, and the opt-in `activations` output (returned only when asked for,
        so that "no outputs named" means every declared output, as the Open Inference Protocol says)."""
        entry = self.repository.resolve(model, version)
        artifact, kind = entry.artifact, entry.kind
        if artifact is None or kind is None:
            raise ModelNotReady(f"model {entry.name} is not ready: {entry.error or entry.status}")
        activations = TensorSpec(
            ACTIVATIONS,
            "FP32",
            (-1, len(artifact.layers), len(artifact.statistics)),
            optional=True,
            description="per-layer activation statistics; only when named in `outputs` or with the request "
            "parameter `return_activations: true`",
        )
        return kind.inputs(artifact), kind.outputs(artifact), activations

    async def infer_tensors(
        self,
        call: Call,
        name: str,
        version: str | None,
        tensors: dict[str, tuple[str, np.ndarray]],
        parameters: Mapping[str, Any],
        requested: list[str] | None,
    ) -> dict[str, tuple[str, np.ndarray]]:
        """(datatype, array) by output name: every declared output, or the requested ones; `activations` only
        when asked for. The version that answered is `call.served.version`."""
        call.model = name
        inputs, outputs, opt_in = self.tensor_specs(name, version)
        datatypes = {spec.name: spec.datatype for spec in (*outputs, opt_in)}
        unknown = sorted(set(requested or ()) - set(datatypes))
        if unknown:
            raise InvalidInput(f"outputs: unknown output(s) {unknown}; this model has {list(datatypes)}")
        model = self.model(name, version, call=call)
        job = model.kind.from_tensors(model.runtime, bind(inputs, tensors), parameters)
        job.activations = flag(parameters, "return_activations") or ACTIVATIONS in (requested or ())
        answers = await model.infer(job)
        values = model.kind.to_tensors(model.runtime, job, answers)
        if job.activations:
            values[ACTIVATIONS] = np.stack([a.activations for a in answers if a.activations is not None])
        wanted = requested or [name for name in datatypes if name in values]
        return {name: (datatypes[name], values[name]) for name in wanted}

    # --- OpenAI chat completions --------------------------------------------------------------------------------
    async def reply(
        self, call: Call, name: str, text: str, activations: bool
    ) -> tuple[ServedModel, str, int, dict[str, Any]]:
        call.model = name
        model = self.model(name, call=call)
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
    def monitors(self) -> list[ActivationMonitor]:
        return [served.monitor for served in self.repository.served()]

    async def _aggregate(self) -> None:
        """Fold the queued activation rows every second, off the batch workers (reads fold too)."""
        while True:
            await asyncio.sleep(AGGREGATE_EVERY_S)
            for monitor in self.monitors():
                await asyncio.to_thread(monitor.fold)
