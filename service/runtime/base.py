"""The runtime interface: one small class per model kind, each owning its ONNX Runtime sessions."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from service.activations import ActivationMonitor, Layer
from service.runtime.providers import CUDA, select_providers, session_options

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
FloatArray = npt.NDArray[np.float32]


class ArtifactError(Exception):
    """The artifact cannot be served (corrupt file, mismatched sidecar); the model stays not ready."""


@dataclass(frozen=True)
class Artifact:
    """A parsed sidecar and the folder it lives in."""

    folder: Path
    sidecar: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.sidecar["name"])

    @property
    def kind(self) -> str:
        return str(self.sidecar["kind"])

    @property
    def version(self) -> str:
        return str(self.sidecar.get("version", "1"))

    @property
    def layers(self) -> list[Layer]:
        return [
            Layer(int(row["index"]), str(row["name"]), str(row.get("kind", "")))
            for row in self.sidecar["layers"]
        ]

    @property
    def statistics(self) -> list[str]:
        return [
            str(stat)
            for stat in self.sidecar.get("statistics", ["mean", "std", "rms", "abs_mean", "abs_max"])
        ]

    def file(self, role: str) -> Path:
        return self.folder / str(self.sidecar["files"][role]["path"])

    def monitor(self) -> ActivationMonitor:
        return ActivationMonitor(
            self.name, self.layers, self.statistics, self.sidecar.get("reference_activations", {})
        )


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
    """Loads one artifact's fast and diagnostic sessions and runs batches of items (off the event loop)."""

    def __init__(self, artifact: Artifact, providers: str, intra_op_threads: int) -> None:
        self.artifact = artifact
        self._providers = providers
        self._threads = intra_op_threads
        self.fast: Session | None = None
        self.diagnostic: Session | None = None
        self.ready = False
        self.monitor = artifact.monitor()
        self.on_compute: Callable[[str, float], None] | None = None
        """Called with the path (`fast` or `diagnostic`) and seconds of every graph run."""

    @property
    def name(self) -> str:
        return self.artifact.name

    def load(self) -> None:
        providers = select_providers(self._providers)
        # Building a session of a large unrolled graph takes seconds, mostly outside the GIL: build both at once.
        with ThreadPoolExecutor(max_workers=2) as pool:
            fast, diagnostic = pool.map(
                lambda role: Session(self.artifact.file(role), providers, self._threads),
                ("model", "diagnostics"),
            )
        self.fast, self.diagnostic = fast, diagnostic
        self._check_io()
        self._load_extras()
        log.info(
            "loaded %s on %s", self.name, providers[0], extra={"model": self.name, "providers": providers}
        )

    def _check_io(self) -> None:
        assert self.fast is not None and self.diagnostic is not None
        declared = [str(i["name"]) for i in self.artifact.sidecar["onnx"]["inputs"]]
        for session in (self.fast, self.diagnostic):
            if sorted(session.input_names) != sorted(declared):
                raise ArtifactError(
                    f"graph inputs {session.input_names} do not match the sidecar's {declared}"
                )
        if "activations" not in self.diagnostic.output_names:
            raise ArtifactError("the diagnostic graph has no 'activations' output")

    def warmup(self, batch_sizes: Sequence[int]) -> float:
        """Run every batch and length bucket once on both paths, so first requests do not pay for allocation."""
        start = time.perf_counter()
        for batch in batch_sizes:
            for items in self.warmup_batches(batch):
                self.predict(items)
        return time.perf_counter() - start

    def run_graph(self, path: str, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
        session = self.fast if path == "fast" else self.diagnostic
        if session is None:
            raise RuntimeError(f"{self.name} is not loaded")
        start = time.perf_counter()
        result = session.run(feeds, outputs)
        if self.on_compute is not None:
            self.on_compute(path, time.perf_counter() - start)
        return result

    @abc.abstractmethod
    def _load_extras(self) -> None:
        """Tokenizer, label tables, feature module: whatever the kind needs besides the sessions."""

    @abc.abstractmethod
    def warmup_batches(self, batch_size: int) -> list[list[ItemT]]:
        """Items covering the kind's shape buckets at this batch size, on both paths."""

    @abc.abstractmethod
    def predict(self, items: list[ItemT]) -> list[ResultT]:
        """One result per item, in order; each item's answer and statistics are its own."""


def split_paths(diagnostic: Sequence[bool]) -> tuple[list[int], list[int]]:
    """Indices of the items for the fast graph and for the instrumented one."""
    fast = [i for i, diag in enumerate(diagnostic) if not diag]
    diag = [i for i, diag in enumerate(diagnostic) if diag]
    return fast, diag
