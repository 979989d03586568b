"""The model-kind plugin interface: everything the service knows about one kind of model, in one object.

A kind names its runtime (how an artifact is loaded and a batch is run), its tensors (the KServe v2 declaration that
metadata and validation derive from), its JSON route with request and response schemas, the model a request gets
when it names none, its batching defaults and its benchmark inputs. The data plane, the protocol adapters, the CLI
and `bench/` read kinds from the registry and never branch on a kind's name.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
from pydantic import BaseModel

from service.runtime.base import Artifact, Prediction, Runtime, RuntimeOptions
from service.tensors import TensorSpec

PayloadT = TypeVar("PayloadT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Route:
    """The kind's own JSON endpoint: `POST path`, its schemas and the name used as the metrics' endpoint label."""

    path: str
    endpoint: str
    request: type[BaseModel]
    response: type[BaseModel]
    summary: str


@dataclass
class Job(Generic[PayloadT]):
    """One request, translated: the items to batch, whether it wants statistics, and what its answer needs."""

    items: list[PayloadT]
    activations: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


class ModelKind(abc.ABC, Generic[PayloadT, ResultT]):
    name: ClassVar[str]
    """The sidecar's `kind`."""
    default_model: ClassVar[str] = ""
    """The model a request of this kind's route gets when it names none (an alias or an artifact name); the kind's
    name unless a kind says otherwise."""
    route: ClassVar[Route]
    batching: ClassVar[Mapping[str, Any]] = {}
    """Defaults for `BatchPolicy` fields that differ from the service-wide settings."""
    training: ClassVar[str | None] = None
    """The kind's training-side module (`models/<kind>/hooks.py`, imports torch only inside its functions):
    `register(train_app, export_app)` adds `lnserve train/export` commands; `eager_model(artifact, runs_dir)` and
    `export_fast_graph(model, path)` let the benchmarks compare ONNX Runtime with PyTorch on the same weights."""

    runtime_class: ClassVar[type[Runtime[Any, Any]]]
    """The runtime that loads this kind's artifacts and runs its batches."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.default_model and getattr(cls, "name", None):
            cls.default_model = cls.name

    # --- loading -------------------------------------------------------------------------------------------
    def runtime(self, artifact: Artifact, options: RuntimeOptions) -> Runtime[PayloadT, ResultT]:
        """An unloaded runtime for this artifact (the repository loads and warms it)."""
        runtime: Runtime[PayloadT, ResultT] = self.runtime_class(artifact, options)
        return runtime

    def describe(self, artifact: Artifact) -> dict[str, Any]:
        """Kind-specific metadata for `/v1/models` and v2 model metadata (labels, horizons, …)."""
        return artifact.sidecar.block()

    # --- the kind's JSON route ---------------------------------------------------------------------------------
    def request_schema(self, artifact: Artifact | None) -> dict[str, Any]:
        """The JSON schema of `route.request` in the OpenAPI document. A kind adds the limits of `artifact` (the model
        its route serves by default, when it is there), so that a body the schema allows is one the model takes."""
        return self.route.request.model_json_schema(ref_template="#/components/schemas/{model}")

    @abc.abstractmethod
    def parse(self, runtime: Runtime[PayloadT, ResultT], body: Any) -> Job[PayloadT]:
        """The validated request body (of `route.request`) as items; per-item preparation happens here, so a bad
        item fails its own request before anything is batched."""

    @abc.abstractmethod
    def respond(
        self,
        runtime: Runtime[PayloadT, ResultT],
        body: Any,
        job: Job[PayloadT],
        answers: list[Prediction[ResultT]],
    ) -> dict[str, Any]:
        """The JSON response (`route.response`'s shape) for one request."""

    # --- KServe v2 ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def inputs(self, artifact: Artifact) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def outputs(self, artifact: Artifact) -> list[TensorSpec]:
        """Declared outputs, without `activations` (the data plane adds it for every kind)."""

    @abc.abstractmethod
    def from_tensors(
        self,
        runtime: Runtime[PayloadT, ResultT],
        tensors: dict[str, np.ndarray],
        parameters: Mapping[str, Any],
    ) -> Job[PayloadT]:
        """Validated inputs (declared names, dtypes and shapes) and request parameters as items."""

    @abc.abstractmethod
    def to_tensors(
        self, runtime: Runtime[PayloadT, ResultT], job: Job[PayloadT], answers: list[Prediction[ResultT]]
    ) -> dict[str, np.ndarray]:
        """Every declared output, by name."""

    # --- benchmarks -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def bench_bodies(self, n: int) -> list[dict[str, Any]]:
        """`n` realistic JSON bodies for `route` (the HTTP benchmarks post them)."""


class TextReplies(abc.ABC, Generic[PayloadT, ResultT]):
    """A capability: kinds that answer a text with a text can serve OpenAI chat completions."""

    @abc.abstractmethod
    def text_job(
        self, runtime: Runtime[PayloadT, ResultT], text: str, activations: bool
    ) -> Job[PayloadT]: ...

    @abc.abstractmethod
    def reply(self, answer: Prediction[ResultT]) -> tuple[str, int, dict[str, Any]]:
        """The reply text, the prompt's token count and the extra fields of the answer."""
