"""A third model kind that lives only in the tests: `y = LayerNorm(x) @ W + b`, served by listing this module in
`LNSERVE_KIND_MODULES`. No other file of the service knows about it; `build_artifact` writes its artifact."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from pydantic import BaseModel, Field

from models.sidecar import (
    DIAGNOSTIC,
    FAST,
    GRAPH_FILES,
    IR_VERSION,
    OPSET,
    STATISTICS,
    assemble,
    tensor,
    write,
)
from service.errors import InvalidInput
from service.kinds import Job, ModelKind, Route
from service.runtime.base import Artifact, Outcome, Prediction, Runtime, with_activations
from service.schemas import FiniteFloat, ModelName, activations_payload
from service.tensors import TensorSpec

WIDTH, OUTPUTS = 4, 2


class TinyRequest(BaseModel):
    values: Annotated[list[FiniteFloat], Field(min_length=WIDTH, max_length=WIDTH)]
    return_activations: bool = False
    model: ModelName = "tiny"


class TinyResponse(BaseModel):
    output: list[float]
    model: str
    artifact: str
    activations: dict[str, Any] | None = None


class TinyRuntime(Runtime[np.ndarray, np.ndarray]):
    def prepare(self) -> None:
        pass

    def feeds(self, items: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {"x": np.stack(items).astype(np.float32)}

    def warmup_batches(self, batch_size: int) -> list[list[np.ndarray]]:
        return [[np.ones(WIDTH, dtype=np.float32)] * batch_size]

    def predict(self, items: list[np.ndarray], diagnostic: bool) -> list[Outcome[np.ndarray]]:
        (y,), activations = self.run_graph(diagnostic, self.feeds(items), ["y"])
        return with_activations(list(y), activations)


class TinyKind(ModelKind[np.ndarray, np.ndarray]):
    name = "tiny"
    runtime_class = TinyRuntime
    route = Route("/v1/tiny", "tiny", TinyRequest, TinyResponse, "Project a vector")

    def parse(self, runtime: Any, body: Any) -> Job[np.ndarray]:
        return Job([np.asarray(body.values, dtype=np.float32)], body.return_activations)

    def respond(
        self, runtime: Any, body: Any, job: Job[np.ndarray], answers: list[Prediction[np.ndarray]]
    ) -> dict[str, Any]:
        (answer,) = answers
        stats = (
            activations_payload(body.model, runtime.artifact, answer.activations) if job.activations else None
        )
        return {
            "output": answer.result.tolist(),
            "model": body.model,
            "artifact": runtime.name,
            "activations": stats,
        }

    def inputs(self, artifact: Artifact) -> list[TensorSpec]:
        return [TensorSpec("x", "FP32", (-1, WIDTH))]

    def outputs(self, artifact: Artifact) -> list[TensorSpec]:
        return [TensorSpec("y", "FP32", (-1, OUTPUTS))]

    def from_tensors(
        self, runtime: Any, tensors: dict[str, np.ndarray], parameters: Mapping[str, Any]
    ) -> Job[np.ndarray]:
        if not np.isfinite(tensors["x"]).all():
            raise InvalidInput("inputs.x: values must be finite")
        return Job(list(tensors["x"]))

    def to_tensors(
        self, runtime: Any, job: Job[np.ndarray], answers: list[Prediction[np.ndarray]]
    ) -> dict[str, np.ndarray]:
        return {"y": np.stack([a.result for a in answers])}

    def bench_bodies(self, n: int) -> list[dict[str, Any]]:
        return [{"values": [float(i), 1.0, -1.0, 0.5]} for i in range(n)]


KIND = TinyKind()


def reference(weight: np.ndarray, bias: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy of what the graphs compute: y and the statistics [B, 1, 5] of the normalised hidden state."""
    h = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    stats = [h.mean(1), h.std(1), np.sqrt((h**2).mean(1)), np.abs(h).mean(1), np.abs(h).max(1)]
    return h @ weight + bias, np.stack(stats, axis=1)[:, None, :]


def _graph(weight: np.ndarray, bias: np.ndarray, diagnostic: bool) -> onnx.ModelProto:
    init = [
        numpy_helper.from_array(np.ones(WIDTH, np.float32), "scale"),
        numpy_helper.from_array(np.zeros(WIDTH, np.float32), "shift"),
        numpy_helper.from_array(weight.astype(np.float32), "W"),
        numpy_helper.from_array(bias.astype(np.float32), "b"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "scale", "shift"], ["h"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["h", "W"], ["hw"]),
        helper.make_node("Add", ["hw", "b"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", OUTPUTS])]
    if diagnostic:
        nodes += [
            helper.make_node("ReduceMean", ["h", "axis1"], ["mean"], keepdims=1),
            helper.make_node("Sub", ["h", "mean"], ["centred"]),
            helper.make_node("Mul", ["centred", "centred"], ["sq_c"]),
            helper.make_node("ReduceMean", ["sq_c", "axis1"], ["var"], keepdims=1),
            helper.make_node("Sqrt", ["var"], ["std"]),
            helper.make_node("Mul", ["h", "h"], ["sq"]),
            helper.make_node("ReduceMean", ["sq", "axis1"], ["ms"], keepdims=1),
            helper.make_node("Sqrt", ["ms"], ["rms"]),
            helper.make_node("Abs", ["h"], ["abs"]),
            helper.make_node("ReduceMean", ["abs", "axis1"], ["abs_mean"], keepdims=1),
            helper.make_node("ReduceMax", ["abs", "axis1"], ["abs_max"], keepdims=1),
            helper.make_node("Concat", ["mean", "std", "rms", "abs_mean", "abs_max"], ["stats"], axis=1),
            helper.make_node("Unsqueeze", ["stats", "axis1"], ["activations"]),
        ]
        outputs.append(
            helper.make_tensor_value_info("activations", TensorProto.FLOAT, ["batch", 1, len(STATISTICS)])
        )
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        outputs,
        init,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def build_artifact(models_dir: Path, name: str, weight: np.ndarray, bias: np.ndarray) -> Path:
    """`models_dir/tiny/artifacts/<name>/` with both graphs and a valid sidecar."""
    folder = models_dir / "tiny" / "artifacts" / name
    folder.mkdir(parents=True)
    for graph, diagnostic in ((FAST, False), (DIAGNOSTIC, True)):
        onnx.save(_graph(weight, bias, diagnostic), folder / GRAPH_FILES[graph])
    sample = np.random.default_rng(0).normal(size=(64, WIDTH))
    sidecar = assemble(
        name=name,
        kind="tiny",
        folder=folder,
        inputs=[tensor("x", "float32", "batch", WIDTH)],
        outputs=[tensor("y", "float32", "batch", OUTPUTS)],
        config={"norm_placement": "pre", "norm_type": "layernorm", "residual_scale": 1.0, "n_layer": 1},
        layers=[{"index": 0, "name": "norm", "kind": "norm"}],
        reference=reference(weight, bias, sample)[1],
        training={},
        block={},
    )
    write(sidecar, folder)
    return folder
