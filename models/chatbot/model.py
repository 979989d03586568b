"""The chatbot network: a small LayerNorm transformer encoder that classifies an utterance into an intent.

Read top to bottom: norms, attention, MLP, one block (whose norm placement is configuration), the config dataclass,
then the model with its masked mean-pool and the in-graph activation statistics that the diagnostics graph exports.

Placement, with sublayer F in {attention, MLP} and step dt (``residual_scale``):
    post: x <- Norm(x + dt * F(x))
    pre:  x <- x + dt * F(Norm(x))             (+ a final Norm before pooling)
    peri: x <- x + dt * Norm_out(F(Norm_in(x))) (+ a final Norm before pooling)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import make_norm, masked_statistics

Placement = Literal["post", "pre", "peri"]
NormType = Literal["layernorm", "rmsnorm"]


class SelfAttention(nn.Module):
    """Multi-head self-attention; padding keys are masked so real tokens never look at padding."""

    def __init__(self, d_model: int, n_head: int, dropout: float) -> None:
        super().__init__()
        assert d_model % n_head == 0, "d_model must be divisible by n_head"
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        hd = D // self.n_head
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 x (B, L, D)
        q = q.view(B, L, self.n_head, hd).transpose(1, 2)  # (B, H, L, hd)
        k = k.view(B, L, self.n_head, hd).transpose(1, 2)  # (B, H, L, hd)
        v = v.view(B, L, self.n_head, hd).transpose(1, 2)  # (B, H, L, hd)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))  # (B, H, L, L)
        att = (
            att + key_bias
        )  # (B, H, L, L); key_bias is (B, 1, 1, L): 0 for real keys, large negative for padding
        att = self.attn_dropout(F.softmax(att, dim=-1))  # (B, H, L, L)
        y = (att @ v).transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.resid_dropout(self.proj(y))  # (B, L, D)


class MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff)
        self.proj = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (B, L, D)


class Block(nn.Module):
    """One encoder block. Returns the new residual stream and the four tensors the statistics describe."""

    def __init__(self, cfg: ChatbotConfig) -> None:
        super().__init__()
        self.placement = cfg.norm_placement
        self.dt = cfg.residual_scale
        self.attn = SelfAttention(cfg.d_model, cfg.n_head, cfg.dropout)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, cfg.dropout)
        d, nt, eps = cfg.d_model, cfg.norm_type, cfg.norm_eps
        # post: norm_attn/norm_mlp act after the residual add; pre: before the sublayer; peri: before (in) and
        # after (out) the sublayer. Only peri needs the *_out pair.
        self.norm_attn = make_norm(nt, d, eps)
        self.norm_mlp = make_norm(nt, d, eps)
        if self.placement == "peri":
            self.norm_attn_out = make_norm(nt, d, eps)
            self.norm_mlp_out = make_norm(nt, d, eps)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.placement == "post":
            a = self.attn(x, key_bias)  # (B, L, D)
            x = self.norm_attn(x + self.dt * a)  # (B, L, D)
            x_attn = x
            m = self.mlp(x)  # (B, L, D)
            x = self.norm_mlp(x + self.dt * m)  # (B, L, D)
        elif self.placement == "pre":
            a = self.attn(self.norm_attn(x), key_bias)  # (B, L, D)
            x = x + self.dt * a  # (B, L, D)
            x_attn = x
            m = self.mlp(self.norm_mlp(x))  # (B, L, D)
            x = x + self.dt * m  # (B, L, D)
        elif self.placement == "peri":
            a = self.norm_attn_out(self.attn(self.norm_attn(x), key_bias))  # (B, L, D)
            x = x + self.dt * a  # (B, L, D)
            x_attn = x
            m = self.norm_mlp_out(self.mlp(self.norm_mlp(x)))  # (B, L, D)
            x = x + self.dt * m  # (B, L, D)
        else:
            raise ValueError(f"unknown norm_placement {self.placement!r} (post|pre|peri)")
        return x, [a, x_attn, m, x]


@dataclass
class ChatbotConfig:
    vocab_size: int = 4256
    max_len: int = 128
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_ff: int = 256
    dropout: float = 0.2
    norm_placement: str = "peri"  # post|pre|peri
    norm_type: str = "layernorm"  # layernorm|rmsnorm
    norm_eps: float = 1e-5
    residual_scale: float = 1.0  # dt in the placement equations
    n_labels: int = 35
    embed_init_std: float = 0.02  # token and position embeddings' init; the residual stream's starting scale
    # > 0: a bag-of-n-grams head next to the encoder (token unigrams, and bigrams hashed into this many rows), whose
    # logits are added to the encoder's. 0: the encoder alone (every model before it).
    ngram_buckets: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def layer_specs(cfg: ChatbotConfig) -> list[dict[str, object]]:
    """Rows of the ``activations`` output, in order: what each one measures."""
    sub = "Norm_out(F(Norm_in(x)))" if cfg.norm_placement == "peri" else "F(.)"
    rows: list[dict[str, object]] = [
        {"name": "embed", "kind": "embedding", "description": "token + position embedding (block 0 input)"}
    ]
    for i in range(cfg.n_layer):
        rows += [
            {
                "name": f"block{i}.attn",
                "kind": "attention",
                "description": f"attention sublayer output {sub}",
            },
            {
                "name": f"block{i}.attn_residual",
                "kind": "residual",
                "description": "residual stream after attention",
            },
            {"name": f"block{i}.mlp", "kind": "mlp", "description": f"MLP sublayer output {sub}"},
            {
                "name": f"block{i}.mlp_residual",
                "kind": "residual",
                "description": "residual stream after the MLP",
            },
        ]
    final = (
        "last block output (post-LN has no final norm; the block's own norm already normalised it)"
        if cfg.norm_placement == "post"
        else "final norm output (input of the mean-pool)"
    )
    rows.append({"name": "final_norm", "kind": "norm", "description": final})
    return [{"index": i, **r} for i, r in enumerate(rows)]


class Chatbot(nn.Module):
    def __init__(self, cfg: ChatbotConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.final_norm = (
            None if cfg.norm_placement == "post" else make_norm(cfg.norm_type, cfg.d_model, cfg.norm_eps)
        )
        self.head_dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, cfg.n_labels)
        self.apply(self._init_weights)
        self.ngram = None
        if cfg.ngram_buckets > 0:
            # One row of label logits per unigram (the token id) and per hashed bigram: a linear classifier over the
            # bag of n-grams, the surface evidence TF-IDF + LR uses, trained jointly with the encoder. Starts at 0.
            self.ngram = nn.Embedding(cfg.vocab_size + cfg.ngram_buckets, cfg.n_labels)
            nn.init.zeros_(self.ngram.weight)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.cfg.embed_init_std)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The encoder: per-token states (B, L, D) after the final norm, and every tensor the statistics describe."""
        B, L = input_ids.shape
        key_bias = ((1.0 - attention_mask.to(torch.float32)) * -1e9).view(B, 1, 1, L)  # (B, 1, 1, L)
        pos = torch.arange(L, device=input_ids.device)  # (L,)
        x = self.tok_emb(input_ids) + self.pos_emb(pos)  # (B, L, D)
        tensors = [x]
        x = self.emb_dropout(x)  # (B, L, D)
        for block in self.blocks:
            x, inner = block(x, key_bias)  # (B, L, D)
            tensors += inner
        if self.final_norm is not None:
            x = self.final_norm(x)  # (B, L, D)
        tensors.append(x)
        return x, tensors

    def ngram_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, n_labels): the mean of the rows of the message's unigrams and bigrams (zero without the head)."""
        assert self.ngram is not None
        V, buckets = self.cfg.vocab_size, self.cfg.ngram_buckets
        first, second = input_ids[:, :-1], input_ids[:, 1:]  # (B, L-1) each
        bigrams = V + torch.remainder(first * V + second, buckets)  # (B, L-1), rows V .. V + buckets - 1
        keys = torch.cat([input_ids, bigrams], dim=1)  # (B, 2L-1)
        m = attention_mask.to(torch.float32)  # (B, L)
        weights = torch.cat([m, m[:, :-1] * m[:, 1:]], dim=1).unsqueeze(-1)  # (B, 2L-1, 1)
        return (self.ngram(keys) * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, n_labels)

    def parts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoder's logits and the n-gram head's (None without it); the model's logits are their sum."""
        mask = attention_mask.to(torch.float32).unsqueeze(-1)  # (B, L, 1)
        x, _ = self.encode(input_ids, attention_mask)  # (B, L, D)
        pooled = (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, D)
        encoder = self.head(self.head_dropout(pooled))  # (B, n_labels)
        return encoder, None if self.ngram is None else self.ngram_logits(input_ids, attention_mask)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_activations: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        mask = attention_mask.to(torch.float32).unsqueeze(-1)  # (B, L, 1)
        x, tensors = self.encode(input_ids, attention_mask)  # (B, L, D)
        pooled = (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, D)
        logits = self.head(self.head_dropout(pooled))  # (B, n_labels)
        if self.ngram is not None:
            logits = logits + self.ngram_logits(input_ids, attention_mask)  # (B, n_labels)
        if not return_activations:
            return logits
        acts = torch.stack([masked_statistics(t, mask) for t in tensors], dim=1)  # (B, n_layers, 5)
        return logits, acts
