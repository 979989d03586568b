"""The `lnserve` command line: serve, train, export.

Training and export commands are registered by each model package (`models/<kind>/cli.py`), which import torch
only inside the command, so `lnserve serve` starts without the [train] extra.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(help="lnserve: LayerNorm models on ONNX Runtime.", no_args_is_help=True)
train_app = typer.Typer(help="Train a model (needs the train extra).", no_args_is_help=True)
export_app = typer.Typer(
    help="Export a trained model to ONNX with its sidecar (needs the train extra).", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(export_app, name="export")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: LNSERVE_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default: LNSERVE_PORT or 8000)."),
) -> None:
    """Serve the bundled models over HTTP."""
    from service.server import run

    run(host=host, port=port)


def _register_model_commands() -> None:
    """Each built-in kind names the module of its `train`/`export` commands."""
    from service.kinds import registry

    for kind in registry():
        if kind.training is not None:
            importlib.import_module(kind.training).register(train_app, export_app)


_register_model_commands()
