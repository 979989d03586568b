"""The PyTorch model of an artifact with the weights of its shipped ONNX graph, for timing torch against ORT.

Checkpoints are not committed, so the weights come from `fast.onnx` itself. Names cannot say which initializer is
which parameter: the exporters rename some (`val_17`, `onnx::MatMul_6129`, often transposed) and merge equal ones.
So the kind's own export code exports a model of the same config once more, every parameter set to unique random
values; in that fresh graph each initializer equals one parameter (or its transpose), and the initializer the
shipped graph reads at the same node and input slot carries that parameter's trained value. The recovered model must
reproduce the shipped graph's outputs (ORT, CPU) or nothing is written.

    .venv/bin/python -m bench.gpu.torch_weights --out .gpu/weights      (run by `make gpu-prepare`)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from bench.artifacts import KINDS, default_artifact, feeds_for, kind_of
from models.sidecar import FAST
from service.runtime.base import Artifact

PARITY = 1e-4  # max |torch - ORT| / max |ORT| for the recovered weights


def _graph(path: Path) -> tuple[dict[str, np.ndarray], list[tuple[str, list[str]]]]:
    """Initializers by name, and every node as (op type, input names), in graph order. An exporter that merges equal
    initializers reads the copies through `Identity` nodes: those are dropped and their readers read the original."""
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    alias: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        inputs = [alias.get(name, name) for name in node.input]
        if node.op_type == "Identity" and inputs[0] in inits:
            alias[node.output[0]] = inputs[0]
            continue
        nodes.append((node.op_type, inputs))
    return inits, nodes


def _first_uses(
    inits: dict[str, np.ndarray], nodes: list[tuple[str, list[str]]]
) -> dict[str, tuple[int, int]]:
    """Where each initializer is first read: (node index, input slot)."""
    uses: dict[str, tuple[int, int]] = {}
    for i, (_, inputs) in enumerate(nodes):
        for j, name in enumerate(inputs):
            if name in inits:
                uses.setdefault(name, (i, j))
    return uses


def recover_state(
    model: torch.nn.Module, export: Callable[[torch.nn.Module, Path], None], shipped: Path
) -> dict[str, torch.Tensor]:
    """The state dict of `model`'s architecture holding the weights of the graph at `shipped`, which the same
    export code wrote from a model of the same config (`model`'s own values are overwritten)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for (
            parameter
        ) in model.parameters():  # unique values: no two parameters alike (LayerNorm's are all ones)
            parameter.copy_(torch.randn_like(parameter))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory(prefix="lnserve-weights-") as tmp:
        export(model, Path(tmp) / "fresh.onnx")
        fresh, fresh_nodes = _graph(Path(tmp) / "fresh.onnx")
    trained, nodes = _graph(shipped)
    if [op for op, _ in nodes] != [op for op, _ in fresh_nodes]:
        raise ValueError(
            f"{shipped} was not written by this export code from this config (the graphs differ)"
        )
    uses = _first_uses(fresh, fresh_nodes)
    recovered: dict[str, torch.Tensor] = {}
    for name, value in fresh.items():
        match = _parameter_of(value, state)
        if match is None or name not in uses:
            continue  # a constant of the graph, not a parameter
        key, transposed = match
        node, slot = uses[name]
        weight = trained[nodes[node][1][slot]]
        recovered[key] = torch.from_numpy(np.array(weight.T if transposed else weight))  # a copy
    missing = [k for k, v in state.items() if k not in recovered and v.dtype.is_floating_point]
    if missing:
        raise ValueError(f"no initializer of {shipped.name} carries the parameters {missing}")
    return {k: recovered.get(k, v) for k, v in state.items()}


def _parameter_of(value: np.ndarray, state: dict[str, torch.Tensor]) -> tuple[str, bool] | None:
    """The parameter equal to `value` (False) or to its transpose (True)."""
    if value.dtype != np.float32 or value.ndim == 0:
        return None
    for key, tensor in state.items():
        array = tensor.numpy()
        if array.shape == value.shape and np.array_equal(array, value):
            return key, False
        if array.ndim == 2 and array.T.shape == value.shape and np.array_equal(array.T, value):
            return key, True
    return None


def torch_outputs(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        out = model(*(torch.from_numpy(a) for a in feeds.values()))
    return (out[0] if isinstance(out, tuple) else out).numpy()


def fast_sha256(artifact: Artifact) -> str:
    return hashlib.sha256(artifact.file(FAST).read_bytes()).hexdigest()


def seeded_model(artifact: Artifact) -> torch.nn.Module:
    """The artifact's network built from its sidecar config (never from a checkpoint), in eval mode."""
    hooks = importlib.import_module(str(kind_of(artifact).training))
    model, _ = hooks.eager_model(artifact, Path("/nonexistent/runs"))
    return model.eval()  # type: ignore[no-any-return]


def recover(artifact: Artifact) -> tuple[dict[str, torch.Tensor], float]:
    """The recovered state of the artifact's network and its parity with the shipped graph (checked here)."""
    hooks = importlib.import_module(str(kind_of(artifact).training))
    model = seeded_model(artifact)
    state = recover_state(model, hooks.export_fast_graph, artifact.file(FAST))
    model.load_state_dict(state)
    feeds = feeds_for(artifact, 32)
    session = ort.InferenceSession(str(artifact.file(FAST)), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)[0]
    error = float(np.abs(torch_outputs(model, feeds) - expected).max() / np.abs(expected).max())
    if error > PARITY:
        raise ValueError(f"{artifact.name}: recovered weights differ from the graph by {error:.1e}")
    return state, error


def save(artifact: Artifact, state: dict[str, torch.Tensor], error: float, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{artifact.name}.npz"
    np.savez(path, **{k: v.numpy() for k, v in state.items()})
    meta = {"artifact": artifact.name, "fast_sha256": fast_sha256(artifact), "parity": error}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return path


def load(artifact: Artifact, folder: Path) -> torch.nn.Module:
    """The artifact's network with the weights `save` wrote; refuses weights recovered from another graph."""
    path = folder / f"{artifact.name}.npz"
    meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    if meta["fast_sha256"] != fast_sha256(artifact):
        raise ValueError(
            f"{path} was recovered from another {artifact.name} graph: run make gpu-prepare again"
        )
    model = seeded_model(artifact)
    with np.load(path) as arrays:
        model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    return model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kinds", nargs="+", default=[k for k in KINDS if KINDS[k].training], choices=KINDS)
    args = parser.parse_args()
    for kind in args.kinds:
        artifact = default_artifact(kind)
        done = args.out / f"{artifact.name}.json"
        if done.exists() and json.loads(done.read_text())["fast_sha256"] == fast_sha256(artifact):
            print(f"{artifact.name}: weights already recovered from this graph")
            continue
        state, error = recover(artifact)
        print(
            f"{artifact.name}: {len(state)} tensors, parity {error:.1e} -> {save(artifact, state, error, args.out)}"
        )


if __name__ == "__main__":
    main()
