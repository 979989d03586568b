"""`lnserve train forecaster` and `lnserve export forecaster` (torch is imported inside the commands only)."""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_RUN_DIR = Path("runs/forecaster")
DEFAULT_OUT_DIR = Path(__file__).parent / "artifacts"
# Options passed through to TrainConfig under their own names.
TRAIN_OPTIONS = (
    "batch_size",
    "steps_per_epoch",
    "max_epochs",
    "patience",
    "lr",
    "windows_per_series",
    "threads",
)


def train_forecaster(
    name: str = typer.Option("forecaster", help="Artifact name; checkpoints go to RUN_DIR/NAME/seed<k>.pt."),
    run_dir: Path = typer.Option(DEFAULT_RUN_DIR, help="Where checkpoints are written."),
    seeds: str = typer.Option("0", help="Comma-separated seeds: one ensemble member per seed."),
    lookbacks: str = typer.Option("", help="Comma-separated lookback per member (default: the context)."),
    unanchored: bool = typer.Option(
        False, help="Predict around the level (plain ES-RNN), not the Theta line."
    ),
    cell: str = typer.Option("lstm", help="lstm (LayerNorm-LSTM) or gru (LayerNorm-GRU)."),
    norm: str = typer.Option("layernorm", help="layernorm or rmsnorm."),
    hidden: int = typer.Option(48, help="Hidden size of every recurrent layer."),
    layers: int = typer.Option(2, help="Number of recurrent layers."),
    context_length: int = typer.Option(48, help="Steps the features provide (the longest lookback)."),
    max_epochs: int = typer.Option(
        15, help="Upper bound; early stopping on validation MASE usually ends sooner."
    ),
    steps_per_epoch: int = typer.Option(200, help="Optimizer steps per epoch."),
    batch_size: int = typer.Option(256, help="Windows per step."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (linear warm-up, cosine decay)."),
    patience: int = typer.Option(4, help="Epochs without validation improvement before stopping."),
    windows_per_series: int = typer.Option(30, help="Training pool: at most this many origins per series."),
    threads: int = typer.Option(1, help="torch CPU threads."),
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Train the LayerNorm-RNN forecaster on the M1 / M3 training parts and the tsibbledata series."""
    from models.forecaster.model import ForecasterConfig
    from models.forecaster.train import TrainConfig, run_training

    given = dict(locals())
    model_cfg = ForecasterConfig(
        context_length=context_length,
        lookback=context_length,
        cell=cell,
        n_layer=layers,
        hidden=hidden,
        norm_type=norm,
        anchored=not unanchored,
    )
    cfg = TrainConfig(**{k: given[k] for k in TRAIN_OPTIONS})
    run_training(
        model_cfg,
        cfg,
        [int(s) for s in seeds.split(",")],
        run_dir / name,
        progress=not quiet,
        lookbacks=[int(k) for k in lookbacks.split(",")] if lookbacks else None,
    )


def export_forecaster(
    name: str = typer.Option("forecaster", help="Artifact name (folder under OUT_DIR)."),
    run_dir: Path = typer.Option(
        DEFAULT_RUN_DIR, help="Where `lnserve train forecaster` wrote the checkpoints."
    ),
    out_dir: Path = typer.Option(DEFAULT_OUT_DIR, help="The artifacts folder of the forecaster kind."),
) -> None:
    """Export the trained ensemble to ONNX (fast + diagnostic graphs), score it on validation, write the sidecar.

    The test sets are scored by `make eval-forecaster` (through the service runtime, next to the baselines)."""
    from models.forecaster.export import run_export

    meta = run_export(run_dir / name, out_dir, name)
    files = meta.files
    typer.echo(f"wrote {out_dir / name}: {files.fast.bytes} + {files.diagnostic.bytes} bytes")


def register(train_app: typer.Typer, export_app: typer.Typer) -> None:
    train_app.command("forecaster")(train_forecaster)
    export_app.command("forecaster")(export_forecaster)
