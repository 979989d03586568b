"""The figures of docs/forecaster.md (matplotlib PNGs): training curves and per-layer gradient norms of every
ensemble member (from the sidecar's training record), and fan charts of real test series forecast through the
service runtime, quantile bands against the truth.

    .venv/bin/python -m models.forecaster.plots --out docs/forecaster
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from models.forecaster.data import test_set
from models.forecaster.evaluate import load_runtime, served_forecasts

FANS = (
    ("m3_monthly", 0),
    ("m3_monthly", 700),
    ("m3_quarterly", 100),
    ("m1_monthly", 300),
    ("tourism_monthly", 10),
    ("tourism_monthly", 200),
)


def finish(fig: plt.Figure, axes: list[plt.Axes], path: Path) -> None:
    """Grid and legend on every panel, then the PNG."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(meta: dict, path: Path) -> None:
    members = meta["training"]["members"]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(12.5, 4))
    for k, member in enumerate(members):
        epochs = [e["epoch"] for e in member["epochs"]]
        label = f"member {k} (lookback {meta['forecaster']['lookbacks'][k]})"
        ax_loss.plot(epochs, [e["train_loss"] for e in member["epochs"]], marker="o", label=label)
        ax_val.plot(epochs, [e["val_mase"] for e in member["epochs"]], marker="o", label=label)
    ax_loss.set(title="training pinball loss (units of d)", xlabel="epoch")
    ax_val.set(title="validation MASE (mean: M3 monthly, M1 monthly, M3 quarterly)", xlabel="epoch")
    finish(fig, [ax_loss, ax_val], path)


def gradient_norms(meta: dict, path: Path) -> None:
    members = meta["training"]["members"]
    fig, axes = plt.subplots(1, len(members), figsize=(4.5 * len(members), 3.8), squeeze=False)
    for k, (ax, member) in enumerate(zip(axes[0], members, strict=True)):
        epochs = [e["epoch"] for e in member["epochs"]]
        for layer in member["epochs"][0]["grad_norms"]:
            ax.plot(epochs, [e["grad_norms"][layer] for e in member["epochs"]], marker="o", label=layer)
        ax.set(title=f"member {k}: gradient norm per layer", xlabel="epoch", yscale="log")
    finish(fig, list(axes[0]), path)


def fan_charts(folder: Path, path: Path) -> None:
    runtime = load_runtime(folder)
    levels = runtime.quantile_levels
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (name, index) in zip(axes.ravel(), FANS, strict=True):
        s = test_set(name)[index]
        q = served_forecasts(runtime, [s])[0, : len(s.xx)]  # [h, Q]
        n = len(s.x)
        past = np.arange(max(0, n - 4 * len(s.xx)), n)
        future = np.arange(n, n + len(s.xx))
        ax.plot(past, s.x[past], color="black", lw=1, label="history")
        ax.plot(future, s.xx, color="black", lw=1, ls="--", label="truth (test part)")
        for lo, hi, alpha in ((0.05, 0.95, 0.15), (0.1, 0.9, 0.25), (0.25, 0.75, 0.35)):
            ax.fill_between(
                future, q[:, levels.index(lo)], q[:, levels.index(hi)], color="C0", alpha=alpha, lw=0
            )
        ax.plot(future, q[:, levels.index(0.5)], color="C0", lw=1.5, label="median")
        ax.set_title(f"{name} {s.name}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        "forecaster through the service runtime: 5–95%, 10–90%, 25–75% bands and median vs the truth"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifact", type=Path, default=Path("models/forecaster/artifacts/forecaster"))
    parser.add_argument("--out", type=Path, default=Path("docs/forecaster"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((args.artifact / "sidecar.json").read_text())
    training_curves(meta, args.out / "training_curves.png")
    gradient_norms(meta, args.out / "gradient_norms.png")
    fan_charts(args.artifact, args.out / "fan_charts.png")
    print(f"wrote {args.out}/training_curves.png, gradient_norms.png, fan_charts.png")


if __name__ == "__main__":
    main()
