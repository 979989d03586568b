"""Masked-token pretraining of the chatbot encoder on the project's own training text (no labels, no other text).

BERT's recipe at this size: 15 % of the tokens of each utterance are chosen (at least one); of those 80 % become
[UNK] (the mask: with byte fallback no real text encodes to [UNK]), 10 % a random token, 10 % stay; the encoder's
states at the chosen positions go through a dense + GELU + norm transform and a decoder tied to the token
embeddings. Utterances get the same keyboard typos and word dropout as in fine-tuning, half of them per epoch.
`lnserve train chatbot --init-from <run>` then starts from the encoder (embeddings, blocks, final norm).
Writes ``runs/<name>/checkpoint.pt`` (the `Chatbot` state, its untrained head included) and ``history.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.chatbot import data
from models.chatbot.model import Chatbot, ChatbotConfig
from models.chatbot.tokenizer import UNK_ID, encode, load_tokenizer
from models.chatbot.train import RUNS_DIR, TrainConfig, adamw, augment, length_batches, pad_batch, set_seed
from models.layers import make_norm, warmup_cosine

FIRST_TOKEN = 2  # random replacements are drawn from the vocabulary after [PAD] and [UNK]


@dataclass
class PretrainConfig(TrainConfig):
    """The fine-tuning recipe's schedule and augmentation (`TrainConfig`), with the pretraining defaults below;
    the classification-only fields (label smoothing, distillation, folds) are not read."""

    name: str = "mlm-peri"
    weight_decay: float = 0.01
    augment_prob: float = 0.5
    mask_prob: float = 0.15


class MaskedLM(nn.Module):
    """The chatbot's encoder with a masked-token head whose decoder is the token embedding matrix."""

    def __init__(self, cfg: ChatbotConfig) -> None:
        super().__init__()
        self.chatbot = Chatbot(cfg)
        self.transform = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm = make_norm(cfg.norm_type, cfg.d_model, cfg.norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Logits (n_chosen, vocab) at the chosen (B, L) positions."""
        states, _ = self.chatbot.encode(input_ids, mask)  # (B, L, D)
        h = self.norm(F.gelu(self.transform(states[chosen])))  # (n_chosen, D)
        return h @ self.chatbot.tok_emb.weight.T + self.bias  # (n_chosen, vocab)


def mask_tokens(
    input_ids: torch.Tensor, mask: torch.Tensor, cfg: PretrainConfig, vocab: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(corrupted ids, chosen positions (B, L) bool, original ids at them)."""
    real = mask.bool()
    chosen = (torch.rand(input_ids.shape, generator=gen) < cfg.mask_prob) & real
    # at least one position per utterance: its first real token when none was drawn
    chosen[:, 0] |= ~chosen.any(dim=1)
    roll = torch.rand(input_ids.shape, generator=gen)
    corrupted = input_ids.clone()
    corrupted[chosen & (roll < 0.8)] = UNK_ID
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    corrupted[swap] = torch.randint(FIRST_TOKEN, vocab, (int(swap.sum()),), generator=gen)
    return corrupted, chosen, input_ids[chosen]


@torch.no_grad()
def evaluate(model: MaskedLM, ids: list[list[int]], cfg: PretrainConfig, vocab: int) -> tuple[float, float]:
    """Masked-token loss and accuracy with a fixed masking (seed 0), eval mode."""
    model.eval()
    gen = torch.Generator().manual_seed(0)
    total, correct, count = 0.0, 0, 0
    for start in range(0, len(ids), 128):
        input_ids, mask = pad_batch(ids[start : start + 128])
        corrupted, chosen, target = mask_tokens(input_ids, mask, cfg, vocab, gen)
        logits = model(corrupted, mask, chosen)
        total += F.cross_entropy(logits, target, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == target).sum())
        count += len(target)
    return total / count, correct / count


def pretrain(
    cfg: PretrainConfig,
    data_dir: Path = data.DATA_DIR,
    tokenizer_file: Path = data.TOKENIZER_FILE,
    runs_dir: Path = RUNS_DIR,
) -> dict[str, Any]:
    torch.set_num_threads(cfg.threads)
    rng = set_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_set, val_set = data.load_split(data_dir)
    tok = load_tokenizer(tokenizer_file)
    cfg.model.vocab_size = vocab = tok.get_vocab_size()
    cfg.model.n_labels = len(data.load_labels())
    val_ids = encode(tok, [e.text for e in val_set], cfg.model.max_len)
    model = MaskedLM(cfg.model)
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    total_steps = cfg.epochs * math.ceil(len(train_set) / cfg.batch_size)
    history, step, started = [], 0, time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        texts = [augment(e.text, rng, cfg.augment_prob, cfg.word_dropout, cfg.typo_rate) for e in train_set]
        ids = encode(tok, texts, cfg.model.max_len)
        epoch_loss, tokens = 0.0, 0
        for rows in length_batches([len(x) for x in ids], cfg.batch_size, rng):
            input_ids, mask = pad_batch([ids[i] for i in rows])
            corrupted, chosen, target = mask_tokens(input_ids, mask, cfg, vocab, gen)
            for group in opt.param_groups:
                group["lr"] = warmup_cosine(step, total_steps, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
            loss = F.cross_entropy(model(corrupted, mask, chosen), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            epoch_loss += loss.item() * len(target)
            tokens += len(target)
            step += 1
        val_loss, val_acc = evaluate(model, val_ids, cfg, vocab)
        row = {
            "epoch": epoch + 1,
            "train_loss": epoch_loss / tokens,
            "val_loss": val_loss,
            "val_masked_accuracy": val_acc,
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        print(json.dumps(row), flush=True)
    record = {
        "name": cfg.name,
        "pretrain_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "model_config": cfg.model.to_dict(),
        "tokenizer_sha256": hashlib.sha256(tokenizer_file.read_bytes()).hexdigest(),
        "history": history,
    }
    out = runs_dir / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"record": record, "state_dict": model.chatbot.state_dict()}, out / "checkpoint.pt")
    (out / "history.json").write_text(json.dumps(record, indent=1))
    return record
