"""The CUDA path's pieces that run on any machine: the provider's options, sessions and padding, the float16 graphs
and their parity gate (on the CPU provider, which runs the same float16 graphs)."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bench.artifacts import KINDS, bench_items, default_artifact
from models.sidecar import FAST, read
from service.metrics import Metrics
from service.runtime.base import Artifact, RuntimeOptions
from service.runtime.precision import FP16_TOLERANCE, relative_error, to_fp16
from service.runtime.providers import CPU, cuda_device_count, cuda_options, session_options, usable_cores
from service.runtime.sessions import (
    CudaSession,
    Session,
    graph_batch_sizes,
    open_session,
    pad_rows,
    signature,
)
from tests.service.tiny_kind import KIND as TINY
from tests.service.tiny_kind import build_artifact

CUDA_LIBRARY = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"


def test_cuda_options_are_names_and_values_the_installed_cuda_provider_parses() -> None:
    if not CUDA_LIBRARY.exists():
        pytest.skip(f"onnxruntime {ort.__version__} here has no CUDA provider library")
    options = cuda_options(0, cuda_graph=True, fp16=True)
    assert set(options) == {
        "device_id",
        "arena_extend_strategy",
        "do_copy_in_default_stream",
        "use_tf32",
        "cudnn_conv_algo_search",
        "enable_cuda_graph",
        "enable_skip_layer_norm_strict_mode",
    }
    with CUDA_LIBRARY.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as library:
        unknown = [k for k in options if library.find(b"\0" + k.encode() + b"\0") < 0]
        assert not unknown, f"option names the CUDA provider does not parse: {unknown}"
        for value in ("kSameAsRequested", "EXHAUSTIVE"):
            assert library.find(b"\0" + value.encode() + b"\0") >= 0, value


def test_graph_and_fp16_options_are_added_only_when_asked_for() -> None:
    plain = cuda_options(1, cuda_graph=False, fp16=False)
    assert (
        plain["device_id"] == "1" and plain["use_tf32"] == "0" and plain["do_copy_in_default_stream"] == "1"
    )
    assert "enable_cuda_graph" not in plain and "enable_skip_layer_norm_strict_mode" not in plain
    assert cuda_options(0, cuda_graph=True, fp16=False)["enable_cuda_graph"] == "1"


def test_cuda_sessions_get_one_thread_and_cpu_sessions_keep_the_machine_fit() -> None:
    assert session_options(0, on_cuda=True).intra_op_num_threads == 1
    assert session_options(0).intra_op_num_threads == min(usable_cores(), 8)
    assert (
        session_options(3, on_cuda=True).intra_op_num_threads == 3 == session_options(3).intra_op_num_threads
    )


def test_captured_batch_sizes_are_powers_of_two_up_to_the_largest_batch() -> None:
    assert graph_batch_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert graph_batch_sizes(24) == [1, 2, 4, 8, 16, 24]
    assert graph_batch_sizes(1) == [1]


def test_padding_appends_copies_of_the_first_row_and_keeps_dtypes() -> None:
    feeds = {"ids": np.array([[5, 6], [7, 8], [9, 1]], np.int64), "x": np.ones((3, 4), np.float32)}
    padded = pad_rows(feeds, 8)
    assert padded["ids"].shape == (8, 2) and padded["ids"].dtype == np.int64
    np.testing.assert_array_equal(padded["ids"][:3], feeds["ids"])
    np.testing.assert_array_equal(padded["ids"][3:], np.repeat(feeds["ids"][:1], 5, 0))
    assert pad_rows(feeds, 3)["x"] is feeds["x"]
    assert signature(padded) == signature(feeds, 8) != signature(feeds)


def test_on_the_cpu_a_session_is_plain_onnxruntime_with_bitwise_identical_answers() -> None:
    artifact = default_artifact("chatbot")
    runtime = KINDS["chatbot"].runtime(artifact, RuntimeOptions("cpu", 1))
    runtime.prepare()
    feeds = runtime.feeds(bench_items(runtime, 32))
    session = open_session(artifact.file(FAST), [CPU], 1, cuda_graphs=True)
    assert type(session) is Session and not isinstance(session, CudaSession)
    assert not session.captures_graphs and session.capture(feeds) is False
    plain = ort.InferenceSession(str(artifact.file(FAST)), session_options(1), providers=[CPU])
    np.testing.assert_array_equal(session.run(feeds, ["logits"])[0], plain.run(["logits"], feeds)[0])


@pytest.mark.parametrize("kind", ["chatbot", "forecaster"])
def test_the_fp16_graph_of_each_bundled_model_matches_fp32_within_the_tolerance(kind: str) -> None:
    artifact = default_artifact(kind)
    runtime = KINDS[kind].runtime(artifact, RuntimeOptions("cpu", 1))
    runtime.prepare()
    feeds = runtime.feeds(bench_items(runtime, 32))
    fp32 = open_session(artifact.file(FAST), [CPU], 1)
    fp16 = open_session(to_fp16(artifact.file(FAST)), [CPU], 1)
    names = fp32.output_names
    reference, half = fp32.run(feeds, names), fp16.run(feeds, names)
    assert [a.dtype for a in half] == [a.dtype for a in reference]  # float32 in and out
    error = relative_error(reference, half)
    assert 0 < error <= FP16_TOLERANCE  # > 0: the arithmetic really is float16


def test_a_chatbot_served_in_fp16_gives_the_fp32_intents_on_validation_utterances() -> None:
    artifact = default_artifact("chatbot")
    runtimes = {p: KINDS["chatbot"].runtime(artifact, RuntimeOptions("cpu", 1, p)) for p in ("fp32", "fp16")}
    for runtime in runtimes.values():
        runtime.load()
    assert runtimes["fp16"].precision == "fp16" and runtimes["fp16"].precision_error <= FP16_TOLERANCE
    items = bench_items(runtimes["fp32"], 128)
    answers = {p: runtime.predict(items, False) for p, runtime in runtimes.items()}
    intents = {p: [a.result.intent for a in out] for p, out in answers.items()}
    assert intents["fp16"] == intents["fp32"]
    logits = {p: [np.stack([a.result.logits for a in out])] for p, out in answers.items()}
    assert relative_error(logits["fp32"], logits["fp16"]) <= FP16_TOLERANCE


def _tiny(tmp_path: Path, scale: float, precision: str) -> Any:
    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(4, 2)) * scale, rng.normal(size=2) * scale
    folder = build_artifact(tmp_path / "models", "tiny-x", weight, bias)
    runtime = TINY.runtime(
        Artifact(folder, read(folder / "sidecar.json")), RuntimeOptions("cpu", 1, precision)
    )
    runtime.load()
    return runtime


def test_an_fp16_graph_whose_outputs_overflow_float16_is_refused_and_fp32_served(tmp_path: Path) -> None:
    # |y| ~ 1e5, beyond 65504 (the largest float16) already on the warm-up batches; the float16 weights are clipped
    runtime = _tiny(tmp_path, 1e5, "fp16")
    assert runtime.precision == "fp32" and runtime.precision_error > 0.1
    x = np.array([[3.0, -1.0, 0.5, 2.0]], np.float32)
    reference = _tiny(tmp_path / "ref", 1e5, "fp32")
    np.testing.assert_array_equal(
        runtime.run_graph(False, {"x": x}, ["y"])[0][0],
        reference.run_graph(False, {"x": x}, ["y"])[0][0],
    )
    assert np.abs(reference.run_graph(False, {"x": x}, ["y"])[0][0]).max() > 65504


def test_an_fp16_graph_within_the_tolerance_is_kept(tmp_path: Path) -> None:
    runtime = _tiny(tmp_path, 1.0, "fp16")
    assert runtime.precision == "fp16" and 0 < runtime.precision_error <= FP16_TOLERANCE


def test_relative_error_is_scale_free_and_infinite_for_non_finite_or_misshapen_outputs() -> None:
    ref = [np.array([1.0, -2.0, 4.0], np.float32)]
    assert relative_error(ref, [ref[0] + np.float32(0.04)]) == pytest.approx(0.01)
    assert relative_error([ref[0] * 1000], [ref[0] * 1000 + 40]) == pytest.approx(0.01)
    assert relative_error(ref, [np.array([1.0, np.nan, 4.0], np.float32)]) == float("inf")
    assert relative_error(ref, [np.array([1.0, np.inf, 4.0], np.float32)]) == float("inf")
    assert relative_error(ref, [ref[0][:2]]) == float("inf")
    assert relative_error(ref, ref) == 0.0


@pytest.mark.skipif(
    cuda_device_count() > 0, reason="a GPU is here: tests/gpu/test_cuda_runtime.py checks its gauges"
)
def test_without_a_gpu_there_are_no_gpu_gauges_and_the_scrape_still_works() -> None:
    names = {family.name for family in Metrics().registry.collect()}
    assert "lnserve_request_success" in names
    assert not {name for name in names if name.startswith("lnserve_gpu")}


def test_without_onnx_fp16_is_declined_with_a_warning_and_the_model_served_in_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    build_artifact(tmp_path / "models", "tiny-x", np.eye(4, 2), np.zeros(2))  # onnx is needed to write it
    monkeypatch.setitem(sys.modules, "onnx", None)  # as in the CPU image, which has no onnx
    folder = tmp_path / "models" / "tiny" / "artifacts" / "tiny-x"
    runtime = TINY.runtime(Artifact(folder, read(folder / "sidecar.json")), RuntimeOptions("cpu", 1, "fp16"))
    runtime.load()
    assert runtime.precision == "fp32"
    assert "fp16 needs the onnx package" in caplog.text and "serving fp32" in caplog.text
    y = runtime.run_graph(False, {"x": np.array([[3.0, -1.0, 0.5, 2.0]], np.float32)}, ["y"])[0][0]
    assert y.shape == (1, 2) and np.isfinite(y).all()
