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
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import BaseModel, ValidationError

from models.sidecar import DIAGNOSTIC, FAST, FileEntry, Sidecar
from service.errors import LnserveError
from service.runtime.providers import CUDA, select_providers, session_options

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


@dataclass(frozen=True)
class RuntimeOptions:
    providers: str = "auto"
    intra_op_threads: int = 0


@dataclass(frozen=True)
class Prediction(Generic[ResultT]):
    """One item's answer and, when its batch ran the diagnostic graph, its own activation statistics."""

    result: ResultT
    activations: FloatArray | None = None  # (n_layers, n_statistics)


Outcome = Prediction[ResultT] | LnserveError
"""What a runtime gives back for one item: its prediction, or the error of that item alone."""


class Session:
    """An `InferenceSession` plus its output names; IO binding when it runs on CUDA."""

    def __init__(self, path: Path, providers: list[str], intra_op_threads: int) -> None:
        self.session = ort.InferenceSession(str(path), session_options(intra_op_threads), providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.on_cuda = CUDA in self.session.get_providers()

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
        if not self.on_cuda:
            return list(self.session.run(list(outputs), feeds))
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in outputs:
            binding.bind_output(name)
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())


class Runtime(abc.ABC, Generic[ItemT, ResultT]):
    """Loads one artifact's fast and diagnostic sessions and runs batches of prepared items (off the event loop)."""

    def __init__(self, artifact: Artifact, options: RuntimeOptions) -> None:
        self.artifact = artifact
        self.options = options
        self.sessions: dict[str, Session] = {}

    @property
    def name(self) -> str:
        return self.artifact.name

    def load(self) -> None:
        self.prepare()
        providers = select_providers(self.options.providers)
        # Building a session of a large unrolled graph takes seconds, mostly outside the GIL: build both at once.
        with ThreadPoolExecutor(max_workers=2) as pool:
            built = pool.map(
                lambda graph: Session(self.artifact.file(graph), providers, self.options.intra_op_threads),
                (FAST, DIAGNOSTIC),
            )
            self.sessions = dict(zip((FAST, DIAGNOSTIC), built, strict=True))
        self._check_io()
        log.info(
            "loaded %s on %s", self.name, providers[0], extra={"model": self.name, "providers": providers}
        )

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
        """Run every batch size and shape bucket once on both graphs, so first requests do not pay for allocation."""
        start = time.perf_counter()
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
