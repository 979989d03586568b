"""Turning series into batches: training windows before the held-out tails, and rolling-origin evaluation windows.

Batches are built with features.make_inputs, the very function the service calls, so training and serving
preprocessing cannot diverge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.forecaster.data import Series, split
from models.forecaster.features import make_inputs

MIN_CONTEXT = 8


@dataclass(frozen=True)
class Batch:
    feeds: dict[str, np.ndarray]  # the graph inputs, float32
    scales: np.ndarray  # [B]
    target: np.ndarray  # [B, max_horizon] in scaled units (0 where missing)
    target_mask: np.ndarray  # [B, max_horizon]
    mase_scale: (
        np.ndarray
    )  # [B] in-sample seasonal naive MAE of the context, scaled units (the MASE denominator)


def make_batch(
    series: list[Series], origins: list[int], lengths: list[int], context_length: int, max_horizon: int
) -> Batch:
    """Row i: context = series[i].values[origin - length : origin], target = the next max_horizon values.

    Targets stop at the series' training end for training windows and at origin + horizon for evaluation ones;
    the caller passes the matching `ends` through the series it gives (see training_sampler / eval_windows).
    """
    contexts = [s.values[max(0, o - n) : o] for s, o, n in zip(series, origins, lengths, strict=True)]
    feeds, scales = make_inputs(contexts, [s.season_length for s in series], context_length, max_horizon)
    target = np.zeros((len(series), max_horizon), dtype=np.float32)
    target_mask = np.zeros_like(target)
    mase_scale = np.zeros(len(series), dtype=np.float32)
    for i, (s, o) in enumerate(zip(series, origins, strict=True)):
        y = s.values[o : o + max_horizon] / scales[i]
        target[i, : len(y)] = y
        target_mask[i, : len(y)] = 1.0
        x = contexts[i] / scales[i]
        m = s.season_length if s.season_length < len(x) else 1
        mase_scale[i] = np.mean(np.abs(x[m:] - x[:-m])) if len(x) > m else 0.0
    return Batch(feeds, scales, target, target_mask, mase_scale)


class TrainingSampler:
    """Samples (series, origin, context length) for training; targets never reach a series' validation tail.

    Every dataset gets weight sqrt(its number of series), split evenly over its series and then over their
    origins, so the 61 electricity series or the long stock histories do not drown the rest.
    """

    def __init__(self, series: list[Series], context_length: int, max_horizon: int, seed: int) -> None:
        self.context_length, self.max_horizon = context_length, max_horizon
        self.rng = np.random.default_rng(seed)
        self.train = []
        for s in series:
            end = split(s).train_end
            if end > MIN_CONTEXT:  # a series view whose values stop at the training end
                self.train.append(Series(s.name, s.dataset, s.freq, s.season_length, s.values[:end]))
        sizes: dict[str, int] = {}
        for s in self.train:
            sizes[s.dataset] = sizes.get(s.dataset, 0) + 1
        w = np.array([sizes[s.dataset] ** -0.5 for s in self.train])
        self.series_p = w / w.sum()

    def sample(self, batch_size: int, short_prob: float = 0.2) -> Batch:
        idx = self.rng.choice(len(self.train), size=batch_size, p=self.series_p)
        chosen = [self.train[i] for i in idx]
        origins = [int(self.rng.integers(MIN_CONTEXT, len(s.values))) for s in chosen]
        lengths = [
            int(self.rng.integers(MIN_CONTEXT, self.context_length + 1))
            if self.rng.random() < short_prob
            else self.context_length
            for _ in chosen
        ]
        return make_batch(chosen, origins, lengths, self.context_length, self.max_horizon)


@dataclass(frozen=True)
class EvalWindows:
    series: list[Series]  # one entry per window
    origins: list[int]
    batch: Batch  # targets cut to each series' horizon


def eval_windows(series: list[Series], which: str, context_length: int, max_horizon: int) -> EvalWindows:
    """Rolling-origin windows: which = "val" or "test"."""
    rows, origins = [], []
    for s in series:
        sp = split(s)
        for o in sp.val_origins if which == "val" else sp.test_origins:
            rows.append(Series(s.name, s.dataset, s.freq, s.season_length, s.values[: o + s.horizon]))
            origins.append(o)
    batch = make_batch(rows, origins, [context_length] * len(rows), context_length, max_horizon)
    return EvalWindows(rows, origins, batch)
