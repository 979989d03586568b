"""A tiny training run on real series lowers the loss, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.forecaster.data import load_all, split  # noqa: E402
from models.forecaster.model import Forecaster, ForecasterConfig  # noqa: E402
from models.forecaster.train import TrainConfig, pinball_loss, tensors, train  # noqa: E402
from models.forecaster.windows import TrainingSampler  # noqa: E402

CFG = ForecasterConfig(context_length=16, max_horizon=6, hidden=8, n_layer=1, quantiles=[0.1, 0.5, 0.9])
TRAIN = TrainConfig(batch_size=32, steps_per_epoch=25, max_epochs=2, warmup_steps=5, lr=1e-2, threads=1)


@pytest.fixture(scope="module")
def series() -> list:
    keep = {"air_passengers", "car_sales", "electricity/Texas", "india_power/Delhi", "microsoft_stock"}
    return [s for s in load_all() if s.name in keep]


def test_training_windows_never_reach_the_validation_tail(series: list) -> None:
    sampler = TrainingSampler(series, 16, 6, seed=0)
    for full, seen in zip(series, sampler.train, strict=True):
        assert len(seen.values) == split(full).train_end < split(full).val_origins[0] + 1
        np.testing.assert_array_equal(seen.values, full.values[: len(seen.values)])


def test_tiny_training_run_lowers_the_loss_and_is_deterministic(series: list) -> None:
    batch = TrainingSampler(series, 16, 6, seed=123).sample(128, short_prob=0.0)
    args = (tensors(batch.feeds), torch.from_numpy(batch.target), torch.from_numpy(batch.target_mask))
    torch.manual_seed(TRAIN.seed)
    with torch.no_grad():
        before = float(pinball_loss(Forecaster(CFG).eval(), *args))
    model, record = train(CFG, TRAIN, series, progress=False)
    with torch.no_grad():
        after = float(pinball_loss(model, *args))
    assert after < 0.9 * before
    epoch = record["epochs"][0]
    assert set(epoch["grad_norms"]) == {"lstm0", "head"} and all(v > 0 for v in epoch["grad_norms"].values())
    assert set(epoch["activations"]) == set(model.layer_names)
    _, again = train(CFG, TRAIN, series, progress=False)
    assert again["epochs"][-1]["train_loss"] == record["epochs"][-1]["train_loss"]
