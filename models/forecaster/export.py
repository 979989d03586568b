"""Export to ONNX (unrolled over the fixed context: no Loop/Scan) and write the artifact folder with its sidecar.

Two graphs from the same weights: fast.onnx (quantiles only, the fast path) and diagnostic.onnx (quantiles plus
"activations" [batch, n_layers, 5], the statistics computed in the graph over each row's real time steps).
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from models.forecaster.features import INPUT_NAMES
from models.forecaster.model import Forecaster, ForecasterEnsemble
from models.sidecar import DIAGNOSTIC, FAST, GRAPH_FILES, IR_VERSION, OPSET, Sidecar, assemble, tensor, write

FEATURES_MODULE = "models.forecaster.features"


class _Graph(nn.Module):
    def __init__(self, model: nn.Module, diagnostics: bool) -> None:
        super().__init__()
        self.model, self.diagnostics = model, diagnostics

    def forward(self, context, mask, seasonal_lag, anchor):  # type: ignore[no-untyped-def]
        q, acts = self.model(context, mask, seasonal_lag, anchor, return_activations=self.diagnostics)
        return (q, acts) if self.diagnostics else q


def example_inputs(model: Forecaster | ForecasterEnsemble, batch: int = 2) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    rng = np.random.default_rng(0)
    context = torch.from_numpy(rng.normal(1.0, 0.1, (batch, cfg.context_length)).astype(np.float32))
    mask = torch.ones(batch, cfg.context_length)
    return context, mask, context.roll(1, dims=1), context[:, -1:].repeat(1, cfg.max_horizon)


def export_onnx(model: Forecaster | ForecasterEnsemble, path: Path, diagnostics: bool) -> None:
    """Write one graph; opset 18, IR 10 (ORT 1.31 accepts at most 13), dynamic batch axis."""
    outputs = ["quantiles", "activations"] if diagnostics else ["quantiles"]
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notices
        warnings.simplefilter("ignore")
        _export(model, buf, outputs, diagnostics)
    proto = compact(onnx.load_from_string(buf.getvalue()))
    proto.ir_version = IR_VERSION
    loops = {n.op_type for n in proto.graph.node} & {"Loop", "Scan", "If"}
    if loops:
        raise RuntimeError(f"graph has control flow {loops}: it must be unrolled")
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, path)


def _export(model: nn.Module, buf: io.BytesIO, outputs: list[str], diagnostics: bool) -> None:
    # The TorchScript exporter traces the Python loop, which unrolls it; it takes seconds where the dynamo
    # exporter took minutes on the same unrolled graph.
    torch.onnx.export(
        _Graph(model.eval(), diagnostics),
        example_inputs(model),
        buf,
        input_names=list(INPUT_NAMES),
        output_names=outputs,
        dynamic_axes={name: {0: "batch"} for name in [*INPUT_NAMES, *outputs]},
        opset_version=OPSET,
        dynamo=False,
    )


def compact(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Shrink the unrolled graph: one copy of each distinct constant, short value names, no node names.

    The exporter names every value after its scope (~40 bytes each) and repeats the same scalar constants once
    per time step; that, not the weights, was 80% of the file.
    """
    graph = proto.graph
    keep_names = (
        {v.name for v in graph.input} | {v.name for v in graph.output} | {t.name for t in graph.initializer}
    )
    seen: dict[bytes, str] = {}
    alias: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        node.input[:] = [alias.get(x, x) for x in node.input]
        if node.op_type == "Constant":
            key = b"".join(a.SerializeToString() for a in node.attribute)
            if key in seen:
                alias[node.output[0]] = seen[key]
                continue
            seen[key] = node.output[0]
        nodes.append(node)
    short: dict[str, str] = {}
    for node in nodes:
        node.name, node.doc_string = "", ""
        for i, x in enumerate(node.output):
            if x not in keep_names:
                short[x] = node.output[i] = f"v{len(short):x}"
        node.input[:] = [short.get(x, x) for x in node.input]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return proto


def layer_kind(name: str) -> str:
    leaf = name.rsplit(".", 1)[-1]
    return {
        "gates_ih_pre": "gates_pre_norm",
        "gates_hh_pre": "gates_pre_norm",
        "gates_ih_post": "gates_post_norm",
        "gates_hh_post": "gates_post_norm",
        "cell_norm": "cell_norm",
        "hidden": "hidden",
    }[leaf]


def sidecar(
    name: str,
    folder: Path,
    model: Forecaster | ForecasterEnsemble,
    reference: np.ndarray,
    training: dict,
) -> Sidecar:
    cfg = model.config
    members = len(model.members) if isinstance(model, ForecasterEnsemble) else 1
    shapes = {"context": cfg.context_length, "mask": cfg.context_length, "seasonal_lag": cfg.context_length}
    return assemble(
        name=name,
        kind="forecaster",
        folder=folder,
        inputs=[tensor(n, "float32", "batch", shapes.get(n, cfg.max_horizon)) for n in INPUT_NAMES],
        outputs=[tensor("quantiles", "float32", "batch", cfg.max_horizon, len(cfg.quantiles))],
        config=cfg.to_dict()
        | {"ensemble_members": members, "parameters": sum(p.numel() for p in model.parameters())},
        layers=[{"index": i, "name": n, "kind": layer_kind(n)} for i, n in enumerate(model.layer_names)],
        reference=reference,
        training=training,
        block={
            "context_length": cfg.context_length,
            "max_horizon": cfg.max_horizon,
            "quantiles": list(cfg.quantiles),
            "features": FEATURES_MODULE,
        },
    )


def export_graphs(model: Forecaster | ForecasterEnsemble, folder: Path) -> float:
    """Both graphs into folder; returns the seconds the export took."""
    start = time.perf_counter()
    export_onnx(model, folder / GRAPH_FILES[FAST], diagnostics=False)
    export_onnx(model, folder / GRAPH_FILES[DIAGNOSTIC], diagnostics=True)
    return time.perf_counter() - start


def _session_options() -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # The memory-reuse planner is super-linear in the node count of the unrolled graph (seconds per session).
    options.enable_mem_reuse = False
    return options


def ort_predict(path: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), _session_options(), providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(["quantiles"], feeds)[0]


def write_sidecar(
    model: Forecaster | ForecasterEnsemble,
    folder: Path,
    name: str,
    reference_feeds: dict[str, np.ndarray],
    training: dict,
) -> Sidecar:
    """Reference statistics from the diagnostic graph over reference_feeds (the validation windows), then sidecar."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(folder / GRAPH_FILES[DIAGNOSTIC]), _session_options(), providers=["CPUExecutionProvider"]
    )
    _, acts = session.run(None, reference_feeds)
    meta = sidecar(name, folder, model, acts, training)
    write(meta, folder)
    return meta


def load_ensemble(run_dir: Path) -> tuple[ForecasterEnsemble, list[dict]]:
    """Every seed*.pt checkpoint of a run, in seed order."""
    from models.forecaster.train import load_checkpoint

    paths = sorted(run_dir.glob("seed*.pt"), key=lambda p: int(p.stem.removeprefix("seed")))
    if not paths:
        raise FileNotFoundError(f"no seed*.pt checkpoints in {run_dir}: run `lnserve train forecaster` first")
    loaded = [load_checkpoint(p) for p in paths]
    return ForecasterEnsemble([m for m, _ in loaded]), [r for _, r in loaded]


def _summary(record: dict) -> dict:
    """A member's training record, trimmed for the sidecar: per-epoch scalars, gradient norms, hidden stats."""
    epochs = [
        {k: e[k] for k in ("epoch", "train_loss", "mase_gmean", "pinball", "grad_norms", "seconds")}
        | {"hidden": {n: v for n, v in e["activations"].items() if n.endswith(".hidden")}}
        for e in record["epochs"]
    ]
    return {
        "best_val_mase_gmean": record["best_val_mase_gmean"],
        "train_config": record["train_config"],
        "epochs": epochs,
    }


def run_export(
    run_dir: Path, out_dir: Path, name: str, splits: tuple[str, ...] = ("val", "test"), progress: bool = True
) -> Sidecar:
    """Checkpoints -> both graphs -> ORT evaluation on the test tails vs the baselines -> sidecar."""
    from models.forecaster.data import load_all
    from models.forecaster.evaluate import evaluation_table, format_by_dataset, format_table, rnn_forecasts
    from models.forecaster.windows import eval_windows

    torch.set_num_threads(1)
    model, records = load_ensemble(run_dir)
    cfg = model.config
    folder = out_dir / name
    seconds = export_graphs(model, folder)
    series = load_all()
    predict = ort_predict(folder / GRAPH_FILES[FAST])
    evaluation = {}
    for which in splits:
        windows = eval_windows(series, which, cfg.context_length, cfg.max_horizon)
        forecasts = rnn_forecasts(windows, predict)
        evaluation[which] = evaluation_table(
            windows, forecasts, cfg.quantiles, run_dir.parent / f"baselines_{which}.json"
        )
        report = (
            f"## {which}\n\n{format_table(evaluation[which])}\n\n{format_by_dataset(evaluation[which])}\n"
        )
        (run_dir / f"evaluation_{which}.md").write_text(report)
        if progress:
            print(report)
    val = eval_windows(series, "val", cfg.context_length, cfg.max_horizon)
    training = {
        "members": [_summary(r) for r in records],
        "evaluation": evaluation,
        "export_seconds": round(seconds, 1),
        "data": {"series": len(series), "datasets": sorted({s.dataset for s in series})},
    }
    return write_sidecar(model, folder, name, val.batch.feeds, training)
