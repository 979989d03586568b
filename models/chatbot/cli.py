"""`lnserve train chatbot…` and `lnserve export chatbot` (torch is imported only inside the commands)."""

from __future__ import annotations

from pathlib import Path

import typer

from models.chatbot.zoo import VARIANTS


def prepare_data(
    vocab_size: int = typer.Option(4000, help="BPE vocabulary size (256 byte-fallback tokens come on top)."),
) -> None:
    """Regenerate the fixed split (train.jsonl / val.jsonl) and the shared tokenizer from the utterance files."""
    from models.chatbot import data, datacard
    from models.chatbot.tokenizer import build_tokenizer

    n_train, n_val = data.write_split()
    datacard.write()
    train_set, _ = data.load_split()
    tok = build_tokenizer([e.text for e in train_set], vocab_size=vocab_size)
    tok.save(str(data.TOKENIZER_FILE))
    typer.echo(
        f"train {n_train}, validation {n_val}, vocabulary {tok.get_vocab_size()} -> {data.TOKENIZER_FILE}"
    )


# Training knobs: None keeps the default of TrainConfig / ChatbotConfig (models/chatbot/train.py, model.py).
TRAIN_OPTIONS = ("epochs", "patience", "lr", "warmup_steps", "batch_size", "weight_decay", "label_smoothing",
                 "augment_prob", "token_dropout", "distill_weight", "ema_decay", "soft_targets", "tfidf_share",
                 "init_from", "fold", "n_folds", "compose_prob", "part_weight")  # fmt: skip
MLM_OPTIONS = ("epochs", "lr", "warmup_steps", "batch_size", "weight_decay", "augment_prob", "mask_prob")
MODEL_OPTIONS = ("n_layer", "n_head", "d_model", "d_ff", "max_len", "dropout", "norm_eps", "ngram_buckets")


def zoo_variant(variant: str, placement: str, norm: str, residual_scale: float) -> tuple[str, str, float]:
    """(placement, norm, Δt) of a zoo variant by name, or the options as given when no variant is named."""
    if not variant:
        return placement, norm, residual_scale
    if variant not in VARIANTS:
        raise typer.BadParameter(f"unknown variant {variant!r}; the zoo: {', '.join(VARIANTS)}")
    v = VARIANTS[variant]
    return v.placement, v.norm, v.residual_scale


VARIANT_HELP = "A zoo variant (sets placement, norm and Δt): " + " | ".join(VARIANTS)


def train_chatbot(
    variant: str = typer.Option("", help=VARIANT_HELP + "; the run is named after it."),
    placement: str = typer.Option("peri", help="Norm placement: post | pre | peri."),
    norm: str = typer.Option("layernorm", help="Norm type: layernorm | rmsnorm."),
    residual_scale: float = typer.Option(1.0, help="Residual step Δt."),
    name: str = typer.Option("", help="Run name (default chatbot-<placement>); checkpoint in runs/<name>/."),
    seed: int = typer.Option(0, help="Random seed."),
    threads: int = typer.Option(1, help="torch threads."),
    tokenizer: str = typer.Option("", help="tokenizer.json to train with (default: the committed one)."),
    epochs: int | None = typer.Option(None, help="Epochs of the cosine schedule [20]."),
    patience: int | None = typer.Option(
        None, help="Early stopping: epochs without a better validation score [20]."
    ),
    lr: float | None = typer.Option(None, help="Peak learning rate [1e-3]."),
    warmup_steps: int | None = typer.Option(
        None, help="Linear warm-up steps, the same for every placement [500]."
    ),
    batch_size: int | None = typer.Option(None, help="Batch size [32]."),
    weight_decay: float | None = typer.Option(None, help="AdamW weight decay on matrices [0.1]."),
    label_smoothing: float | None = typer.Option(None, help="Label smoothing [0.1]."),
    augment_prob: float | None = typer.Option(
        None, help="Share of utterances given typos / word dropout [1.0]."
    ),
    token_dropout: float | None = typer.Option(None, help="Per-token dropout of the input [0.1]."),
    distill_weight: float | None = typer.Option(
        None, help="Weight of the TF-IDF teacher's soft targets [0.5]."
    ),
    ema_decay: float | None = typer.Option(None, help="Per-step weight averaging, 0 = off [0]."),
    soft_targets: str | None = typer.Option(
        None, help="Teacher probabilities of train.jsonl, row for row (.npy)."
    ),
    tfidf_share: float | None = typer.Option(
        None, help="Share of the TF-IDF teacher in the soft targets; the rest is --soft-targets [1.0]."
    ),
    init_from: str | None = typer.Option(None, help="Pretraining run whose encoder starts this run."),
    fold: int | None = typer.Option(
        None, help="Leave out this cross-fitting fold and predict it [-1: none]."
    ),
    n_folds: int | None = typer.Option(None, help="Cross-fitting folds [5]."),
    compose_prob: float | None = typer.Option(
        None, help="Share of utterances opened by a greeting or closed by a thanks per epoch [0]."
    ),
    ngram_buckets: int | None = typer.Option(
        None, help="Bag-of-n-grams head next to the encoder: hashed bigram rows, 0 = off [0]."
    ),
    part_weight: float | None = typer.Option(
        None, help="With the n-gram head: weight of each part's own loss (encoder, n-grams) [0]."
    ),
    n_layer: int | None = typer.Option(None, help="Encoder blocks [4]."),
    n_head: int | None = typer.Option(None, help="Attention heads [4]."),
    d_model: int | None = typer.Option(None, help="Model width [128]."),
    d_ff: int | None = typer.Option(None, help="MLP width [256]."),
    max_len: int | None = typer.Option(None, help="Maximum tokens (head + tail window) [128]."),
    dropout: float | None = typer.Option(None, help="Dropout [0.2]."),
    norm_eps: float | None = typer.Option(None, help="Norm epsilon [1e-5]."),
    mlm: bool = typer.Option(
        False,
        "--mlm",
        help="Masked-token pretraining of the encoder instead (run mlm-<variant>; then --init-from).",
    ),
    mask_prob: float | None = typer.Option(None, help="With --mlm: share of tokens to predict [0.15]."),
) -> None:
    """Train one chatbot variant (`--variant chatbot-peri-dt0.1`, or `--placement peri --norm layernorm
    --residual-scale 1.0 --name chatbot-peri`), or with `--mlm` pretrain its encoder on masked tokens."""
    from models.chatbot.model import ChatbotConfig

    given = {k: v for k, v in locals().items() if v is not None}
    placement, norm, residual_scale = zoo_variant(variant, placement, norm, residual_scale)
    if variant:  # a variant's n-gram head and its part loss, unless given
        given.setdefault("ngram_buckets", VARIANTS[variant].ngram_buckets)
        given.setdefault("part_weight", VARIANTS[variant].part_weight)
    model_cfg = ChatbotConfig(
        norm_placement=placement, norm_type=norm, residual_scale=residual_scale,
        **{k: given[k] for k in MODEL_OPTIONS if k in given},
    )  # fmt: skip
    if mlm:
        from models.chatbot.pretrain import PretrainConfig, pretrain

        pre_cfg = PretrainConfig(
            name=name or f"mlm-{variant or placement}", seed=seed, threads=threads, model=model_cfg,
            **{k: given[k] for k in MLM_OPTIONS if k in given},
        )  # fmt: skip
        last = pretrain(pre_cfg)["history"][-1]
        typer.echo(f"{pre_cfg.name}: masked-token accuracy {last['val_masked_accuracy']:.4f} on validation")
        return
    from models.chatbot.train import TrainConfig, train

    cfg = TrainConfig(
        name=name or variant or f"chatbot-{placement}", seed=seed, threads=threads, model=model_cfg,
        **{k: given[k] for k in TRAIN_OPTIONS if k in given},
    )  # fmt: skip
    record = train(cfg, tokenizer_file=Path(tokenizer)) if tokenizer else train(cfg)
    typer.echo(
        f"{cfg.name}: val accuracy {record['val_accuracy']:.4f} (epoch {record['best_epoch']}), "
        f"train accuracy {record['train_accuracy']:.4f}, {record['train_seconds']:.0f} s"
    )


def export_chatbot(
    name: list[str] = typer.Option(
        [], help="Run(s) to export (default: every variant that has a checkpoint)."
    ),
    select_default: bool = typer.Option(False, help="Write artifacts/aliases.json: chatbot -> best variant."),
) -> None:
    """Export runs/<name> to models/chatbot/artifacts/<name>/ (ONNX + sidecar); optionally pick the default."""
    from models.chatbot import baseline
    from models.chatbot.export import export_variant
    from models.chatbot.export import select_default as select
    from models.chatbot.train import RUNS_DIR

    names = name or [n for n in VARIANTS if (RUNS_DIR / n / "checkpoint.pt").exists()]
    base = baseline.evaluate_all() if names else {}
    for run in names:
        sidecar = export_variant(run, base)
        t = sidecar.training
        typer.echo(
            f"{run}: val accuracy {t['val_accuracy_onnx']:.4f} (baseline {t['baseline_val_accuracy']:.4f}); "
            f"thresholded (T {t['temperature']:.2f}, conf {t['thresholded']['confidence_threshold']}, "
            f"margin {t['thresholded']['margin_threshold']}): val in-scope {t['thresholded']['in_scope_accuracy']:.3f}, "
            f"OOS recall {t['thresholded']['oos_recall']:.3f}"
        )
    if select_default:
        typer.echo(f"default chatbot -> {select()}")


def register(train_app: typer.Typer, export_app: typer.Typer) -> None:
    train_app.command("chatbot")(train_chatbot)
    train_app.command("chatbot-data")(prepare_data)
    export_app.command("chatbot")(export_chatbot)
