"""Export trained chatbot variants to ONNX with their sidecars (docs/artifacts.md), and pick the default alias.

One dynamo export of the instrumented model gives ``diagnostic.onnx`` (logits + activations); ``fast.onnx`` is the
same graph with the ``activations`` output and every node that only fed it pruned away, so the fast path computes
exactly the same logits. The weights are stored once, in ``weights.bin`` (ONNX external data) that both graphs
read, as float16: the network's parameters are rounded to float16 in PyTorch first, so each stored value is exact
and a ``Cast`` to float32 (folded by ONNX Runtime when the session loads) gives back the very weights PyTorch
computes with. The temperature and the out-of-scope thresholds are chosen on the validation split; the challenge
split is only scored.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from onnx.external_data_helper import set_external_data

from models.chatbot import data, evaluate
from models.chatbot.model import Chatbot, layer_specs
from models.chatbot.tokenizer import PAD_ID, encode, load_tokenizer
from models.chatbot.train import RUNS_DIR, load_checkpoint, pad_batch
from models.chatbot.zoo import VARIANTS
from models.sidecar import (
    DIAGNOSTIC,
    FAST,
    GRAPH_FILES,
    IR_VERSION,
    OPSET,
    WEIGHTS_FILE,
    Sidecar,
    assemble,
    tensor,
    write,
)

INPUT_NAMES = ["input_ids", "attention_mask"]
WEIGHTS_DTYPE = "float16"  # how weights.bin stores the parameters (sidecar config `weights_dtype`)


class _Diagnostic(torch.nn.Module):
    def __init__(self, model: Chatbot) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, acts = self.model(input_ids, attention_mask, return_activations=True)
        return logits, acts


def export_diagnostic(model: Chatbot) -> onnx.ModelProto:
    """The instrumented graph: logits (B, n_labels) and activations (B, n_layers, 5), dynamic batch and sequence."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.cfg.max_len)
    example = pad_batch([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and renaming chatter
        program = torch.onnx.export(
            _Diagnostic(model.eval()),
            example,
            input_names=INPUT_NAMES,
            output_names=["logits", "activations"],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
            verbose=False,
        )
    proto = strip_metadata(program.model_proto)
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def strip_metadata(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the exporter's per-node stack traces and names scopes: a third of the file, no use at run time."""
    for node in proto.graph.node:
        node.ClearField("metadata_props")
        node.ClearField("doc_string")
    proto.graph.ClearField("value_info")
    return proto


def prune_to(proto: onnx.ModelProto, keep: list[str]) -> onnx.ModelProto:
    """Copy of the graph with only the outputs ``keep`` and the nodes and weights they depend on."""
    pruned = copy.deepcopy(proto)
    graph = pruned.graph
    outputs = [o for o in graph.output if o.name in keep]
    needed = set(keep)
    nodes = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            nodes.append(node)
            needed.update(name for name in node.input if name)
    for attr_node in nodes:
        assert not any(a.type == onnx.AttributeProto.GRAPH for a in attr_node.attribute), (
            "subgraphs not handled"
        )
    initializers = [t for t in graph.initializer if t.name in needed]
    value_info = [v for v in graph.value_info if v.name in needed]
    for field, items in (
        ("output", outputs),
        ("node", nodes[::-1]),
        ("initializer", initializers),
        ("value_info", value_info),
    ):
        getattr(graph, field).clear()
        getattr(graph, field).extend(items)
    onnx.checker.check_model(pruned)
    return pruned


# --- float16 weights, stored once ---------------------------------------------------------------------------


def round_to_half(model: torch.nn.Module) -> torch.nn.Module:
    """Round every parameter to the nearest float16 value (kept as float32): what the exported graphs store."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def half_initializers(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Every float32 initializer that float16 holds exactly becomes a float16 initializer behind a Cast to float32
    (so the graph computes with the same values); any other constant (e.g. the -1e9 of the padding mask) stays."""
    graph = proto.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            value = numpy_helper.to_array(init)
            with np.errstate(over="ignore"):  # a constant beyond float16's range stays float32
                half = value.astype(np.float16)
            if value.size > 1 and np.array_equal(half.astype(np.float32), value):
                stored = numpy_helper.from_array(half, f"{init.name}.float16")
                casts.append(helper.make_node("Cast", [stored.name], [init.name], to=onnx.TensorProto.FLOAT))
                kept.append(stored)
                continue
        kept.append(init)
    nodes = casts + list(graph.node)
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    graph.ClearField("node")
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    return proto


def save_graphs(diagnostic: onnx.ModelProto, folder: Path) -> None:
    """``diagnostic.onnx`` with its float16 weights in ``weights.bin``, and ``fast.onnx`` pruned from it, pointing
    at the same bytes of the same file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*GRAPH_FILES.values(), WEIGHTS_FILE):
        (folder / name).unlink(missing_ok=True)  # onnx appends to an existing external-data file
    diag_path = folder / GRAPH_FILES[DIAGNOSTIC]
    proto = copy.deepcopy(diagnostic)
    for init in proto.graph.initializer:  # the weights; shape constants stay inline for shape inference
        if init.data_type == onnx.TensorProto.FLOAT16:
            set_external_data(init, WEIGHTS_FILE)
    onnx.save_model(proto, diag_path)
    stored = {t.name: t for t in onnx.load(diag_path, load_external_data=False).graph.initializer}
    fast = prune_to(diagnostic, ["logits"])
    for init in fast.graph.initializer:  # point at the bytes diagnostic.onnx's copy of it points at
        if not stored[init.name].external_data:
            continue
        init.ClearField("raw_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        init.external_data.extend(stored[init.name].external_data)
    onnx.save_model(fast, folder / GRAPH_FILES[FAST])
    (folder / WEIGHTS_FILE).chmod(0o644)  # onnx creates it owner-only
    for graph in GRAPH_FILES.values():
        onnx.checker.check_model(str(folder / graph))  # reads weights.bin


# --- checking and timing ------------------------------------------------------------------------------------


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_batches(sess: ort.InferenceSession, ids: list[list[int]], batch_size: int = 64) -> list[np.ndarray]:
    """Run the session over all sequences (right-padded per batch); concatenated outputs."""
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(ids), batch_size):
        input_ids, mask = pad_batch(ids[start : start + batch_size])
        chunks.append(sess.run(None, {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}))
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


@torch.no_grad()
def torch_outputs(
    model: Chatbot, ids: list[list[int]], batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and activations of the PyTorch model, batched as `run_batches` batches."""
    logits, acts = [], []
    for start in range(0, len(ids), batch_size):
        out = model(*pad_batch(ids[start : start + batch_size]), return_activations=True)
        logits.append(out[0].numpy())
        acts.append(out[1].numpy())
    return np.concatenate(logits), np.concatenate(acts)


def time_paths(
    fast: Path, diag: Path, short: list[int], long: list[int], repeats: int = 200
) -> dict[str, float]:
    """Median latency (ms) of the fast and the diagnostic session, one thread, batch 1 and 32, for a message of
    median length and for one that fills the whole window (the cost of long messages)."""
    out: dict[str, float] = {}
    for label, path in (("fast", fast), ("diagnostic", diag)):
        sess = session(path)
        for length, ids in (("median", short), ("window", long)):
            for size in (1, 32):
                input_ids, mask = pad_batch([ids] * size)
                feeds = {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}
                for _ in range(5):
                    sess.run(None, feeds)
                samples = []
                for _ in range(max(10, repeats // size)):
                    start = time.perf_counter()
                    sess.run(None, feeds)
                    samples.append(time.perf_counter() - start)
                out[f"{label}_{length}{len(ids)}_batch{size}_ms"] = 1000 * float(np.median(samples))
    return out


# --- one variant --------------------------------------------------------------------------------------------


def export_variant(
    name: str,
    baseline_metrics: dict[str, Any],
    runs_dir: Path = RUNS_DIR,
    artifact_dir: Path = data.ARTIFACT_DIR,
) -> Sidecar:
    """Write artifacts/<name>/{fast.onnx, diagnostic.onnx, weights.bin, sidecar.json}; return the sidecar."""
    model, record = load_checkpoint(name, runs_dir)
    if record["tokenizer_sha256"] != hashlib.sha256(data.TOKENIZER_FILE.read_bytes()).hexdigest():
        raise ValueError(f"{name} was trained with another tokenizer than {data.TOKENIZER_FILE}: retrain it")
    round_to_half(model)
    cfg = model.cfg
    out = artifact_dir / name
    save_graphs(half_initializers(export_diagnostic(model)), out)
    fast_path, diag_path = out / GRAPH_FILES[FAST], out / GRAPH_FILES[DIAGNOSTIC]

    labels = record["labels"]
    oos = labels.index(data.OOS)
    _, val_set = data.load_split()
    challenge = data.load_challenge()
    tok = load_tokenizer(data.TOKENIZER_FILE)
    val_ids = encode(tok, [e.text for e in val_set], cfg.max_len)
    challenge_ids = encode(tok, [e.text for e in challenge], cfg.max_len)
    gold = np.array([labels.index(e.intent) for e in val_set])
    logits, acts = run_batches(session(diag_path), val_ids)
    (fast_logits,) = run_batches(session(fast_path), val_ids)
    t_logits, t_acts = torch_outputs(model, val_ids)
    parity = {
        "logits_max_abs_diff": float(np.abs(t_logits - logits).max()),
        "activations_max_abs_diff": float(np.abs(t_acts - acts).max()),
        "fast_vs_diagnostic_logits_max_abs_diff": float(np.abs(fast_logits - logits).max()),
    }
    (challenge_logits,) = run_batches(session(fast_path), challenge_ids)

    temperature = evaluate.fit_temperature(logits, gold)
    probs = evaluate.softmax(logits, temperature)
    challenge_probs = evaluate.softmax(challenge_logits, temperature)
    chosen = evaluate.choose_thresholds(probs, gold, oos)
    conf, margin = chosen["confidence_threshold"], chosen["margin_threshold"]
    argmax_only = evaluate.scores(probs.argmax(axis=1), gold, oos)
    by_length = sorted(val_ids, key=len)
    timing = time_paths(fast_path, diag_path, by_length[len(by_length) // 2], by_length[-1][: cfg.max_len])
    training = {k: v for k, v in record.items() if k not in ("labels", "model_config", "name")}
    training.update(
        val_accuracy_onnx=argmax_only["accuracy"],
        val_in_scope_accuracy=argmax_only["in_scope_accuracy"],
        val_oos_recall=argmax_only["oos_recall"],
        temperature=temperature,
        calibration={
            "val_nll_before": float(-np.log(evaluate.softmax(logits)[np.arange(len(gold)), gold]).mean()),
            "val_nll_after": float(-np.log(probs[np.arange(len(gold)), gold]).mean()),
            "val_ece_before": evaluate.expected_calibration_error(evaluate.softmax(logits), gold),
            "val_ece_after": evaluate.expected_calibration_error(probs, gold),
        },
        thresholded=chosen,
        threshold_tradeoff=[
            evaluate.fallback_metrics(probs, gold, oos, float(c), margin) for c in evaluate.CONFIDENCES
        ],
        validation=evaluate.report(probs, val_set, labels, conf, margin),
        # the challenge split is scored, never used for a choice: thresholds and temperature are validation's
        challenge=evaluate.report(challenge_probs, challenge, labels, conf, margin),
        challenge_argmax=evaluate.report(challenge_probs, challenge, labels),
        challenge_curve=evaluate.curve(challenge_probs, challenge, labels, margin),
        baseline=baseline_metrics,
        baseline_val_accuracy=baseline_metrics["validation"]["accuracy"],
        parity=parity,
        timing=timing,
    )
    sidecar = assemble(
        name=name,
        kind="chatbot",
        folder=out,
        inputs=[tensor(n, "int64", "batch", "sequence") for n in INPUT_NAMES],
        outputs=[tensor("logits", "float32", "batch", cfg.n_labels)],
        config={**cfg.to_dict(), "parameters": model.num_parameters(), "weights_dtype": WEIGHTS_DTYPE},
        layers=layer_specs(cfg),
        reference=acts,
        training=training,
        block={
            "labels": labels,
            "tokenizer": "../../tokenizer.json",
            "intents": "../../intents.json",
            "max_length": cfg.max_len,
            "pad_id": PAD_ID,
            "temperature": temperature,
            "confidence_threshold": conf,
            "margin_threshold": margin,
        },
    )
    write(sidecar, out)
    return sidecar


def select_default(artifact_dir: Path = data.ARTIFACT_DIR, names: tuple[str, ...] = tuple(VARIANTS)) -> str:
    """Write aliases.json naming the variant with the best validation accuracy (then lowest validation loss)."""
    scores = {}
    for name in names:
        path = artifact_dir / name / "sidecar.json"
        if path.exists():
            training = json.loads(path.read_text(encoding="utf-8"))["training"]
            scores[name] = (training["val_accuracy_onnx"], -training["val_loss"])
    best = max(scores, key=lambda n: scores[n])
    (artifact_dir / "aliases.json").write_text(
        json.dumps({"chatbot": best}, indent=1) + "\n", encoding="utf-8"
    )
    return best
