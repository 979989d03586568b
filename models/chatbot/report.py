"""The chatbot training report's pictures (``make chatbot-report``), drawn from the committed sidecars alone.

Per variant of the zoo, from ``training.history`` (one row per epoch): loss and accuracy curves, the mean per-step
gradient norm of every layer, and the RMS of the residual stream after every sublayer (on a fixed sample of
validation utterances, eval mode); then the residual stream's RMS against depth at the kept epoch, and the
challenge split's in-scope accuracy vs out-of-scope recall as the confidence threshold rises.

    .venv/bin/python -m models.chatbot.report [--out docs/chatbot]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from models.chatbot import data
from models.chatbot.zoo import VARIANTS

OUT = data.CHATBOT_DIR.parents[1] / "docs" / "chatbot"
COLOURS = {name: f"C{i}" for i, name in enumerate(VARIANTS)}


def load_sidecars(artifact_dir: Path = data.ARTIFACT_DIR) -> dict[str, dict[str, Any]]:
    found = {name: artifact_dir / name / "sidecar.json" for name in VARIANTS}
    return {
        name: json.loads(path.read_text(encoding="utf-8")) for name, path in found.items() if path.exists()
    }


def residual_rows(sidecar: dict[str, Any]) -> list[str]:
    """The statistics rows that are the residual stream: the embedding, then after every sublayer update."""
    return [layer["name"] for layer in sidecar["layers"] if layer["kind"] in ("embedding", "residual")]


def curves(sidecars: dict[str, dict[str, Any]], out: Path) -> Path:
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, side in sidecars.items():
        history = side["training"]["history"]
        epochs = [row["epoch"] for row in history]
        c = COLOURS[name]
        loss_ax.plot(epochs, [row["train_loss"] for row in history], color=c, ls="--", lw=1)
        loss_ax.plot(epochs, [row["val_loss"] for row in history], color=c, label=name)
        acc_ax.plot(epochs, [row["train_accuracy"] for row in history], color=c, ls="--", lw=1)
        acc_ax.plot(epochs, [row["val_accuracy"] for row in history], color=c, label=name)
    loss_ax.set(title="loss (solid: validation, dashed: training objective)", xlabel="epoch", ylabel="loss")
    acc_ax.set(title="accuracy (solid: validation, dashed: training, perturbed)", xlabel="epoch")
    acc_ax.legend(fontsize=8)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    return save(fig, out / "curves.png")


def per_layer(sidecars: dict[str, dict[str, Any]], out: Path, key: str) -> Path:
    """One panel per variant: a line per layer over the epochs (gradient norms, or the residual stream's RMS)."""
    fig, axes = plt.subplots(1, len(sidecars), figsize=(3.4 * len(sidecars), 3.6), sharey=True, squeeze=False)
    for ax, (name, side) in zip(axes[0], sidecars.items(), strict=True):
        history = side["training"]["history"]
        epochs = [row["epoch"] for row in history]
        layers = residual_rows(side) if key == "hidden_rms" else [k for k in history[0][key] if k != "total"]
        cmap = plt.get_cmap("viridis")
        for i, layer in enumerate(layers):
            ax.plot(
                epochs,
                [row[key][layer] for row in history],
                color=cmap(i / max(1, len(layers) - 1)),
                label=layer,
            )
        ax.set(title=name, xlabel="epoch", yscale="log")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(
        "mean gradient norm per step" if key == "grad_norm" else "RMS of the residual stream"
    )
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, out / ("grad_norms.png" if key == "grad_norm" else "hidden_rms.png"))


def depth_profile(sidecars: dict[str, dict[str, Any]], out: Path) -> Path:
    """The residual stream's RMS against depth at the kept epoch, every variant on one axis."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, side in sidecars.items():
        best = side["training"]["best_epoch"]
        row = next(r for r in side["training"]["history"] if r["epoch"] == best)
        layers = residual_rows(side)
        ax.plot(
            range(len(layers)),
            [row["hidden_rms"][layer] for layer in layers],
            "o-",
            color=COLOURS[name],
            label=name,
        )
    ax.set_xticks(
        range(len(layers)),
        [name.replace("block", "b").replace("_residual", "") for name in layers],
        rotation=45,
        fontsize=7,
    )
    ax.set(
        ylabel="RMS of the residual stream",
        title="residual stream RMS by depth (kept epoch, validation sample)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out / "depth_rms.png")


def tradeoff(sidecars: dict[str, dict[str, Any]], out: Path) -> Path:
    """Challenge split: in-scope accuracy vs out-of-scope recall as the confidence threshold rises (at each
    variant's validation-chosen margin), the validation-chosen point marked; the TF-IDF baseline for reference."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name, side in sidecars.items():
        t = side["training"]
        points = t["challenge_curve"]
        ax.plot(
            [p["oos_recall"] for p in points],
            [p["in_scope_accuracy"] for p in points],
            color=COLOURS[name],
            label=name,
        )
        chosen = t["challenge"]
        ax.plot(chosen["oos_recall"], chosen["in_scope_accuracy"], "o", color=COLOURS[name])
    base = next(iter(sidecars.values()))["training"]["baseline"]
    points = base["challenge_curve"]
    ax.plot(
        [p["oos_recall"] for p in points],
        [p["in_scope_accuracy"] for p in points],
        color="grey",
        ls="--",
        label="TF-IDF + LR",
    )
    ax.plot(base["challenge"]["oos_recall"], base["challenge"]["in_scope_accuracy"], "s", color="grey")
    ax.axhline(0.85, color="k", lw=0.6, ls=":")
    ax.axvline(0.80, color="k", lw=0.6, ls=":")
    ax.set(
        xlabel="out-of-scope recall",
        ylabel="in-scope accuracy",
        title="challenge split: confidence threshold sweep",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out / "challenge_tradeoff.png")


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def tables(sidecars: dict[str, dict[str, Any]]) -> str:
    """The docs' result tables (Markdown), every figure from the sidecars."""
    base = next(iter(sidecars.values()))["training"]["baseline"]

    def f(x: float) -> str:
        return f"{x:.3f}"

    def scores(r: dict[str, Any]) -> list[str]:
        return [f(r["accuracy"]), f(r["in_scope_accuracy"]), f(r["oos_recall"])]

    rows = []
    for name, side in sidecars.items():
        t = side["training"]
        rows.append(
            [name, f(t["val_accuracy_onnx"]), *scores(t["validation"]), *scores(t["challenge"]), *scores(t["challenge_argmax"]),
             f"{t['temperature']:.2f}", f"{t['thresholded']['confidence_threshold']:.2f} / {t['thresholded']['margin_threshold']:.2f}"]
        )  # fmt: skip
    rows.append(
        ["TF-IDF + LR", f(base["validation"]["accuracy"]), *scores(base["validation_thresholded"]),
         *scores(base["challenge_thresholded"]), *scores(base["challenge"]), "1", f"{base['validation_thresholded']['confidence_threshold']:.2f} / {base['validation_thresholded']['margin_threshold']:.2f}"]
    )  # fmt: skip
    overall = markdown(
        ["model", "val acc (argmax)", "val acc", "val in-scope", "val OOS recall", "challenge acc", "challenge in-scope",
         "challenge OOS recall", "challenge acc (argmax)", "in-scope (argmax)", "OOS recall (argmax)", "T", "conf / margin"],
        rows,
    )  # fmt: skip
    names = list(sidecars)

    def cells(split: str, group: str, key: str) -> list[str]:
        """Count, each variant's accuracy and the baseline's (at its thresholds) for one type or label."""
        return [str(base[split][group][key]["n"]),
                *(f(sidecars[n]["training"][split][group][key]["accuracy"]) for n in names),
                f(base[f"{split}_thresholded"][group][key]["accuracy"])]  # fmt: skip

    by_type = markdown(
        ["challenge type", "n", *names, "TF-IDF + LR"],
        [[k, *cells("challenge", "by_type", k)] for k in sorted(base["challenge"]["by_type"])],
    )
    by_val_type = markdown(
        ["validation type", "n", *names, "TF-IDF + LR"],
        [[k, *cells("validation", "by_type", k)] for k in sorted(base["validation"]["by_type"])],
    )
    labels = list(next(iter(sidecars.values()))["chatbot"]["labels"])
    by_label = markdown(
        ["label", "challenge n", *names, "TF-IDF + LR", "validation n", *(f"val {n}" for n in names), "val TF-IDF"],
        [[k, *cells("challenge", "by_label", k), *cells("validation", "by_label", k)] for k in labels],
    )  # fmt: skip
    first = next(iter(sidecars.values()))
    depth = markdown(
        ["layer", *names],
        [[layer, *(f"{side['reference_activations'][layer]['rms']['mean']:.2f} ± {side['reference_activations'][layer]['rms']['std']:.2f}"
                   for side in sidecars.values())] for layer in [*residual_rows(first), "final_norm"]],
    )  # fmt: skip
    parts_seen = list(dict.fromkeys(k for s in sidecars.values() for k in s["training"]["grad_norm_at_best"]))
    parts_seen = [k for k in parts_seen if k != "total"] + ["total"]  # post has no final norm: "–"
    grads = markdown(
        ["variant", *parts_seen, "epoch 1 total"],
        [[n, *(f"{s['training']['grad_norm_at_best'][k]:.2f}" if k in s["training"]["grad_norm_at_best"] else "–"
               for k in parts_seen),
          f"{s['training']['history'][0]['grad_norm']['total']:.2f}"] for n, s in sidecars.items()],
    )  # fmt: skip
    parts = [("Overall", overall), ("Challenge by type", by_type), ("Validation by type", by_val_type),
             ("By label", by_label), ("Residual RMS by depth (reference, validation)", depth),
             ("Gradient norms at the kept epoch", grads)]  # fmt: skip
    return "\n\n".join(f"### {title}\n\n{table}" for title, table in parts)


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--tables", action="store_true", help="print the docs' result tables (Markdown) instead"
    )
    args = parser.parse_args()
    sidecars = load_sidecars()
    if not sidecars:
        raise SystemExit("no chatbot artifacts: train and export them first (make train)")
    if args.tables:
        print(tables(sidecars))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (
        curves(sidecars, args.out),
        per_layer(sidecars, args.out, "grad_norm"),
        per_layer(sidecars, args.out, "hidden_rms"),
        depth_profile(sidecars, args.out),
        tradeoff(sidecars, args.out),
    ):
        print(path)


if __name__ == "__main__":
    main()
