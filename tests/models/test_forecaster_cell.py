"""The LayerNorm-LSTM / -GRU layers against a direct step-by-step numpy computation of the equations."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.forecaster.model import LNGRULayer, LNLSTMLayer  # noqa: E402


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b


def _sig(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _params(layer: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in layer.state_dict().items()}


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 6, 3))  # [B, T, n_in]
    mask = np.ones((2, 6))
    mask[1, :2] = 0  # the second row is left-padded by two steps
    return x, mask


def _randomise(layer: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():  # non-trivial norm gains and biases, so every term is exercised
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1.0 if p.ndim == 1 else 0.0))


def test_ln_lstm_layer_matches_reference_equations_including_padding() -> None:
    layer = LNLSTMLayer(3, 4, "layernorm", 1e-5).double()
    _randomise(layer)
    p = _params(layer)
    x, mask = _inputs()
    with torch.no_grad():
        hs, acts = layer(torch.from_numpy(x), torch.from_numpy(mask), record=False)
    for b in range(2):
        h, c = np.zeros(4), np.zeros(4)
        for t in range(6):
            gates = _ln(x[b, t] @ p["w_ih.weight"].T, p["norm_ih.weight"], p["norm_ih.bias"])
            gates = gates + _ln(h @ p["w_hh.weight"].T, p["norm_hh.weight"], p["norm_hh.bias"])
            i, f, o, g = np.split(gates, 4)
            c_new = _sig(f) * c + _sig(i) * np.tanh(g)  # the raw cell is carried (Ba et al.)
            h_new = _sig(o) * np.tanh(_ln(c_new, p["norm_c.weight"], p["norm_c.bias"]))
            if mask[b, t]:
                h, c = h_new, c_new
                np.testing.assert_allclose(hs[b, t].numpy(), h, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(acts["last"][b].numpy(), h, rtol=1e-10, atol=1e-12)


def test_ln_gru_layer_matches_reference_equations() -> None:
    layer = LNGRULayer(3, 4, "layernorm", 1e-5).double()
    _randomise(layer)
    p = _params(layer)
    x, mask = _inputs(1)
    with torch.no_grad():
        _, acts = layer(torch.from_numpy(x), torch.from_numpy(mask), record=False)
    for b in range(2):
        h = np.zeros(4)
        for t in range(6):
            gi = np.split(_ln(x[b, t] @ p["w_ih.weight"].T, p["norm_ih.weight"], p["norm_ih.bias"]), 3)
            gh = np.split(_ln(h @ p["w_hh.weight"].T, p["norm_hh.weight"], p["norm_hh.bias"]), 3)
            r, z = _sig(gi[0] + gh[0]), _sig(gi[1] + gh[1])
            h_new = (1 - z) * np.tanh(gi[2] + r * gh[2]) + z * h
            h = h_new if mask[b, t] else h
        np.testing.assert_allclose(acts["last"][b].numpy(), h, rtol=1e-10, atol=1e-12)


def test_left_padding_leaves_the_state_as_for_the_unpadded_series() -> None:
    layer = LNLSTMLayer(3, 4, "rmsnorm", 1e-5).double()
    _randomise(layer)
    x, mask = _inputs()
    with torch.no_grad():
        _, padded = layer(torch.from_numpy(x[1:]), torch.from_numpy(mask[1:]), record=False)
        _, alone = layer(torch.from_numpy(x[1:, 2:]), torch.ones(1, 4, dtype=torch.float64), record=False)
    np.testing.assert_allclose(padded["last"].numpy(), alone["last"].numpy(), rtol=1e-12)
