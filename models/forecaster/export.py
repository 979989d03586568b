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

from models.forecaster.data import SERVED_MIN_LENGTH
from models.forecaster.features import INPUT_NAMES, make_inputs, to_original_units
from models.forecaster.model import Forecaster, ForecasterEnsemble
from models.forecaster.windows import Batch, Windows, validation_windows
from models.sidecar import DIAGNOSTIC, FAST, GRAPH_FILES, IR_VERSION, OPSET, Sidecar, assemble, tensor, write

FEATURES_MODULE = "models.forecaster.features"
MIN_LENGTH = SERVED_MIN_LENGTH  # the service refuses shorter series


def members_of(model: Forecaster | ForecasterEnsemble) -> list[Forecaster]:
    return list(model.members) if isinstance(model, ForecasterEnsemble) else [model]


class _Graph(nn.Module):
    def __init__(self, model: nn.Module, diagnostics: bool) -> None:
        super().__init__()
        self.model, self.diagnostics = model, diagnostics

    def forward(self, context, mask, seasonal, anchor, static):  # type: ignore[no-untyped-def]
        q, acts = self.model(context, mask, seasonal, anchor, static, return_activations=self.diagnostics)
        return (q, acts) if self.diagnostics else q


def example_inputs(model: Forecaster | ForecasterEnsemble, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Feeds of `batch` seasonal series built by the feature module, in INPUT_NAMES order."""
    cfg = model.config
    t = np.arange(3 * cfg.context_length)
    series = [100 + 10 * np.sin(2 * np.pi * t / 12) + k * t for k in range(batch)]
    feeds, _ = make_inputs(series, [12] * batch, cfg.context_length, cfg.max_horizon)
    return tuple(torch.from_numpy(feeds[name]) for name in INPUT_NAMES)


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
    """`reference`: the diagnostic graph's activations [N, n_layers, n_statistics] over the validation windows."""
    cfg = model.config
    members = members_of(model)
    shapes = {"context": cfg.context_length, "mask": cfg.context_length, "seasonal": cfg.context_length}
    shapes |= {"anchor": cfg.max_horizon, "static": cfg.n_static}
    return assemble(
        name=name,
        kind="forecaster",
        folder=folder,
        inputs=[tensor(n, "float32", "batch", shapes[n]) for n in INPUT_NAMES],
        outputs=[tensor("quantiles", "float32", "batch", cfg.max_horizon, len(cfg.quantiles))],
        config=cfg.to_dict()
        | {"ensemble_members": len(members), "parameters": sum(p.numel() for p in model.parameters())},
        layers=[{"index": i, "name": n, "kind": layer_kind(n)} for i, n in enumerate(model.layer_names)],
        reference=reference,
        training=training,
        block={
            "context_length": cfg.context_length,
            "max_horizon": cfg.max_horizon,
            "quantiles": list(cfg.quantiles),
            "season_length": 1,
            "min_length": MIN_LENGTH,
            "features": FEATURES_MODULE,
            "lookbacks": [m.config.lookback for m in members],
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
        {k: e[k] for k in ("epoch", "train_loss", "val_mase", "grad_norms", "seconds")}
        | {"groups": {g: round(v["mase"], 4) for g, v in e["groups"].items()}}
        | {"hidden": {n: v for n, v in e["activations"].items() if n.endswith(".hidden")}}
        for e in record["epochs"]
    ]
    return {
        "best_val_mase": record["best_val_mase"],
        "lookback": record.get("lookback"),
        "windows": record.get("windows"),
        "train_config": record["train_config"],
        "epochs": epochs,
    }


THETA_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
CLASS_GROUPS = {
    0: ("M3/yearly",),
    1: ("M3/quarterly",),
    2: ("M3/monthly", "M1/monthly"),
}  # static column -> val


def select_theta_weights(model: ForecasterEnsemble, windows: Windows, batch: Batch) -> dict:
    """Per season-length class, the weight w of the Theta forecast in the combined median (ForecasterEnsemble)
    with the lowest mean validation MASE over that class's groups; the class 'other' keeps w = 0."""
    from models.forecaster.train import group_scores, predict

    model.theta_weights.zero_()
    q, _ = predict(model, batch.feeds)  # [N, Hz, Q]
    shift = batch.feeds["anchor"][:, :, None] - q[..., model.config.quantiles.index(0.5)][..., None]
    table: dict[str, dict[str, float]] = {}
    for column, groups in CLASS_GROUPS.items():
        scores = {}
        for w in THETA_GRID:
            per_group = group_scores(
                windows, to_original_units(q + w * shift, batch.scales), model.config.quantiles
            )
            scores[w] = float(np.mean([per_group[g]["mase"] for g in groups]))
        model.theta_weights[column] = min(scores, key=scores.__getitem__)
        table[",".join(groups)] = {str(w): round(v, 4) for w, v in scores.items()}
    return {"weights": model.theta_weights.tolist(), "validation_mase": table}


def run_export(run_dir: Path, out_dir: Path, name: str, progress: bool = True) -> Sidecar:
    """Checkpoints -> both graphs -> validation scores through ONNX Runtime -> sidecar.

    The test sets are scored separately (`lnserve export forecaster-eval`, `make eval-forecaster`), through the
    service runtime and next to the statsforecast baselines."""
    from models.forecaster.data import training_series
    from models.forecaster.train import group_scores

    torch.set_num_threads(1)
    model, records = load_ensemble(run_dir)
    for member, record in zip(model.members, records, strict=True):
        record["lookback"] = member.config.lookback
    cfg = model.config
    folder = out_dir / name
    series = training_series()
    windows = validation_windows(series)
    batch = windows.batch(cfg.context_length, cfg.max_horizon)
    combination = select_theta_weights(model, windows, batch)
    if progress:
        print(f"theta weights per class (m = 1, 4, 12, other): {combination['weights']}")
    seconds = export_graphs(model, folder)
    q = ort_predict(folder / GRAPH_FILES[FAST])(batch.feeds)
    groups = group_scores(windows, to_original_units(q, batch.scales), cfg.quantiles)
    if progress:
        print({g: round(v["mase"], 4) for g, v in groups.items()})
    training = {
        "members": [_summary(r) for r in records],
        "validation": groups,
        "combination": combination,
        "export_seconds": round(seconds, 1),
        "data": {"series": len(series), "datasets": sorted({s.dataset for s in series})},
    }
    return write_sidecar(model, folder, name, batch.take(np.arange(0, len(batch), 4)).feeds, training)
