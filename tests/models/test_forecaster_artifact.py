"""The committed `forecaster` artifact: sidecar contract, checksums, and behaviour through ONNX Runtime."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from service.runtime.providers import session_options

FOLDER = Path(__file__).resolve().parents[2] / "models" / "forecaster" / "artifacts" / "forecaster"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((FOLDER / "sidecar.json").read_text())


@pytest.fixture(scope="module")
def sessions(meta: dict) -> dict[str, ort.InferenceSession]:
    return {
        key: ort.InferenceSession(
            str(FOLDER / entry["path"]), session_options(1), providers=["CPUExecutionProvider"]
        )
        for key, entry in meta["files"].items()
    }


def _forecast(meta: dict, session: ort.InferenceSession, series: list, seasons: list[int]) -> np.ndarray:
    features = importlib.import_module(meta["forecaster"]["features"])
    feeds, scales = features.make_inputs(series, seasons, meta["forecaster"]["context_length"])
    return features.to_original_units(session.run(["quantiles"], feeds)[0], scales)


def test_sidecar_checksums_and_sizes_match_the_files(meta: dict) -> None:
    total = 0
    for entry in meta["files"].values():
        data = (FOLDER / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        total += len(data)
    assert total <= 4 * 1024 * 1024  # both graphs together (issue 11)


def test_sidecar_declares_the_forecaster_contract(meta: dict) -> None:
    assert (meta["format_version"], meta["name"], meta["kind"]) == (2, "forecaster", "forecaster")
    block = meta["forecaster"]
    assert block["max_horizon"] >= 24 and {0.1, 0.5, 0.9} <= set(block["quantiles"])
    assert block["quantiles"] == sorted(block["quantiles"])
    assert meta["config"]["norm_placement"] in ("ln-lstm", "ln-gru")
    assert meta["config"]["residual_scale"] == 1.0 and meta["config"]["parameters"] > 0
    names = [layer["name"] for layer in meta["layers"]]
    assert [layer["index"] for layer in meta["layers"]] == list(range(len(names)))
    assert set(meta["reference_activations"]) == set(names)
    assert all(set(v) == set(meta["statistics"]) for v in meta["reference_activations"].values())
    assert block["min_length"] == 8 and block["features"] == "models.forecaster.features"
    assert len(block["lookbacks"]) == meta["config"]["ensemble_members"] == len(meta["training"]["members"])
    assert max(block["lookbacks"]) <= block["context_length"]
    validation = meta["training"]["validation"]
    assert {"M3/monthly", "M1/monthly", "M3/quarterly"} <= set(validation)


def test_graphs_match_the_declared_inputs_and_outputs(meta: dict, sessions: dict) -> None:
    declared = [(i["name"], i["shape"]) for i in meta["onnx"]["inputs"]]
    for key, session in sessions.items():
        got = [(i.name, i.shape) for i in session.get_inputs()]
        assert got == declared
        outs = {o.name: o.shape for o in session.get_outputs()}
        expected = meta["onnx"]["outputs"] + (
            meta["onnx"]["diagnostic_outputs"] if key == "diagnostic" else []
        )
        assert outs == {o["name"]: o["shape"] for o in expected}
        proto = onnx.load(FOLDER / meta["files"][key]["path"])
        assert proto.ir_version == meta["onnx"]["ir_version"]
        assert not {n.op_type for n in proto.graph.node} & {"Loop", "Scan"}
    assert meta["onnx"]["diagnostic_outputs"][0]["shape"][1] == len(meta["layers"])


def test_committed_model_is_scale_equivariant_monotone_and_handles_edge_cases(
    meta: dict, sessions: dict
) -> None:
    t = np.arange(150)
    seasonal = 500 + 3 * t + 80 * np.sin(2 * np.pi * t / 12)
    series = [seasonal, np.full(50, 42.0), np.arange(1.0, 9.0)]
    fast = sessions["fast"]
    q = _forecast(meta, fast, series, [12, 1, 1])
    q1000 = _forecast(meta, fast, [1000 * s for s in series], [12, 1, 1])
    np.testing.assert_allclose(q1000, 1000 * q, rtol=1e-4)
    assert np.isfinite(q).all() and (np.diff(q, axis=-1) >= 0).all()
    median = meta["forecaster"]["quantiles"].index(0.5)
    np.testing.assert_allclose(q[1, :, median], 42.0, rtol=0.005)  # a constant stays (nearly) constant
    np.testing.assert_allclose(q[1], 42.0, rtol=0.05)  # within a narrow band
    np.testing.assert_allclose(q[0, :12, median], seasonal[-12:] + 36, rtol=0.1)  # follows the season


def test_fast_and_diagnostic_graphs_give_identical_quantiles(meta: dict, sessions: dict) -> None:
    rng = np.random.default_rng(0)
    series = [rng.lognormal(size=n) for n in (20, 200)]
    fast = _forecast(meta, sessions["fast"], series, [7, 1])
    diag = _forecast(meta, sessions["diagnostic"], series, [7, 1])
    np.testing.assert_allclose(fast, diag, rtol=1e-6)
