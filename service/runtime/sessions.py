"""ONNX Runtime sessions: `InferenceSession.run` on the CPU; on CUDA, IO binding and CUDA graphs of fixed shapes.

On CUDA (`CudaSession`):
- IO binding: each input is copied to the device once (ORT copies the bound host array in its run); each requested
  output is written in device memory and copied back once; outputs nobody asked for are never copied.
- CUDA graphs (`capture`, called at warm-up for every length bucket and power-of-two batch size): a session of that
  shape alone (its free dimensions fixed, so ORT folds the shape arithmetic away and every node runs on the GPU)
  with `enable_cuda_graph`. Its inputs and outputs live at fixed device addresses: a run is one copy in per input,
  one graph launch, one copy out per requested output. A batch runs in the captured graph of the smallest batch
  size that holds it, padded with copies of its first row (rows never interact in these models; the padding rows'
  outputs are dropped), as vLLM pads decode batches to its captured sizes. A captured graph is kept only if it
  answers the capture batch as the plain session does; any shape without one runs through plain IO binding.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.runtime.precision import relative_error
from service.runtime.providers import (
    CPU,
    CUDA,
    cpu_threads,
    cuda_options,
    preload_cuda_dlls,
    session_options,
)

log = logging.getLogger(__name__)

Model = Path | bytes
"""A graph file, or a serialised graph (the float16 conversion)."""
Feeds = dict[str, np.ndarray]
Signature = tuple[tuple[str, tuple[int, ...], str], ...]

GRAPH_TOLERANCE = 1e-3
"""Largest accepted relative difference (`precision.relative_error`) between a captured graph and the plain session
of the same graph: both run the same arithmetic, so more than rounding is a fault, not a speed-up."""
DEVICE = "cuda"
"""Where CUDA sessions keep their bound inputs and outputs (ORT's name for the device)."""
CAPTURE_RUNS = 3
"""Runs at capture: ORT runs a graph-enabled session normally at first, then captures and replays."""


def graph_batch_sizes(largest: int) -> list[int]:
    """Batch sizes captured for a model whose batches hold at most `largest` rows: powers of two, then `largest`."""
    sizes = [1]
    while sizes[-1] * 2 < largest:
        sizes.append(sizes[-1] * 2)
    return sorted({*sizes, largest})


def signature(feeds: Feeds, rows: int | None = None) -> Signature:
    """Names, shapes and dtypes of the feeds; with `rows`, the batch axis counted as `rows`."""
    return tuple(
        (name, (rows if rows is not None else value.shape[0], *value.shape[1:]), value.dtype.str)
        for name, value in sorted(feeds.items())
    )


def pad_rows(feeds: Feeds, rows: int) -> Feeds:
    """Every feed with copies of its first row appended up to `rows` rows (a valid input of any kind)."""
    return {
        name: value
        if len(value) >= rows
        else np.concatenate([value, np.repeat(value[:1], rows - len(value), 0)])
        for name, value in feeds.items()
    }


def _model_arg(model: Model) -> str | bytes:
    return model if isinstance(model, bytes) else str(model)


class Session:
    """An `InferenceSession` and its input and output names, run with `InferenceSession.run`."""

    captures_graphs = False

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, feeds: Feeds, outputs: Sequence[str]) -> list[np.ndarray]:
        return list(self.session.run(list(outputs), feeds))

    def capture(self, feeds: Feeds) -> bool:
        """Capture a CUDA graph for this shape; False where graphs do not apply."""
        return False


class CudaSession(Session):
    """A session on the CUDA provider: IO binding, and the CUDA graphs captured for fixed shapes."""

    def __init__(
        self, model: Model, intra_op_threads: int, device_id: int, cuda_graphs: bool, fp16: bool
    ) -> None:
        preload_cuda_dlls()
        providers = [(CUDA, cuda_options(device_id, cuda_graph=False, fp16=fp16)), CPU]
        options = session_options(intra_op_threads, on_cuda=True)
        super().__init__(ort.InferenceSession(_model_arg(model), options, providers=providers))
        self.model, self.intra_op_threads, self.device_id, self.fp16 = (
            model,
            intra_op_threads,
            device_id,
            fp16,
        )
        self.on_cuda = CUDA in self.session.get_providers()
        self.captures_graphs = cuda_graphs and self.on_cuda
        self.graphs: dict[Signature, CapturedGraph] = {}
        self._refused: set[Signature] = set()
        self._sizes: dict[Signature, list[int]] = {}  # shape without the batch axis -> captured batch sizes

    def run(self, feeds: Feeds, outputs: Sequence[str]) -> list[np.ndarray]:
        rows = len(next(iter(feeds.values())))
        graph = self._graph_for(feeds, rows)
        if graph is None or not set(outputs) <= set(graph.outputs):
            return self.run_bound(feeds, outputs)
        return [value[:rows] for value in graph.run(pad_rows(feeds, graph.rows), outputs)]

    def run_bound(self, feeds: Feeds, outputs: Sequence[str]) -> list[np.ndarray]:
        """One run through IO binding: inputs copied in once, the requested outputs copied out once."""
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in outputs:
            binding.bind_output(name, DEVICE, self.device_id)
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def _graph_for(self, feeds: Feeds, rows: int) -> CapturedGraph | None:
        sizes = self._sizes.get(signature(feeds, 0), [])
        fits = next((size for size in sizes if size >= rows), None)
        return None if fits is None else self.graphs[signature(feeds, fits)]

    def capture(self, feeds: Feeds) -> bool:
        if not self.captures_graphs:
            return False
        key = signature(feeds)
        if key in self.graphs or key in self._refused:
            return key in self.graphs
        problem = self._batch_axis_problem(feeds)
        try:
            if problem:
                raise ValueError(problem)
            self.graphs[key] = CapturedGraph(self, feeds)
        except (
            Exception
        ) as exc:  # ORT refused the graph (a node left on the CPU), or it did not match: run plainly
            self._refused.add(key)
            log.warning("no CUDA graph for inputs %s: %s", [shape for _, shape, _ in key], exc)
            return False
        rows = len(next(iter(feeds.values())))
        self._sizes[signature(feeds, 0)] = sorted({*self._sizes.get(signature(feeds, 0), []), rows})
        return True

    def _batch_axis_problem(self, feeds: Feeds) -> str:
        """Why padding rows would be wrong for this graph ('' when every input and output leads with one free
        batch dimension)."""
        leads = {i.shape[0] if i.shape else None for i in self.session.get_inputs()}
        leads |= {o.shape[0] if o.shape else None for o in self.session.get_outputs()}
        if len(leads) != 1 or not isinstance(next(iter(leads)), str):
            return f"inputs and outputs do not share a leading batch dimension ({sorted(map(str, leads))})"
        return ""

    def free_dimensions(self, feeds: Feeds) -> dict[str, int]:
        """The graph's named dimensions and their sizes in these feeds."""
        dims: dict[str, int] = {}
        for info in self.session.get_inputs():
            for dim, size in zip(info.shape, feeds[info.name].shape, strict=True):
                if isinstance(dim, str):
                    dims[dim] = int(size)
        return dims


class CapturedGraph:
    """A session of one fixed shape with `enable_cuda_graph`, its inputs and outputs bound at fixed device
    addresses."""

    def __init__(self, base: CudaSession, feeds: Feeds) -> None:
        self.rows = len(next(iter(feeds.values())))
        self.outputs = list(base.output_names)
        reference = base.run_bound(feeds, self.outputs)  # the output shapes, and the answer to match
        options = session_options(base.intra_op_threads, on_cuda=True)
        for name, size in base.free_dimensions(feeds).items():
            options.add_free_dimension_override_by_name(name, size)
        providers = [(CUDA, cuda_options(base.device_id, cuda_graph=True, fp16=base.fp16))]
        self.session = ort.InferenceSession(_model_arg(base.model), options, providers=providers)
        device = (DEVICE, base.device_id)
        self._in = {
            name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), *device)
            for name, value in feeds.items()
        }
        self._out = {
            name: ort.OrtValue.ortvalue_from_shape_and_type(ref.shape, ref.dtype.type, *device)
            for name, ref in zip(self.outputs, reference, strict=True)
        }
        self.binding = self.session.io_binding()
        for name, value in self._in.items():
            self.binding.bind_ortvalue_input(name, value)
        for name, value in self._out.items():
            self.binding.bind_ortvalue_output(name, value)
        self._lock = threading.Lock()
        for _ in range(CAPTURE_RUNS):
            self.session.run_with_iobinding(self.binding)
        error = relative_error(reference, self.run(feeds, self.outputs))
        if error > GRAPH_TOLERANCE:
            raise ValueError(f"the captured graph differs from the plain session by {error:.1e}")

    def run(self, feeds: Feeds, outputs: Sequence[str]) -> list[np.ndarray]:
        with self._lock:  # the bound buffers are this graph's only inputs and outputs
            for name, value in feeds.items():
                self._in[name].update_inplace(np.ascontiguousarray(value))
            self.session.run_with_iobinding(self.binding)
            return [self._out[name].numpy() for name in outputs]


def open_session(
    model: Model,
    providers: list[str],
    intra_op_threads: int,
    device_id: int = 0,
    cuda_graphs: bool = False,
    fp16: bool = False,
    spinning: bool = True,
    concurrency: int = 1,
) -> Session:
    """A `CudaSession` when CUDA is among `providers` and loads, else a plain session on the other providers."""
    if CUDA in providers:
        cuda = CudaSession(model, intra_op_threads, device_id, cuda_graphs, fp16)
        if cuda.on_cuda:
            return cuda
        log.warning("the CUDA provider did not load; running on the CPU")
        providers = [name for name in providers if name != CUDA] or [CPU]
    options = session_options(cpu_threads(intra_op_threads, concurrency), spinning=spinning)
    return Session(ort.InferenceSession(_model_arg(model), options, providers=providers))
