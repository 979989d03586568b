"""A freshly built tiny forecaster through ONNX Runtime: parity, equivariance, edge cases (short context)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from models.forecaster.export import export_onnx  # noqa: E402
from models.forecaster.features import INPUT_NAMES, make_inputs, to_original_units  # noqa: E402
from models.forecaster.model import Forecaster, ForecasterConfig, ForecasterEnsemble  # noqa: E402
from service.runtime.providers import session_options  # noqa: E402

CONTEXT, HORIZON = 12, 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[ForecasterEnsemble, Path]:
    """Two members with different lookbacks (12 and 8 of the 12 context steps), as the shipped ensemble."""
    torch.manual_seed(0)
    cfg = ForecasterConfig(
        context_length=CONTEXT, lookback=CONTEXT, max_horizon=HORIZON, hidden=8, quantiles=[0.1, 0.5, 0.9]
    )
    members = [Forecaster(cfg), Forecaster(replace(cfg, lookback=8))]
    # non-zero Theta weights, so the exported combination is covered by the parity test
    model = ForecasterEnsemble(members, theta_weights=[0.0, 0.2, 0.4, 0.0]).eval()
    with torch.no_grad():  # a trained-looking head, so the quantiles are not all equal to the anchor
        for m in model.members:
            m.head[-1].weight.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("tiny")
    export_onnx(model, folder / "fast.onnx", diagnostics=False)
    export_onnx(model, folder / "diagnostic.onnx", diagnostics=True)
    return model, folder


def _session(folder: Path, diag: bool) -> ort.InferenceSession:
    name = "diagnostic.onnx" if diag else "fast.onnx"
    return ort.InferenceSession(str(folder / name), session_options(1), providers=["CPUExecutionProvider"])


def _series() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    t = np.arange(40)
    return [
        100 + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 40),  # longer than the context: truncated
        rng.normal(0, 1, 10).cumsum() + 5,  # shorter: left-padded
        np.abs(rng.normal(3, 2, CONTEXT)),  # exactly the context
    ]


def _forecast(folder: Path, series: list[np.ndarray], seasons: list[int]) -> np.ndarray:
    feeds, scales = make_inputs(series, seasons, CONTEXT, HORIZON)
    return to_original_units(_session(folder, False).run(None, feeds)[0], scales)


def test_graphs_are_unrolled_opset_18_ir_10(tiny: tuple) -> None:
    _, folder = tiny
    for name in ("fast.onnx", "diagnostic.onnx"):
        proto = onnx.load(folder / name)
        assert proto.ir_version == 10
        assert {o.domain: o.version for o in proto.opset_import}[""] == 18
        assert not {n.op_type for n in proto.graph.node} & {"Loop", "Scan", "If"}


def test_onnx_runtime_matches_pytorch_for_quantiles_and_every_statistic(tiny: tuple) -> None:
    model, folder = tiny
    feeds, _ = make_inputs(_series(), [12, 1, 1], CONTEXT, HORIZON)
    q_ort, acts_ort = _session(folder, True).run(None, feeds)
    with torch.no_grad():
        q, acts = model(*(torch.from_numpy(feeds[k]) for k in INPUT_NAMES), return_activations=True)
    assert acts_ort.shape == (3, len(model.layer_names), 5) == tuple(acts.shape)
    np.testing.assert_allclose(q_ort, q.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(acts_ort, acts.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(_session(folder, False).run(None, feeds)[0], q_ort)


def test_forecast_of_1000_times_a_series_is_1000_times_the_forecast(tiny: tuple) -> None:
    _, folder = tiny
    series = _series()
    base = _forecast(folder, series, [12, 1, 1])
    scaled = _forecast(folder, [1000 * s for s in series], [12, 1, 1])
    np.testing.assert_allclose(scaled, 1000 * base, rtol=1e-5)


def test_constant_series_gives_a_finite_flat_forecast(tiny: tuple) -> None:
    _, folder = tiny
    q = _forecast(folder, [np.full(30, 7.0), np.zeros(8)], [12, 1])
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q[0], 7.0, rtol=0.02)  # d is floored at 0.1% per step: the band stays narrow
    np.testing.assert_allclose(q[1], 0.0, atol=0.05)


def test_eight_point_series_works_and_quantiles_are_monotone(tiny: tuple) -> None:
    _, folder = tiny
    rng = np.random.default_rng(0)
    series = [np.arange(1.0, 9.0)] + [rng.lognormal(size=n) for n in (3, 8, 20, 40)]
    series[2] = series[2] - 1.5  # negative values take the shifted path
    q = _forecast(folder, series, [1, 1, 4, 7, 12])
    assert q.shape == (5, HORIZON, 3)
    assert np.isfinite(q).all()
    assert (np.diff(q, axis=-1) >= 0).all()


def test_statistics_of_a_row_do_not_depend_on_its_batch(tiny: tuple) -> None:
    _, folder = tiny
    series = _series()
    feeds, _ = make_inputs(series, [12, 1, 1], CONTEXT, HORIZON)
    alone, _ = make_inputs(series[1:2], [1], CONTEXT, HORIZON)
    session = _session(folder, True)
    batched = session.run(None, feeds)
    single = session.run(None, alone)
    np.testing.assert_allclose(single[0][0], batched[0][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single[1][0], batched[1][1], rtol=1e-5, atol=1e-6)


def test_theta_weight_one_puts_the_median_on_the_theta_forecast(tiny: tuple) -> None:
    model, _ = tiny
    feeds, _ = make_inputs(_series(), [12, 1, 4], CONTEXT, HORIZON)
    inputs = [torch.from_numpy(feeds[k]) for k in INPUT_NAMES]
    full = ForecasterEnsemble(list(model.members), theta_weights=[1.0, 1.0, 1.0, 1.0]).eval()
    none = ForecasterEnsemble(list(model.members)).eval()
    with torch.no_grad():
        q_full, _ = full(*inputs)
        q_none, _ = none(*inputs)
    np.testing.assert_allclose(q_full[..., 1].numpy(), feeds["anchor"], atol=1e-6)  # the median (0.5)
    np.testing.assert_allclose(  # the band keeps its shape around the new median
        (q_full - q_full[..., 1:2]).numpy(), (q_none - q_none[..., 1:2]).numpy(), atol=1e-6
    )
