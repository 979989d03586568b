"""Training: pinball loss on direct multi-horizon quantiles, early stopping on validation MASE.

Deterministic for a seed (numpy Generator for sampling, torch seed for init, fixed thread count). Each epoch
records the training loss, validation MASE / pinball, the gradient norm of every layer (mean over the epoch's
steps, before clipping) and the statistics of every recorded activation over the validation windows.
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
from models.forecaster.evaluate import aggregate
from models.forecaster.features import to_original_units
from models.forecaster.model import Forecaster, ForecasterConfig
from models.forecaster.windows import EvalWindows, TrainingSampler, eval_windows
from models.sidecar import STATISTICS


@dataclass
class TrainConfig:
    seed: int = 0
    batch_size: int = 128
    steps_per_epoch: int = 100
    max_epochs: int = 12
    patience: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    grad_clip: float = 1.0
    loss_scale: str = "diff"  # "diff": errors in units of d; "mase": of the window's seasonal naive MAE
    short_prob: float = 0.2  # share of training windows with a random shorter context (left-padded)
    threads: int = 1  # on a shared 2-core machine a second OpenMP thread mostly spins


def tensors(feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in feeds.items()}


def pinball_loss(
    model: Forecaster,
    feeds: dict[str, torch.Tensor],
    target: torch.Tensor,
    target_mask: torch.Tensor,
    mase_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean pinball loss in units of d (the window's mean |first difference|): scale-free, and its gradient with
    respect to the network's residual is bounded. With mase_scale, in units of the window's seasonal naive MAE
    instead (floored at d / 10), which weighs series as MASE does; it did not validate better (docs/forecaster.md)."""
    q, _ = model(**feeds)  # [B, Hz, Q]
    _, d = model.features(feeds["context"], feeds["mask"], feeds["seasonal_lag"])  # [B, 1]
    scale = d if mase_scale is None else torch.maximum(mase_scale.unsqueeze(-1), 0.1 * d)  # [B, 1]
    err = (target.unsqueeze(-1) - q) / scale.unsqueeze(-1)  # [B, Hz, Q]
    tau = torch.tensor(model.config.quantiles)  # [Q]
    loss = torch.maximum(tau * err, (tau - 1) * err) * target_mask.unsqueeze(-1)  # [B, Hz, Q]
    return loss.sum() / (target_mask.sum() * len(tau))


def layer_groups(model: Forecaster) -> dict[str, list[torch.nn.Parameter]]:
    groups = {f"{model.config.cell}{i}": list(layer.parameters()) for i, layer in enumerate(model.layers)}
    return groups | {"head": list(model.head.parameters())}


@torch.no_grad()
def validate(model: Forecaster, windows: EvalWindows) -> dict:
    model.eval()
    q, acts = model(**tensors(windows.batch.feeds), return_activations=True)  # [N, Hz, Q], [N, L, 5]
    forecasts = list(to_original_units(q.numpy(), windows.batch.scales))
    metrics = aggregate(windows, forecasts, model.config.quantiles)["all"]
    mean = acts.mean(0).numpy()  # [L, 5]
    stats = {
        n: dict(zip(STATISTICS, map(float, mean[i]), strict=True)) for i, n in enumerate(model.layer_names)
    }
    model.train()
    return metrics | {"activations": stats}


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train(
    model_cfg: ForecasterConfig, cfg: TrainConfig, series: list[Series], progress: bool = True
) -> tuple[Forecaster, dict]:
    """Train one model; returns the best-on-validation model and its history."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = Forecaster(model_cfg)
    sampler = TrainingSampler(series, model_cfg.context_length, model_cfg.max_horizon, cfg.seed)
    val = eval_windows(series, "val", model_cfg.context_length, model_cfg.max_horizon)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    groups = layer_groups(model)
    total = cfg.max_epochs * cfg.steps_per_epoch
    best, best_state, history, bad, step = math.inf, copy.deepcopy(model.state_dict()), [], 0, 0
    start = time.perf_counter()
    for epoch in range(cfg.max_epochs):
        losses, grad_norms = [], {k: 0.0 for k in groups}
        bar = tqdm(range(cfg.steps_per_epoch), desc=f"seed {cfg.seed} epoch {epoch}", disable=not progress)
        for _ in bar:
            batch = sampler.sample(cfg.batch_size, cfg.short_prob)
            loss = pinball_loss(
                model,
                tensors(batch.feeds),
                torch.from_numpy(batch.target),
                torch.from_numpy(batch.target_mask),
                torch.from_numpy(batch.mase_scale) if cfg.loss_scale == "mase" else None,
            )
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
        metrics = validate(model, val)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "grad_norms": {k: v / cfg.steps_per_epoch for k, v in grad_norms.items()},
                "seconds": round(time.perf_counter() - start, 1),
            }
            | metrics
        )
        if progress:
            tqdm.write(
                f"seed {cfg.seed} epoch {epoch}: loss {history[-1]['train_loss']:.4f} "
                f"val MASE {metrics['mase_gmean']:.4f} val pinball {metrics['pinball']:.4f}"
            )
        if metrics["mase_gmean"] < best - 1e-4:
            best, best_state, bad = metrics["mase_gmean"], copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, {"best_val_mase_gmean": best, "epochs": history, "train_config": asdict(cfg)}


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
    model_cfg: ForecasterConfig, cfg: TrainConfig, seeds: list[int], run_dir: Path, progress: bool = True
) -> list[dict]:
    """Train one model per seed (the ensemble members) and write run_dir/seed<k>.pt."""
    from models.forecaster.data import load_all

    series = load_all()
    records = []
    for seed in seeds:
        model, record = train(model_cfg, replace(cfg, seed=seed), series, progress)
        save_checkpoint(run_dir / f"seed{seed}.pt", model, record)
        records.append(record)
        if progress:
            tqdm.write(f"seed {seed}: best validation MASE (gmean) {record['best_val_mase_gmean']:.4f}")
    return records
