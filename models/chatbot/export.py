"""Export trained chatbot variants to ONNX with their sidecars (docs/artifacts.md), and pick the default alias.

One dynamo export of the instrumented model gives ``diagnostic.onnx`` (logits + activations); ``fast.onnx`` is the
same graph with the ``activations`` output and every node that only fed it pruned away, so the fast path computes
exactly the same logits. Thresholds for the out-of-scope fallback are chosen on the validation split.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from models.chatbot import baseline, data
from models.chatbot.model import Chatbot, layer_specs
from models.chatbot.tokenizer import PAD_ID, encode, load_tokenizer
from models.chatbot.train import RUNS_DIR, load_checkpoint, pad_batch
from models.sidecar import DIAGNOSTIC, FAST, GRAPH_FILES, IR_VERSION, OPSET, Sidecar, assemble, tensor, write

VARIANTS = ("chatbot-post", "chatbot-pre", "chatbot-peri")
INPUT_NAMES = ["input_ids", "attention_mask"]


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


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_batches(sess: ort.InferenceSession, ids: list[list[int]], batch_size: int = 128) -> list[np.ndarray]:
    """Run the session over all sequences (right-padded per batch); concatenated outputs."""
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(ids), batch_size):
        input_ids, mask = pad_batch(ids[start : start + batch_size])
        chunks.append(sess.run(None, {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}))
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fallback_metrics(
    probs: np.ndarray, gold: np.ndarray, oos: int, conf: float, margin: float
) -> dict[str, float]:
    """End-to-end accuracy, in-scope accuracy and OOS recall when low confidence / margin falls back to OOS."""
    top2 = np.sort(probs, axis=1)[:, -2:]  # (N, 2)
    pred = probs.argmax(axis=1)
    pred = np.where((top2[:, 1] < conf) | (top2[:, 1] - top2[:, 0] < margin), oos, pred)
    in_scope = gold != oos
    return {
        "confidence_threshold": conf,
        "margin_threshold": margin,
        "accuracy": float((pred == gold).mean()),
        "in_scope_accuracy": float((pred[in_scope] == gold[in_scope]).mean()),
        "oos_recall": float((pred[~in_scope] == oos).mean()),
    }


def choose_thresholds(
    probs: np.ndarray, gold: np.ndarray, oos: int, max_in_scope_drop: float = 0.01
) -> tuple[dict[str, float], list[dict]]:
    """Grid search on validation: the highest out-of-scope recall that costs at most ``max_in_scope_drop`` of
    in-scope accuracy against no threshold at all; ties go to the smallest thresholds. Returns the choice and the
    trade-off table at the chosen margin."""
    grid = [
        fallback_metrics(probs, gold, oos, c, m)
        for c in np.round(np.arange(0.0, 0.91, 0.05), 2)
        for m in np.round(np.arange(0.0, 0.51, 0.05), 2)
    ]
    floor = grid[0]["in_scope_accuracy"] - max_in_scope_drop  # grid[0]: no threshold
    allowed = [r for r in grid if r["in_scope_accuracy"] >= floor - 1e-9]
    best = max(allowed, key=lambda r: (r["oos_recall"], -r["confidence_threshold"] - r["margin_threshold"]))
    tradeoff = [r for r in grid if r["margin_threshold"] == best["margin_threshold"]]
    return best, tradeoff


def time_paths(fast: Path, diag: Path, ids: list[list[int]], repeats: int = 200) -> dict[str, float]:
    """Median latency (ms) of the fast and the diagnostic session, one thread, batch 1 and batch 32."""
    out: dict[str, float] = {}
    for label, path in (("fast", fast), ("diagnostic", diag)):
        sess = session(path)
        for size in (1, 32):
            input_ids, mask = pad_batch(ids[:size])
            feeds = {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}
            for _ in range(10):
                sess.run(None, feeds)
            samples = []
            for _ in range(repeats if size == 1 else repeats // 4):
                start = time.perf_counter()
                sess.run(None, feeds)
                samples.append(time.perf_counter() - start)
            out[f"{label}_batch{size}_ms"] = 1000 * float(np.median(samples))
    return out


def export_variant(
    name: str,
    baseline_metrics: dict[str, float],
    runs_dir: Path = RUNS_DIR,
    artifact_dir: Path = data.ARTIFACT_DIR,
) -> Sidecar:
    """Write artifacts/<name>/{fast.onnx, diagnostic.onnx, sidecar.json}; return the sidecar."""
    model, record = load_checkpoint(name, runs_dir)
    if record["tokenizer_sha256"] != hashlib.sha256(data.TOKENIZER_FILE.read_bytes()).hexdigest():
        raise ValueError(f"{name} was trained with another tokenizer than {data.TOKENIZER_FILE}: retrain it")
    cfg = model.cfg
    out = artifact_dir / name
    out.mkdir(parents=True, exist_ok=True)
    fast_path, diag_path = out / GRAPH_FILES[FAST], out / GRAPH_FILES[DIAGNOSTIC]
    diag_proto = export_diagnostic(model)
    onnx.save(diag_proto, diag_path)
    onnx.save(prune_to(diag_proto, ["logits"]), fast_path)

    labels = record["labels"]
    _, val_set = data.load_split()
    tok = load_tokenizer(data.TOKENIZER_FILE)
    val_ids = encode(tok, [e.text for e in val_set], cfg.max_len)
    gold = np.array([labels.index(e.intent) for e in val_set])
    logits, acts = run_batches(session(diag_path), val_ids)
    (fast_logits,) = run_batches(session(fast_path), val_ids)
    with torch.no_grad():
        input_ids, mask = pad_batch(val_ids)
        t_logits, t_acts = model(input_ids, mask, return_activations=True)
    parity = {
        "logits_max_abs_diff": float(np.abs(t_logits.numpy() - logits).max()),
        "activations_max_abs_diff": float(np.abs(t_acts.numpy() - acts).max()),
        "fast_vs_diagnostic_logits_max_abs_diff": float(np.abs(fast_logits - logits).max()),
    }
    oos = labels.index(baseline.OOS)
    probs = softmax(logits)
    chosen, tradeoff = choose_thresholds(probs, gold, oos)
    argmax_only = fallback_metrics(probs, gold, oos, 0.0, 0.0)
    layers = layer_specs(cfg)
    timing = time_paths(fast_path, diag_path, val_ids)
    training = {k: v for k, v in record.items() if k not in ("labels", "model_config", "name")}
    training.update(
        val_accuracy_onnx=argmax_only["accuracy"],
        val_in_scope_accuracy=argmax_only["in_scope_accuracy"],
        val_oos_recall=argmax_only["oos_recall"],
        baseline=baseline_metrics,
        baseline_val_accuracy=baseline_metrics["val_accuracy"],
        thresholded=chosen,
        threshold_tradeoff=tradeoff,
        parity=parity,
        timing=timing,
    )
    sidecar = assemble(
        name=name,
        kind="chatbot",
        folder=out,
        inputs=[tensor(n, "int64", "batch", "sequence") for n in INPUT_NAMES],
        outputs=[tensor("logits", "float32", "batch", cfg.n_labels)],
        config={**cfg.to_dict(), "parameters": model.num_parameters()},
        layers=layers,
        reference=acts,
        training=training,
        block={
            "labels": labels,
            "tokenizer": "../../tokenizer.json",
            "intents": "../../intents.json",
            "max_length": cfg.max_len,
            "pad_id": PAD_ID,
            "confidence_threshold": chosen["confidence_threshold"],
            "margin_threshold": chosen["margin_threshold"],
        },
    )
    write(sidecar, out)
    return sidecar


def select_default(artifact_dir: Path = data.ARTIFACT_DIR, names: tuple[str, ...] = VARIANTS) -> str:
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
