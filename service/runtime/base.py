"""The runtime interface: one small class per model kind, each owning its two ONNX Runtime sessions.

A runtime runs one batch at a time on one graph: the fast one, or the diagnostic one that adds the `activations`
output. Everything that can fail for one item alone is checked per item, so a bad item fails by itself.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError

from models.sidecar import DIAGNOSTIC, FAST, FileEntry, Sidecar
from service.errors import LnserveError
from service.runtime.precision import TOLERANCE, PrecisionUnavailable, convert, relative_error
from service.runtime.providers import cpu_concurrency, select_providers
from service.runtime.sessions import Model, Session, graph_batch_sizes, open_session

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
BlockT = TypeVar("BlockT", bound=BaseModel)
FloatArray = npt.NDArray[np.float32]


class ArtifactError(Exception):
    """The artifact cannot be served (corrupt file, mismatched sidecar); the model stays not ready."""


@dataclass(frozen=True)
class Layer:
    index: int
    name: str
    kind: str


@dataclass(frozen=True)
class Artifact:
    """A validated sidecar and the folder it lives in."""

    folder: Path
    sidecar: Sidecar
    created: int = 0  # the sidecar's mtime when it was read (the folder may move away later)

    @property
    def name(self) -> str:
        return self.sidecar.name

    @property
    def kind(self) -> str:
        return self.sidecar.kind

    @property
    def version(self) -> str:
        return self.sidecar.version

    @property
    def layers(self) -> list[Layer]:
        return [Layer(layer.index, layer.name, layer.kind) for layer in self.sidecar.layers]

    @property
    def statistics(self) -> list[str]:
        return list(self.sidecar.statistics)

    def file(self, graph: str) -> Path:
        entry: FileEntry = getattr(self.sidecar.files, graph)
        return self.folder / entry.path


Precision = Literal["fp32", "fp16", "int8"]


@dataclass(frozen=True)
class RuntimeOptions:
    providers: str = "auto"
    intra_op_threads: int = 0
    precision: Precision = "fp32"
    """Of the fast graph; the diagnostic graph always runs in fp32 (its statistics, max |x| first, would overflow
    float16 exactly when they matter)."""
    cuda_graphs: bool = True
    device_id: int = 0
    spinning: bool = True
    """Whether ORT's intra-op threads spin while they wait for work (CPU provider)."""
    concurrent_batches: int = 0
    """Batches of one model run at once on the CPU (0: `cpu_concurrency`'s rule); always 1 on CUDA."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeOptions:
        return cls(
            settings.providers,
            settings.intra_op_threads,
            settings.precision,
            settings.cuda_graphs,
            settings.cuda_device_id,
            settings.intra_op_spinning,
            settings.concurrent_batches,
        )


@dataclass(frozen=True)
class Prediction(Generic[ResultT]):
    """One item's answer and, when its batch ran the diagnostic graph, its own activation statistics."""

    result: ResultT
    activations: FloatArray | None = None  # (n_layers, n_statistics)


Outcome = Prediction[ResultT] | LnserveError
"""What a runtime gives back for one item: its prediction, or the error of that item alone."""


class Runtime(abc.ABC, Generic[ItemT, ResultT]):
    """Loads one artifact's fast and diagnostic sessions and runs batches of prepared items (off the event loop)."""

    def __init__(self, artifact: Artifact, options: RuntimeOptions) -> None:
        self.artifact = artifact
        self.options = options
        self.sessions: dict[str, Session] = {}
        self.precision: Precision = options.precision  # what the fast graph runs in, once loaded
        # the fast graph's parity with fp32 (`precision.relative_error`) when it is not fp32
        self.precision_error: float | None = None

    @property
    def name(self) -> str:
        return self.artifact.name

    def load(self) -> None:
        self.prepare()
        providers = select_providers(self.options.providers)
        self.precision = self.options.precision
        fast: Model = self.artifact.file(FAST)
        if self.precision != "fp32":
            try:
                fast = convert(self.artifact.file(FAST), self.precision, providers)
            except PrecisionUnavailable as exc:  # serve, in fp32, rather than refuse the model
                log.warning("%s: %s; serving fp32", self.name, exc, extra={"model": self.name})
                self.precision = "fp32"
        fp16 = self.precision == "fp16"
        # Building a session of a large unrolled graph takes seconds, mostly outside the GIL: build both at once.
        with ThreadPoolExecutor(max_workers=2) as pool:
            built = pool.map(
                lambda graph: self._open(graph, providers, fp16=fp16 and isinstance(graph, bytes)),
                (fast, self.artifact.file(DIAGNOSTIC)),
            )
            self.sessions = dict(zip((FAST, DIAGNOSTIC), built, strict=True))
        self._check_io()
        if self.precision != "fp32":
            self._check_precision(providers)
        running = self.sessions[FAST].session.get_providers()[0]
        log.info(
            "loaded %s on %s (%s)",
            self.name,
            running,
            self.precision,
            extra={"model": self.name, "providers": providers},
        )

    def _open(self, model: Model, providers: list[str], fp16: bool) -> Session:
        """A session of the fast graph (CUDA graphs when enabled) or of the diagnostic one (never captured: it runs
        for sampled batches only)."""
        options = self.options
        graphs = options.cuda_graphs and model != self.artifact.file(DIAGNOSTIC)
        return open_session(
            model,
            providers,
            options.intra_op_threads,
            options.device_id,
            graphs,
            fp16,
            options.spinning,
            cpu_concurrency(options.concurrent_batches),
        )

    @property
    def on_cuda(self) -> bool:
        return any(getattr(session, "on_cuda", False) for session in self.sessions.values())

    @property
    def concurrency(self) -> int:
        """Batches this runtime may run at once, each on its own thread: ORT sessions on the CPU are safe to call
        from several threads; the CUDA path's bound buffers and captured graphs serve one batch at a time."""
        return 1 if self.on_cuda else cpu_concurrency(self.options.concurrent_batches)

    def _check_precision(self, providers: list[str]) -> None:
        """Keep the fp16 or int8 fast graph only if it answers the warm-up batches as the fp32 diagnostic graph
        does, within the precision's tolerance."""
        fast, reference = self.sessions[FAST], self.sessions[DIAGNOSTIC]
        error = self.precision_error = max(
            relative_error(reference.run(feeds, fast.output_names), fast.run(feeds, fast.output_names))
            for feeds in (self.feeds(items) for batch in (1, 8) for items in self.warmup_batches(batch))
        )
        tolerance = TOLERANCE[self.precision]
        if error <= tolerance:
            log.info(
                "%s: %s graph within %.1e of fp32",
                self.name,
                self.precision,
                error,
                extra={"model": self.name},
            )
            return
        log.warning(
            "%s: the %s graph differs from fp32 by %.1e (tolerance %.0e); serving fp32",
            self.name,
            self.precision,
            error,
            tolerance,
            extra={"model": self.name},
        )
        self.sessions[FAST] = self._open(self.artifact.file(FAST), providers, fp16=False)
        self.precision = "fp32"

    def _check_io(self) -> None:
        declared = sorted(tensor.name for tensor in self.artifact.sidecar.onnx.inputs)
        for session in self.sessions.values():
            if sorted(session.input_names) != declared:
                raise ArtifactError(
                    f"graph inputs {session.input_names} do not match the sidecar's {declared}"
                )
        if "activations" not in self.sessions[DIAGNOSTIC].output_names:
            raise ArtifactError("the diagnostic graph has no 'activations' output")

    def warmup(self, batch_sizes: Sequence[int]) -> float:
        """Run every batch size and shape bucket once on both graphs, so first requests do not pay for allocation;
        on CUDA, first capture the fast graph of every shape bucket at every captured batch size."""
        start = time.perf_counter()
        fast = self.sessions[FAST]
        if fast.captures_graphs:
            captured = [
                fast.capture(self.feeds(items))
                for batch in graph_batch_sizes(max(batch_sizes))
                for items in self.warmup_batches(batch)
            ]
            log.info("%s: %d of %d CUDA graphs captured", self.name, sum(captured), len(captured))
        for batch in batch_sizes:
            for items in self.warmup_batches(batch):
                for diagnostic in (False, True):
                    self.predict(items, diagnostic)
        return time.perf_counter() - start

    def run_graph(
        self, diagnostic: bool, feeds: dict[str, np.ndarray], outputs: Sequence[str]
    ) -> tuple[list[np.ndarray], FloatArray | None]:
        """The named outputs of one graph run, plus `activations` [B, n_layers, n_statistics] on the diagnostic one."""
        if not self.sessions:
            raise RuntimeError(f"{self.name} is not loaded")
        if not diagnostic:
            return self.sessions[FAST].run(feeds, outputs), None
        *values, activations = self.sessions[DIAGNOSTIC].run(feeds, [*outputs, "activations"])
        return values, activations

    def block(self, schema: type[BlockT]) -> BlockT:
        """The sidecar's block of this kind, validated by the kind's schema (a bad one refuses the model)."""
        try:
            return schema.model_validate(self.artifact.sidecar.block())
        except ValidationError as exc:
            raise ArtifactError(f"invalid {self.artifact.kind} block in the sidecar: {exc}") from None

    def batch_key(self, item: ItemT) -> Hashable:
        """Items with equal keys may share a batch (e.g. a length bucket); by default every item may."""
        return None

    @abc.abstractmethod
    def prepare(self) -> None:
        """Tokenizer, label tables, feature module: whatever the kind needs besides the sessions (enough to build
        items and feeds without loading the graphs)."""

    @abc.abstractmethod
    def feeds(self, items: list[ItemT]) -> dict[str, np.ndarray]:
        """The graph inputs of one batch."""

    @abc.abstractmethod
    def warmup_batches(self, batch_size: int) -> list[list[ItemT]]:
        """Items covering the kind's shape buckets at this batch size."""

    @abc.abstractmethod
    def predict(self, items: list[ItemT], diagnostic: bool) -> list[Outcome[ResultT]]:
        """One outcome per item, in order; each item's answer and statistics are its own."""


def with_activations(
    results: Sequence[ResultT | LnserveError], activations: FloatArray | None
) -> list[Outcome[ResultT]]:
    """Pair each row's result (or its own error) with its row of statistics."""
    return [
        result
        if isinstance(result, LnserveError)
        else Prediction(result, None if activations is None else activations[i])
        for i, result in enumerate(results)
    ]
