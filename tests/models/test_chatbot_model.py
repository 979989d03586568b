"""The chatbot network does what its placement equations say, and its statistics only see real tokens."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from models.chatbot.model import Chatbot, ChatbotConfig, layer_specs
from models.chatbot.train import pad_batch
from models.layers import masked_statistics

N_LAYER = 2


def tiny(placement: str, norm: str = "layernorm", dt: float = 1.0, seed: int = 0) -> Chatbot:
    torch.manual_seed(seed)
    cfg = ChatbotConfig(
        vocab_size=50, max_len=16, n_layer=N_LAYER, n_head=2, d_model=16, d_ff=32, dropout=0.0,
        norm_placement=placement, norm_type=norm, norm_eps=1e-9, residual_scale=dt, n_labels=5,
    )  # fmt: skip
    model = Chatbot(cfg).eval()
    with torch.no_grad():  # larger than the 0.02 init so that the residual stream is far from unit scale
        model.tok_emb.weight.mul_(500.0)  # token embeddings with std about 10
    return model


def block_io(
    model: Chatbot, ids: torch.Tensor, mask: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, output) of every block, captured with forward hooks."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [
        b.register_forward_hook(lambda _m, args, out: seen.append((args[0], out[0]))) for b in model.blocks
    ]
    with torch.no_grad():
        model(ids, mask)
    for h in hooks:
        h.remove()
    return seen


IDS, MASK = pad_batch([[3, 9, 4, 17, 22, 8], [5, 11, 2]])


def test_post_block_output_is_normalised_per_token_with_identity_affine() -> None:
    model = tiny("post")  # nn.LayerNorm starts at weight 1, bias 0: the identity affine
    for _, out in block_io(model, IDS, MASK):
        assert torch.allclose(out.mean(-1), torch.zeros(out.shape[:2]), atol=1e-5)
        assert torch.allclose(out.std(-1, unbiased=False), torch.ones(out.shape[:2]), atol=1e-3)


def test_pre_residual_stream_is_never_normalised_in_place() -> None:
    model = tiny("pre", dt=0.5)
    for (x, out), block in zip(block_io(model, IDS, MASK), model.blocks, strict=True):
        key_bias = ((1.0 - MASK.float()) * -1e9).view(2, 1, 1, -1)
        with torch.no_grad():
            mid = x + 0.5 * block.attn(block.norm_attn(x), key_bias)
            expected = mid + 0.5 * block.mlp(block.norm_mlp(mid))
        assert torch.allclose(out, expected, atol=1e-5)
        assert out.std(-1).mean() > 5.0  # the embedding's scale is carried, not normalised away


def test_peri_adds_a_normalised_sublayer_output_to_an_unnormalised_stream() -> None:
    model = tiny("peri", dt=0.1)
    with torch.no_grad():
        _, acts = model(IDS, MASK, return_activations=True)
    for (x, out), block in zip(block_io(model, IDS, MASK), model.blocks, strict=True):
        key_bias = ((1.0 - MASK.float()) * -1e9).view(2, 1, 1, -1)
        with torch.no_grad():
            a = block.norm_attn_out(block.attn(block.norm_attn(x), key_bias))
            mid = x + 0.1 * a
            expected = mid + 0.1 * block.norm_mlp_out(block.mlp(block.norm_mlp(mid)))
        assert torch.allclose(a.std(-1, unbiased=False), torch.ones(a.shape[:2]), atol=1e-3)
        assert torch.allclose(out, expected, atol=1e-4)
    names = [row["name"] for row in layer_specs(model.cfg)]
    attn0 = acts[0, names.index("block0.attn")]  # the attention output after Norm_out: mean 0, std 1
    assert attn0[0].abs() < 1e-5 and abs(float(attn0[1]) - 1.0) < 1e-3


@pytest.mark.parametrize("placement", ["post", "pre", "peri"])
def test_final_norm_only_exists_for_pre_and_peri(placement: str) -> None:
    model = tiny(placement)
    assert (model.final_norm is None) == (placement == "post")


def test_rmsnorm_matches_its_definition() -> None:
    model = tiny("pre", norm="rmsnorm")
    x = torch.randn(2, 3, 16) * 5
    norm = model.blocks[0].norm_attn
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-9)
    assert torch.allclose(norm(x), expected, atol=1e-5)


def test_statistics_cover_only_the_real_tokens_of_a_row() -> None:
    x = torch.randn(2, 4, 3)
    x[1, 2:] = 1000.0  # padding garbage must not leak into any statistic
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32).unsqueeze(-1)
    stats = masked_statistics(x, mask).numpy()
    real = x[1, :2].numpy().ravel()
    expected = [real.mean(), real.std(), np.sqrt((real**2).mean()), np.abs(real).mean(), np.abs(real).max()]
    np.testing.assert_allclose(stats[1], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("placement", ["post", "pre", "peri"])
def test_statistics_and_logits_are_the_same_alone_or_padded_in_a_batch(placement: str) -> None:
    model = tiny(placement)
    short = [7, 3, 12]
    alone_ids, alone_mask = pad_batch([short])
    batch_ids, batch_mask = pad_batch([[4, 5, 6, 7, 8, 9, 10, 11, 12, 13], short, [1, 2, 3, 4, 5, 6, 7]])
    with torch.no_grad():
        logits_alone, acts_alone = model(alone_ids, alone_mask, return_activations=True)
        logits_batch, acts_batch = model(batch_ids, batch_mask, return_activations=True)
    torch.testing.assert_close(acts_batch[1], acts_alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits_batch[1], logits_alone[0], rtol=1e-5, atol=1e-5)


def test_activation_rows_follow_the_layer_list() -> None:
    model = tiny("peri")
    with torch.no_grad():
        _, acts = model(IDS, MASK, return_activations=True)
    names = [row["name"] for row in layer_specs(model.cfg)]
    assert acts.shape == (2, 1 + 4 * N_LAYER + 1, 5)
    assert names[:3] == ["embed", "block0.attn", "block0.attn_residual"]
    assert names[-2:] == [f"block{N_LAYER - 1}.mlp_residual", "final_norm"]


def with_ngrams(buckets: int = 7) -> Chatbot:
    """A tiny post model with the n-gram head, its rows drawn away from their zero init."""
    torch.manual_seed(0)
    cfg = ChatbotConfig(
        vocab_size=50, max_len=16, n_layer=1, n_head=2, d_model=16, d_ff=32, dropout=0.0,
        norm_placement="post", n_labels=5, ngram_buckets=buckets,
    )  # fmt: skip
    model = Chatbot(cfg).eval()
    assert model.ngram is not None and model.ngram.weight.shape == (50 + buckets, 5)
    assert torch.count_nonzero(model.ngram.weight) == 0  # starts as the encoder alone
    with torch.no_grad():
        model.ngram.weight.normal_()
    return model


def test_the_ngram_head_is_the_mean_of_the_unigram_and_hashed_bigram_rows() -> None:
    model = with_ngrams()
    short = [7, 3, 12]
    ids, mask = pad_batch([[4, 5, 6, 7, 8], short])  # the second row padded with two zeros
    rows = model.ngram.weight
    bigram = [50 + (a * 50 + b) % 7 for a, b in itertools.pairwise(short)]
    expected = rows[short + bigram].mean(dim=0)  # 3 unigrams and 2 bigrams: no padding pair counts
    with torch.no_grad():
        encoder, ngram = model.parts(ids, mask)
        logits = model(ids, mask)
    assert ngram is not None
    torch.testing.assert_close(ngram[1], expected)
    torch.testing.assert_close(logits, encoder + ngram)  # the served logits are the sum of the two parts


def test_the_ngram_head_is_the_same_alone_or_padded_and_absent_by_default() -> None:
    model = with_ngrams()
    short = [7, 3, 12]
    with torch.no_grad():
        alone = model(*pad_batch([short]))
        batch = model(*pad_batch([[4, 5, 6, 7, 8, 9, 10, 11], short, [1, 2]]))
    torch.testing.assert_close(batch[1], alone[0], rtol=1e-5, atol=1e-5)
    plain = tiny("post")
    assert plain.ngram is None and plain.parts(IDS, MASK)[1] is None
