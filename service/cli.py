"""The `lnserve` command line: serve, train, export.

Training and export commands are registered by each model package (`models/<kind>/cli.py`), which import torch
only inside the command, so `lnserve serve` starts without the [train] extra.
"""

from __future__ import annotations

import importlib
import json

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.markup import escape

from service import __version__
from service.settings import Settings

app = typer.Typer(help="lnserve: LayerNorm models on ONNX Runtime.", no_args_is_help=True)
train_app = typer.Typer(help="Train a model (needs the train extra).", no_args_is_help=True)
export_app = typer.Typer(
    help="Export a trained model to ONNX with its sidecar (needs the train extra).", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(export_app, name="export")


def settings_help() -> str:
    """Every setting as `LNSERVE_NAME = default: description`, for `serve --help`."""
    lines = ["Settings, from environment variables (name = default):"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default, default=str) if not isinstance(default, str) else default
        lines.append(f"LNSERVE_{name.upper()} = {shown}: {field.description}")
    return escape("\n\n".join(lines))


def settings_error(exc: ValidationError) -> str:
    """A settings validation error as one line that names the variables."""
    parts = []
    for error in exc.errors():
        field, *inner = (str(part) for part in error["loc"])
        where = f" ({'.'.join(inner)})" if inner else ""
        parts.append(f"LNSERVE_{field.upper()}{where}={error.get('input')!r}: {error['msg']}")
    return "invalid settings: " + "; ".join(parts)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lnserve {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """lnserve: LayerNorm models on ONNX Runtime."""


@app.command(epilog=settings_help())
def serve(
    host: str | None = typer.Option(None, help="Bind address (overrides LNSERVE_HOST)."),
    port: int | None = typer.Option(None, help="Port (overrides LNSERVE_PORT)."),
) -> None:
    """Serve the models of LNSERVE_MODEL_DIR over HTTP."""
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except (ValidationError, SettingsError) as exc:
        message = settings_error(exc) if isinstance(exc, ValidationError) else f"invalid settings: {exc}"
        typer.echo(f"lnserve: {message}", err=True)
        raise typer.Exit(2) from None
    from service.server import run

    run(settings)


def _register_model_commands() -> None:
    """Each built-in kind names the module of its `train`/`export` commands."""
    from service.kinds import registry

    for kind in registry():
        if kind.training is not None:
            importlib.import_module(kind.training).register(train_app, export_app)


_register_model_commands()
