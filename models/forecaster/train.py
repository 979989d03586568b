"""Training: pinball loss on direct multi-horizon quantiles, early stopping on validation MASE.

Deterministic for a seed (numpy Generator for the window pool and batches, torch seed for init, fixed thread
count). Each epoch records the training loss, validation MASE / sMAPE / pinball per group, the gradient norm of
every layer (mean over the epoch's steps, before clipping) and the statistics of every recorded activation over
the validation windows. Validation = the last horizon of every M1 / M3 training part (never a test part).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.forecaster.data import Series
from models.forecaster.features import INPUT_NAMES, to_original_units
from models.forecaster.metrics import score
from models.forecaster.model import Forecaster, ForecasterConfig
from models.forecaster.windows import Batch, Windows, training_pool, validation_windows
from models.layers import warmup_cosine
from models.sidecar import STATISTICS


@dataclass
class TrainConfig:
    seed: int = 0
    batch_size: int = 256
    steps_per_epoch: int = 200
    max_epochs: int = 15
    patience: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    grad_clip: float = 1.0
    windows_per_series: int = 30  # size of the training pool: at most this many origins per series
    threads: int = 1  # on a shared 2-core machine a second OpenMP thread mostly spins


def tensors(feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in feeds.items()}


def pinball_loss(model: Forecaster, batch: Batch) -> torch.Tensor:
    """Mean pinball loss in units of d (the window's mean |z_t - z_{t-1}|): a scale-free, MASE-like weighting
    whose gradient with respect to the network's residual is bounded."""
    feeds = tensors(batch.feeds)
    q, _ = model(**feeds)  # [B, Hz, Q]
    d = model.scale(feeds["context"], feeds["mask"])  # [B, 1]
    target, target_mask = torch.from_numpy(batch.target), torch.from_numpy(batch.target_mask)
    err = (target.unsqueeze(-1) - q) / d.unsqueeze(-1)  # [B, Hz, Q]
    tau = torch.tensor(model.config.quantiles)  # [Q]
    loss = torch.maximum(tau * err, (tau - 1) * err) * target_mask.unsqueeze(-1)  # [B, Hz, Q]
    return loss.sum() / (target_mask.sum() * len(tau))


def layer_groups(model: Forecaster) -> dict[str, list[torch.nn.Parameter]]:
    groups = {f"{model.config.cell}{i}": list(layer.parameters()) for i, layer in enumerate(model.layers)}
    return groups | {"head": list(model.head.parameters())}


@torch.no_grad()
def predict(
    model: torch.nn.Module, feeds: dict[str, np.ndarray], chunk: int = 1024
) -> tuple[np.ndarray, ...]:
    """(quantiles [N, Hz, Q] in log space, activations [N, L, 5]) in chunks."""
    model.eval()
    qs, acts = [], []
    for lo in range(0, len(feeds["context"]), chunk):
        inputs = tensors({k: feeds[k][lo : lo + chunk] for k in INPUT_NAMES}).values()  # in the graph's order
        q, a = model(*inputs, return_activations=True)
        qs.append(q.numpy())
        acts.append(a.numpy())
    return np.concatenate(qs), np.concatenate(acts)


def group_scores(windows: Windows, forecasts: np.ndarray, quantiles: list[float]) -> dict[str, dict]:
    out = {}
    for group in dict.fromkeys(windows.groups):
        idx = [i for i, g in enumerate(windows.groups) if g == group]
        out[group] = score(
            [windows.histories[i] for i in idx],
            [windows.futures[i] for i in idx],
            [windows.season_lengths[i] for i in idx],
            forecasts[idx],
            quantiles,
        )
    return out


SELECTION_GROUPS = ("M3/monthly", "M1/monthly", "M3/quarterly")


def validate(model: torch.nn.Module, windows: Windows, batch: Batch) -> dict:
    q, acts = predict(model, batch.feeds)
    groups = group_scores(windows, to_original_units(q, batch.scales), model.config.quantiles)
    mean = acts.mean(0)  # [L, 5]
    stats = {
        n: dict(zip(STATISTICS, map(float, mean[i]), strict=True)) for i, n in enumerate(model.layer_names)
    }
    model.train()
    selection = float(np.mean([groups[g]["mase"] for g in SELECTION_GROUPS if g in groups]))
    return {"val_mase": selection, "groups": groups, "activations": stats}


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    return warmup_cosine(step, total, cfg.lr, cfg.warmup_steps, min_ratio=0.1)


def train(
    model_cfg: ForecasterConfig,
    cfg: TrainConfig,
    series: list[Series],
    progress: bool = True,
    val: tuple[Windows, Batch] | None = None,
    log: bool = True,
) -> tuple[Forecaster, dict]:
    """Train one model; returns the best-on-validation model and its history. `progress` shows bars, `log` one
    line per epoch (what a background run's log keeps)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = Forecaster(model_cfg)
    start = time.perf_counter()
    pool = training_pool(
        series, model_cfg.context_length, model_cfg.max_horizon, cfg.windows_per_series, cfg.seed
    )
    if val is None:
        windows = validation_windows(series)
        val = windows, windows.batch(model_cfg.context_length, model_cfg.max_horizon)
    if log:
        tqdm.write(
            f"seed {cfg.seed}: {len(pool)} training windows, built in {time.perf_counter() - start:.0f} s"
        )
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    groups = layer_groups(model)
    total = cfg.max_epochs * cfg.steps_per_epoch
    best, best_state, history, bad, step = math.inf, copy.deepcopy(model.state_dict()), [], 0, 0
    for epoch in range(cfg.max_epochs):
        losses, grad_norms = [], {k: 0.0 for k in groups}
        bar = tqdm(range(cfg.steps_per_epoch), desc=f"seed {cfg.seed} epoch {epoch}", disable=not progress)
        for _ in bar:
            loss = pinball_loss(model, pool.take(rng.integers(0, len(pool), cfg.batch_size)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for name, params in groups.items():
                grad_norms[name] += float(
                    torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
                )
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg)
            opt.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        metrics = validate(model, *val)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "grad_norms": {k: v / cfg.steps_per_epoch for k, v in grad_norms.items()},
                "seconds": round(time.perf_counter() - start, 1),
            }
            | metrics
        )
        per_group = " ".join(f"{g} {v['mase']:.4f}" for g, v in metrics["groups"].items())
        if log:
            tqdm.write(
                f"seed {cfg.seed} epoch {epoch}: loss {history[-1]['train_loss']:.4f} "
                f"val MASE {metrics['val_mase']:.4f} ({per_group})"
            )
        if metrics["val_mase"] < best - 1e-4:
            best, best_state, bad = metrics["val_mase"], copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    record = {"best_val_mase": best, "epochs": history, "train_config": asdict(cfg), "windows": len(pool)}
    return model, record


def save_checkpoint(path: Path, model: Forecaster, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        k: v for k, v in model.config.to_dict().items() if k not in ("norm_placement", "residual_scale")
    }
    torch.save({"config": config, "state_dict": model.state_dict(), "record": record}, path)


def load_checkpoint(path: Path) -> tuple[Forecaster, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = Forecaster(ForecasterConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt["record"]


def run_training(
    model_cfg: ForecasterConfig,
    cfg: TrainConfig,
    seeds: list[int],
    run_dir: Path,
    progress: bool = True,
    lookbacks: list[int] | None = None,
) -> list[dict]:
    """Train one member per seed (with its own lookback when given) and write run_dir/seed<k>.pt."""
    from models.forecaster.data import training_series

    series = training_series()
    windows = validation_windows(series)
    val = windows, windows.batch(model_cfg.context_length, model_cfg.max_horizon)
    records = []
    for k, seed in enumerate(seeds):
        member_cfg = replace(model_cfg, lookback=lookbacks[k] if lookbacks else model_cfg.lookback)
        model, record = train(member_cfg, replace(cfg, seed=seed), series, progress, val)
        save_checkpoint(run_dir / f"seed{seed}.pt", model, record)
        records.append(record)
        if progress:
            tqdm.write(f"seed {seed}: best validation MASE {record['best_val_mase']:.4f}")
    return records
