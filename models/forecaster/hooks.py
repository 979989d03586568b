"""The forecaster's training side as the service's kind plugin sees it (torch is imported only inside functions)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer


def register(train_app: typer.Typer, export_app: typer.Typer) -> None:
    from models.forecaster.cli import register as register_cli

    register_cli(train_app, export_app)


def eager_model(artifact: Any, runs_dir: Path) -> tuple[Any, str]:
    """The artifact's network in eager PyTorch (trained weights when the run is there), and where they came from."""
    import torch

    from models.forecaster.export import load_ensemble
    from models.forecaster.model import Forecaster, ForecasterConfig, ForecasterEnsemble

    members = int(artifact.sidecar.config.get("ensemble_members", 1))
    run_dir = runs_dir / "forecaster" / artifact.name
    if len(list(run_dir.glob("seed*.pt"))) >= members:
        trained = list(load_ensemble(run_dir)[0].members)[:members]  # as many members as the artifact has
        return ForecasterEnsemble(
            trained
        ).eval(), f"trained (runs/forecaster/{artifact.name}, {members} member(s))"
    torch.manual_seed(0)
    names = {f.name for f in dataclasses.fields(ForecasterConfig)}
    cfg = ForecasterConfig(**{k: v for k, v in artifact.sidecar.config.items() if k in names})
    return ForecasterEnsemble([Forecaster(cfg) for _ in range(members)]).eval(), "seeded init"


def export_fast_graph(model: Any, path: Path) -> None:
    from models.forecaster.export import export_onnx

    export_onnx(model, path, diagnostics=False)
