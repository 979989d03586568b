"""The exported graphs compute what PyTorch computes, on real utterances, and the fast graph drops only the statistics."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from models.chatbot import data
from models.chatbot.export import (
    OPSET,
    export_diagnostic,
    half_initializers,
    prune_to,
    round_to_half,
    save_graphs,
)
from models.chatbot.model import Chatbot, ChatbotConfig
from models.chatbot.tokenizer import encode, load_tokenizer
from models.chatbot.train import pad_batch

# Three exports cover every code path (each takes seconds): post + LayerNorm, peri (whose in-norms are pre's) with
# RMSNorm and a non-unit step, and post with the bag-of-n-grams head (its hashed bigrams: Mod, Gather, a masked mean).
VARIANTS = [("post", "layernorm", 1.0, 0), ("peri", "rmsnorm", 0.1, 0), ("post", "layernorm", 1.0, 512)]


def session(proto: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def feeds(ids: list[list[int]]) -> dict[str, np.ndarray]:
    input_ids, mask = pad_batch(ids)
    return {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}


@pytest.fixture(scope="module")
def utterance_ids() -> list[list[int]]:
    tok = load_tokenizer(data.TOKENIZER_FILE)
    val = data.read_jsonl(data.VAL_FILE)[::7][:48]  # real utterances of many intents and lengths
    return encode(tok, [e.text for e in val], 64)


@pytest.fixture(scope="module")
def long_ids() -> list[list[int]]:
    """Messages longer than the window, cut the way the service cuts them (head + tail)."""
    tok = load_tokenizer(data.TOKENIZER_FILE)
    val = sorted(data.read_jsonl(data.VAL_FILE), key=lambda e: -len(e.text))[:4]
    return encode(tok, [e.text for e in val], 64)


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: f"{v[0]}-{v[1]}-dt{v[2]}-ngrams{v[3]}")
def exported(request: pytest.FixtureRequest) -> tuple[Chatbot, onnx.ModelProto]:
    placement, norm, dt, buckets = request.param
    torch.manual_seed(1)
    cfg = ChatbotConfig(
        vocab_size=load_tokenizer(data.TOKENIZER_FILE).get_vocab_size(), max_len=64, n_layer=2, n_head=2,
        d_model=32, d_ff=64, norm_placement=placement, norm_type=norm, residual_scale=dt, n_labels=35, ngram_buckets=buckets,
    )  # fmt: skip
    model = Chatbot(cfg).eval()
    with torch.no_grad():  # move every weight away from its init so the parity check covers real arithmetic
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    round_to_half(model)  # as the export does, so that the float16 weights file holds these exact weights
    return model, export_diagnostic(model)


def test_onnx_logits_and_every_statistic_match_torch_on_real_utterances(
    exported: tuple[Chatbot, onnx.ModelProto], utterance_ids: list[list[int]]
) -> None:
    model, proto = exported
    with torch.no_grad():
        logits, acts = model(*pad_batch(utterance_ids), return_activations=True)
    ort_logits, ort_acts = session(proto).run(None, feeds(utterance_ids))
    assert np.abs(ort_logits - logits.numpy()).max() <= 1e-4
    assert np.abs(ort_acts - acts.numpy()).max() <= 1e-4
    assert ort_acts.shape == (len(utterance_ids), 1 + 4 * 2 + 1, 5)


def test_fast_graph_keeps_only_logits_and_gives_the_same_logits(
    exported: tuple[Chatbot, onnx.ModelProto], utterance_ids: list[list[int]]
) -> None:
    _, proto = exported
    fast = prune_to(proto, ["logits"])
    (fast_logits,) = session(fast).run(None, feeds(utterance_ids))
    diag_logits, _ = session(proto).run(None, feeds(utterance_ids))
    assert [o.name for o in fast.graph.output] == ["logits"]
    assert len(fast.graph.node) < len(proto.graph.node)
    np.testing.assert_array_equal(fast_logits, diag_logits)


def test_onnx_statistics_are_the_same_alone_or_padded_in_a_batch(
    exported: tuple[Chatbot, onnx.ModelProto], utterance_ids: list[list[int]]
) -> None:
    sess = session(exported[1])
    short = min(utterance_ids, key=len)
    batch = [max(utterance_ids, key=len), short, utterance_ids[0]]
    alone = sess.run(None, feeds([short]))
    mixed = sess.run(None, feeds(batch))
    np.testing.assert_allclose(mixed[1][1], alone[1][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mixed[0][1], alone[0][0], rtol=1e-5, atol=1e-5)


def test_graph_declares_opset_18_ir_10_and_dynamic_batch_and_sequence(
    exported: tuple[Chatbot, onnx.ModelProto],
) -> None:
    proto = exported[1]
    assert proto.ir_version == 10
    assert {o.domain: o.version for o in proto.opset_import}[""] == OPSET
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input]
    assert dims == [["batch", "sequence"], ["batch", "sequence"]]
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [onnx.TensorProto.INT64] * 2


def test_a_saved_artifact_stores_float16_weights_once_for_both_graphs(
    exported: tuple[Chatbot, onnx.ModelProto],
    utterance_ids: list[list[int]],
    long_ids: list[list[int]],
    tmp_path: Path,
) -> None:
    model, proto = exported
    save_graphs(half_initializers(copy.deepcopy(proto)), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diagnostic.onnx", "fast.onnx", "weights.bin"]
    n_params = sum(p.numel() for p in model.parameters())
    assert (tmp_path / "weights.bin").stat().st_size == 2 * n_params  # float16, each parameter once
    for name in ("fast.onnx", "diagnostic.onnx"):
        stored = onnx.load(tmp_path / name, load_external_data=False)
        float_weights = [
            t.name for t in stored.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims)
        ]
        assert float_weights == []  # every weight comes from weights.bin as float16
        assert (tmp_path / name).stat().st_size < 100_000
    ids = utterance_ids + long_ids
    with torch.no_grad():
        logits, acts = model(*pad_batch(ids), return_activations=True)
    fast = ort.InferenceSession(str(tmp_path / "fast.onnx"), providers=["CPUExecutionProvider"])
    diag = ort.InferenceSession(str(tmp_path / "diagnostic.onnx"), providers=["CPUExecutionProvider"])
    (fast_logits,) = fast.run(None, feeds(ids))
    diag_logits, diag_acts = diag.run(None, feeds(ids))
    assert np.abs(fast_logits - logits.numpy()).max() <= 1e-4
    assert np.abs(diag_acts - acts.numpy()).max() <= 1e-4
    np.testing.assert_array_equal(fast_logits, diag_logits)


def test_saving_again_replaces_the_weights_file_instead_of_appending(
    exported: tuple[Chatbot, onnx.ModelProto], tmp_path: Path
) -> None:
    proto = half_initializers(copy.deepcopy(exported[1]))
    save_graphs(proto, tmp_path)
    size = (tmp_path / "weights.bin").stat().st_size
    save_graphs(proto, tmp_path)
    assert (tmp_path / "weights.bin").stat().st_size == size
