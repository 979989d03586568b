"""What every model kind's network shares: the norms, the in-graph activation statistics, the learning-rate
schedule. One home, so a new statistic or norm is written once (and the sidecar names the statistics)."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.sidecar import STATISTICS


class RMSNorm(nn.Module):
    """Root-mean-square norm written with pow/mean/rsqrt so that it exports at opset 18 (no RMSNormalization op).

    `bias=True` adds a shift, as LayerNorm has (the forecaster's gate norms carry the gate bias there)."""

    def __init__(self, dim: int, eps: float, bias: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight  # (..., D)
        return y if self.bias is None else y + self.bias


def make_norm(norm_type: str, dim: int, eps: float, bias: bool = False) -> nn.Module:
    if norm_type == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    if norm_type == "rmsnorm":
        return RMSNorm(dim, eps, bias)
    raise ValueError(f"unknown norm_type {norm_type!r} (layernorm|rmsnorm)")


def masked_statistics(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The sidecar's STATISTICS of x over the real positions of each row, so they are batch-invariant.

    x: (B, L, D), mask: (B, L) or (B, L, 1) float 0/1 -> (B, len(STATISTICS)) in STATISTICS order
    """
    w = mask if mask.dim() == 3 else mask.unsqueeze(-1)  # (B, L, 1)
    n = (w.sum(dim=(1, 2)) * x.shape[-1]).clamp(min=1.0)  # (B,)
    mean = (x * w).sum(dim=(1, 2)) / n  # (B,)
    abs_x = x.abs() * w  # (B, L, D); padding becomes 0, never above a real |x|
    values = {
        "mean": mean,
        "std": torch.sqrt(((x - mean[:, None, None]) * w).pow(2).sum(dim=(1, 2)) / n),
        "rms": torch.sqrt((x.pow(2) * w).sum(dim=(1, 2)) / n),
        "abs_mean": abs_x.sum(dim=(1, 2)) / n,
        "abs_max": abs_x.amax(dim=(1, 2)),
    }
    return torch.stack([values[name] for name in STATISTICS], dim=1)  # (B, n_statistics)


def warmup_cosine(step: int, total: int, lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to `lr` over `warmup` steps, then cosine decay to `min_ratio * lr` at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
