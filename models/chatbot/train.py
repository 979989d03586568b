"""Train one chatbot variant: AdamW, linear warm-up then cosine decay (the same warm-up for every placement),
label smoothing, dropout, light text augmentation (typos, word and token dropout) and early stopping on
validation accuracy. Writes ``runs/<name>/checkpoint.pt`` and ``runs/<name>/history.json``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from tqdm import tqdm

from models.chatbot import data
from models.chatbot.model import Chatbot, ChatbotConfig, layer_specs
from models.chatbot.tokenizer import PAD_ID, encode, load_tokenizer
from models.layers import warmup_cosine
from models.sidecar import STATISTICS

RUNS_DIR = data.CHATBOT_DIR.parents[1] / "runs"
KEYBOARD_NEIGHBOURS = {
    "q": "wa", "w": "qes", "e": "wrd", "r": "etf", "t": "ryg", "y": "tuh", "u": "yij", "i": "uok", "o": "ipl",
    "p": "ol", "a": "qsz", "s": "awdz", "d": "sefx", "f": "drgc", "g": "fthv", "h": "gyjb", "j": "hukn",
    "k": "jilm", "l": "kop", "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}  # fmt: skip


@dataclass
class TrainConfig:
    name: str = "chatbot-peri"
    seed: int = 0
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    augment_prob: float = 1.0  # chance that a training utterance is perturbed in an epoch
    word_dropout: float = 0.1  # per word, in a perturbed utterance of more than three words
    typo_rate: float = 0.15  # per word, in a perturbed utterance
    token_dropout: float = 0.1  # per token, every utterance
    compose_prob: float = 0.0  # chance that an utterance is wrapped in a courtesy (`compose`) in an epoch
    patience: int = 20
    distill_weight: float = 0.5  # > 0: also fit a teacher's probabilities (see `teacher_targets`)
    soft_targets: str = ""  # .npy (n_train, n_labels): a teacher's probabilities of train.jsonl, row for row
    tfidf_share: float = 1.0  # of the teacher: TF-IDF on the perturbed text; the rest is `soft_targets`
    init_from: str = ""  # a pretraining run (runs/<name>/checkpoint.pt) whose encoder starts this one
    fold: int = -1  # >= 0: train without cross-fitting fold `fold` of `n_folds` and predict it at the end
    n_folds: int = 5
    ema_decay: float = 0.0  # > 0: evaluate and keep an exponential moving average of the weights (per step)
    # > 0 with the n-gram head: also fit each part alone (encoder logits, n-gram logits) with this weight each, so
    # that both stay classifiers of their own and their sum is a late fusion rather than one leaning on the other.
    part_weight: float = 0.0
    threads: int = 1
    model: ChatbotConfig = field(default_factory=ChatbotConfig)


# --- augmentation -------------------------------------------------------------------------------------------


def typo(word: str, rng: random.Random) -> str:
    """One keyboard-style edit: drop, swap, double or hit a neighbouring key."""
    if len(word) < 3:
        return word
    i = rng.randrange(len(word) - 1)
    op = rng.randrange(4)
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 2:
        return word[: i + 1] + word[i] + word[i + 1 :]
    near = KEYBOARD_NEIGHBOURS.get(word[i].lower())
    return word[:i] + rng.choice(near) + word[i + 1 :] if near else word


def augment(
    text: str, rng: random.Random, prob: float, word_dropout: float = 0.1, typo_rate: float = 0.15
) -> str:
    if rng.random() >= prob:
        return text
    words = text.split()
    if len(words) > 3:
        words = [w for w in words if rng.random() >= word_dropout] or words
    words = [typo(w, rng) if rng.random() < typo_rate else w for w in words]
    out = " ".join(words)
    if rng.random() < 0.3:
        out = out.rstrip("?.!")
    return out or text


COURTESY = ("greeting", "thanks", "goodbye")
COURTESY_WORDS = 8  # the longest courtesy utterance used to wrap another


def courtesies(train_set: list[data.Example]) -> tuple[list[str], list[str]]:
    """Short training utterances of `greeting` (openers) and of `thanks` / `goodbye` (closers)."""
    short = [e for e in train_set if len(e.text.split()) <= COURTESY_WORDS]
    return [e.text for e in short if e.intent == "greeting"], [
        e.text for e in short if e.intent in ("thanks", "goodbye")
    ]


def compose(
    example: data.Example, rng: random.Random, prob: float, openers: list[str], closers: list[str]
) -> str:
    """With `prob`, a message of any other label opened by a greeting or closed by a thanks / goodbye of the
    training set, its label unchanged: real messages come wrapped in courtesies, and the ask is what counts."""
    if prob <= 0 or example.intent in COURTESY or not openers or not closers or rng.random() >= prob:
        return example.text
    if rng.random() < 0.5:
        return f"{rng.choice(openers)} {example.text}"
    return f"{example.text} {rng.choice(closers)}"


# --- batching -----------------------------------------------------------------------------------------------


def pad_batch(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), length), PAD_ID, dtype=torch.long)  # (B, L)
    mask = torch.zeros((len(ids), length), dtype=torch.long)  # (B, L)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def drop_tokens(seq: list[int], p: float, rng: random.Random) -> list[int]:
    kept = [t for t in seq if rng.random() >= p]
    return kept or seq


def length_batches(
    lengths: list[int], batch_size: int, rng: random.Random, pool: int = 64
) -> list[list[int]]:
    """Shuffled batches of similar lengths: shuffle, sort each pool of `pool` batches by length, cut, shuffle the
    batches. Long messages then pad long messages, not 31 short ones (a third of the tokens of plain shuffling)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), pool * batch_size):
        chunk = sorted(order[start : start + pool * batch_size], key=lambda i: lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def predict_logits(model: Chatbot, ids: list[list[int]], batch_size: int = 128) -> torch.Tensor:
    """Logits (N, n_labels) of the model in eval mode, batched by length (rows in the order of `ids`)."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    logits = torch.empty(len(ids), model.cfg.n_labels)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        logits[rows] = model(*pad_batch([ids[i] for i in rows]))
    return logits


@torch.no_grad()
def evaluate(
    model: Chatbot, ids: list[list[int]], labels: list[int], batch_size: int = 128
) -> tuple[float, float, torch.Tensor]:
    """Accuracy, mean cross-entropy and the logits (N, n_labels) of the model in eval mode."""
    logits = predict_logits(model, ids, batch_size)
    target = torch.tensor(labels)
    loss = F.cross_entropy(logits, target).item()
    acc = (logits.argmax(dim=1) == target).float().mean().item()
    return acc, loss, logits


@torch.no_grad()
def layer_rms(model: Chatbot, ids: list[list[int]], batch_size: int = 128) -> dict[str, float]:
    """Mean over the utterances of each statistics row's RMS (residual stream, sublayer outputs), eval mode."""
    model.eval()
    rms = STATISTICS.index("rms")
    rows = []
    for start in range(0, len(ids), batch_size):
        _, acts = model(*pad_batch(ids[start : start + batch_size]), return_activations=True)
        rows.append(acts[:, :, rms])  # (B, n_layers)
    means = torch.cat(rows).mean(dim=0).tolist()
    return {str(spec["name"]): value for spec, value in zip(layer_specs(model.cfg), means, strict=True)}


# --- gradient norms -----------------------------------------------------------------------------------------


def layer_of(param_name: str) -> str:
    """Group a parameter into the layer whose gradient norm is recorded: embed, block{i}, final_norm, head."""
    if param_name.startswith(("tok_emb", "pos_emb")):
        return "embed"
    if param_name.startswith("blocks."):
        return "block" + param_name.split(".")[1]
    return param_name.split(".")[0]


def grad_norms(model: Chatbot) -> dict[str, float]:
    squares: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            key = layer_of(name)
            squares[key] = squares.get(key, 0.0) + float(p.grad.pow(2).sum())
    norms = {k: math.sqrt(v) for k, v in squares.items()}
    norms["total"] = math.sqrt(sum(squares.values()))
    return norms


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    return warmup_cosine(step, total, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)


# --- training -----------------------------------------------------------------------------------------------


def make_teacher(
    train_set: list[data.Example], labels: list[str], seed: int
) -> Callable[[list[str]], torch.Tensor]:
    """The TF-IDF baseline fitted on the training split: texts -> probabilities (N, n_labels) in label order."""
    from models.chatbot.baseline import fit, probabilities

    pipe = fit([e.text for e in train_set], [e.intent for e in train_set], seed)
    return lambda texts: torch.tensor(probabilities(pipe, texts, labels), dtype=torch.float32)


def set_seed(seed: int) -> random.Random:
    torch.manual_seed(seed)
    return random.Random(seed)


def build_model(cfg: TrainConfig, tok: Tokenizer, n_labels: int) -> Chatbot:
    cfg.model.vocab_size = tok.get_vocab_size()
    cfg.model.n_labels = n_labels
    return Chatbot(cfg.model)


def fold_of(example: data.Example, n_folds: int) -> int:
    """The cross-fitting fold of a training utterance: a hash, like the validation split, so it is order-free."""
    digest = hashlib.sha1(f"fold\t{example.intent}\t{example.text.lower().strip()}".encode()).hexdigest()
    return int(digest, 16) % n_folds


def load_encoder(model: Chatbot, run: str, runs_dir: Path) -> None:
    """Start from a pretraining run's embeddings, blocks and final norm (its MLM head is not part of `model`)."""
    state = torch.load(runs_dir / run / "checkpoint.pt", map_location="cpu", weights_only=True)["state_dict"]
    encoder = {k: v for k, v in state.items() if not k.startswith(("head.", "mlm_"))}
    missing, unexpected = model.load_state_dict(encoder, strict=False)
    if unexpected or set(missing) != {"head.weight", "head.bias"}:
        raise ValueError(f"{run} does not fit this model: missing {missing}, unexpected {unexpected}")


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (embeddings included), none on norms and biases."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
    )


def train(
    cfg: TrainConfig,
    data_dir: Path = data.DATA_DIR,
    tokenizer_file: Path = data.TOKENIZER_FILE,
    runs_dir: Path = RUNS_DIR,
    progress: bool = True,
) -> dict[str, Any]:
    """Train to early stopping; save the best epoch's weights; return the run's record."""
    torch.set_num_threads(cfg.threads)
    rng = set_seed(cfg.seed)
    labels = data.load_labels()
    train_set, val_set = data.load_split(data_dir)
    soft_file = None
    if cfg.soft_targets:
        soft_file = torch.from_numpy(np.load(cfg.soft_targets)).float()  # (n_train, n_labels)
        assert soft_file.shape == (len(train_set), len(labels)), "soft targets do not match train.jsonl"
    held_out: list[data.Example] = []
    if cfg.fold >= 0:
        keep = [fold_of(e, cfg.n_folds) != cfg.fold for e in train_set]
        held_out = [e for e, k in zip(train_set, keep, strict=True) if not k]
        train_set = [e for e, k in zip(train_set, keep, strict=True) if k]
        if soft_file is not None:
            soft_file = soft_file[torch.tensor(keep)]
    tok = load_tokenizer(tokenizer_file)
    index = {name: i for i, name in enumerate(labels)}
    max_len = cfg.model.max_len
    train_y = [index[e.intent] for e in train_set]
    val_y = [index[e.intent] for e in val_set]
    train_ids = encode(tok, [e.text for e in train_set], max_len)
    val_ids = encode(tok, [e.text for e in val_set], max_len)
    probe_ids = val_ids[:: max(1, len(val_ids) // 512)]  # the utterances whose hidden-state RMS is recorded
    wraps = courtesies(train_set)

    model = build_model(cfg, tok, len(labels))
    if cfg.init_from:
        load_encoder(model, cfg.init_from, runs_dir)
    teacher = (
        make_teacher(train_set, labels, cfg.seed) if cfg.distill_weight > 0 and cfg.tfidf_share > 0 else None
    )
    # The averaged copy is what gets evaluated and saved; gradients and norms are the raw model's.
    averaged = copy.deepcopy(model) if cfg.ema_decay > 0 else model
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"val_accuracy": -1.0, "val_loss": math.inf}
    best_state: dict[str, torch.Tensor] = {}
    step, since_best, started = 0, 0, time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=cfg.name, disable=not progress)
    for epoch in bar:
        texts = [compose(e, rng, cfg.compose_prob, *wraps) for e in train_set]  # no draw when off
        texts = [augment(t, rng, cfg.augment_prob, cfg.word_dropout, cfg.typo_rate) for t in texts]
        ids = [drop_tokens(seq, cfg.token_dropout, rng) for seq in encode(tok, texts, max_len)]
        soft = None  # (N, n_labels): the teacher's probabilities of this epoch's texts
        if cfg.distill_weight > 0:
            tfidf = teacher(texts) if teacher is not None else 0.0
            soft = cfg.tfidf_share * tfidf + (1 - cfg.tfidf_share) * (
                soft_file if soft_file is not None else 0.0
            )
        model.train()
        epoch_loss, correct, norm_sums = 0.0, 0, {}
        batches = length_batches([len(x) for x in ids], cfg.batch_size, rng)
        for rows in batches:
            input_ids, mask = pad_batch([ids[i] for i in rows])
            target = torch.tensor([train_y[i] for i in rows])
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, cfg)
            encoder, ngram = model.parts(
                input_ids, mask
            )  # (B, n_labels) each; ngram is None without the head
            logits = encoder if ngram is None else encoder + ngram  # (B, n_labels): what forward() returns
            loss = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
            if ngram is not None and cfg.part_weight > 0:
                for part in (encoder, ngram):
                    loss = loss + cfg.part_weight * F.cross_entropy(
                        part, target, label_smoothing=cfg.label_smoothing
                    )
            if soft is not None:
                soft_loss = -(soft[rows] * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * soft_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for key, value in grad_norms(model).items():
                norm_sums[key] = norm_sums.get(key, 0.0) + value
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if averaged is not model:
                with torch.no_grad():
                    for a, p in zip(averaged.parameters(), model.parameters(), strict=True):
                        a.lerp_(p, 1.0 - cfg.ema_decay)
            epoch_loss += loss.item() * len(rows)
            correct += int((logits.argmax(dim=1) == target).sum())
            step += 1
        val_acc, val_loss, _ = evaluate(averaged, val_ids, val_y)
        row = {
            "epoch": epoch + 1,
            "train_loss": epoch_loss / len(train_set),
            "train_accuracy": correct / len(train_set),  # on the perturbed texts, in training mode
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": opt.param_groups[0]["lr"],
            "grad_norm": {k: v / len(batches) for k, v in norm_sums.items()},
            "hidden_rms": layer_rms(averaged, probe_ids),
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        bar.set_postfix(
            loss=f"{row['train_loss']:.3f}", val_acc=f"{val_acc:.3f}", best=f"{best['val_accuracy']:.3f}"
        )
        if not progress:
            print(
                json.dumps({k: v for k, v in row.items() if k not in ("grad_norm", "hidden_rms")}), flush=True
            )
        if (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"]):
            best, since_best = dict(row), 0
            best_state = {k: v.detach().clone() for k, v in averaged.state_dict().items()}
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    model.load_state_dict(best_state)
    train_acc, train_loss, _ = evaluate(model, train_ids, train_y)
    record = {
        "name": cfg.name,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "model_config": cfg.model.to_dict(),
        "parameters": model.num_parameters(),
        "tokenizer_sha256": hashlib.sha256(tokenizer_file.read_bytes()).hexdigest(),
        "labels": labels,
        "n_train": len(train_set),
        "n_val": len(val_set),
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "train_accuracy": train_acc,
        "train_loss": train_loss,
        "val_accuracy": best["val_accuracy"],
        "val_loss": best["val_loss"],
        "grad_norm_at_best": best["grad_norm"],
        "train_seconds": time.perf_counter() - started,
        "history": history,
    }
    out = runs_dir / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"record": record, "state_dict": model.state_dict()}, out / "checkpoint.pt")
    (out / "history.json").write_text(json.dumps(record, indent=1))
    if held_out:  # the fold's out-of-fold probabilities, for cross-fitted soft targets
        held_ids = encode(tok, [e.text for e in held_out], max_len)
        np.save(out / "held_out_logits.npy", predict_logits(model, held_ids).numpy())
    return record


def load_checkpoint(name: str, runs_dir: Path = RUNS_DIR) -> tuple[Chatbot, dict[str, Any]]:
    ckpt = torch.load(runs_dir / name / "checkpoint.pt", map_location="cpu", weights_only=True)
    record = ckpt["record"]
    model = Chatbot(ChatbotConfig(**record["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), record
