"""The chatbot's training side as the service's kind plugin sees it (torch is imported only inside functions)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer


def register(train_app: typer.Typer, export_app: typer.Typer) -> None:
    from models.chatbot.cli import register as register_cli

    register_cli(train_app, export_app)


def eager_model(artifact: Any, runs_dir: Path) -> tuple[Any, str]:
    """The artifact's network in eager PyTorch (trained weights when the run is there), and where they came from."""
    import torch

    from models.chatbot.export import round_to_half
    from models.chatbot.model import Chatbot, ChatbotConfig
    from models.chatbot.train import load_checkpoint

    if (runs_dir / artifact.name / "checkpoint.pt").exists():
        model = load_checkpoint(artifact.name, runs_dir)[0].eval()
        origin = f"trained (runs/{artifact.name})"
        if artifact.sidecar.config.get("weights_dtype") == "float16":  # what the shipped graphs store
            model, origin = round_to_half(model), origin + ", float16-rounded"
        return model, origin
    torch.manual_seed(0)
    names = {f.name for f in dataclasses.fields(ChatbotConfig)}
    config = ChatbotConfig(**{k: v for k, v in artifact.sidecar.config.items() if k in names})
    return Chatbot(config).eval(), "seeded init"


def export_fast_graph(model: Any, path: Path) -> None:
    import onnx

    from models.chatbot.export import export_diagnostic, prune_to

    onnx.save(prune_to(export_diagnostic(model), ["logits"]), path)
