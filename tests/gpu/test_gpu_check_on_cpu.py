"""The GPU check's machinery, on the CPU: the report on recorded (fake) results, the stage runner's limits and partial
results, the load generator against a real server, torch weights recovered from a graph, the parts and the plan."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.bodies import bodies_for
from bench.gpu import check, install, plan
from bench.gpu.check import Stage, merge, publish, run_stage
from bench.gpu.loadgen import LoadGenerator
from bench.gpu.report import render, targets
from bench.gpu.torch_weights import recover_state, torch_outputs
from bench.servers import ServerSpec, running
from models.forecaster.export import example_inputs, export_onnx
from models.forecaster.features import INPUT_NAMES
from models.forecaster.model import Forecaster, ForecasterConfig, ForecasterEnsemble

RECORDED = Path(__file__).parent / "data" / "recorded_results.json"


def test_the_report_judges_each_target_from_the_recorded_figures() -> None:
    results = json.loads(RECORDED.read_text())
    b1, compiled, service, fp16, intents = targets(results)
    assert b1.status == "met" and b1.measured.startswith(
        "worst 0.210 ms"
    )  # the 64-token bucket is the slowest
    assert compiled.status == "missed" and "32x32: 0.90x" in compiled.measured  # ORT slower in one bucket
    assert service.status == "met" and service.measured.startswith("1.05 ms")
    assert fp16.status == "met" and fp16.measured.startswith("worst 9.0e-04")
    assert intents.status == "missed" and intents.measured == "chatbot-post: 508/509"
    report = render(results)
    assert "| /v1/chat | 64 | GPU    | 4000" in report and "2.00x" in report  # req/s against the CPU server
    assert "timed out (partial results kept)" in report and "FAKE GPU" in report


def test_without_results_every_target_is_not_measured() -> None:
    assert {t.status for t in targets({})} == {"not measured"}
    assert "not measured" in render({})


def test_a_stage_past_its_limit_is_stopped_and_its_partial_results_kept(tmp_path: Path) -> None:
    stage = Stage("sleepy", 0.5, 1, ["tests.gpu.stage_fixture", "sleep"])
    outcome = run_stage(stage, tmp_path, 4.0, tmp_path / "log.txt")
    assert outcome["status"] == "timed out (partial results kept)" and 4.0 <= outcome["seconds"] < 20
    assert json.loads((tmp_path / "sleepy.json").read_text()) == {"rows": [{"step": 1}]}


def test_a_failing_stage_is_reported_with_its_error_and_the_report_still_written(tmp_path: Path) -> None:
    stage = Stage(
        "latency", 0.5, 1, ["tests.gpu.stage_fixture", "fail"]
    )  # results land where `latency`'s would
    outcome = run_stage(stage, tmp_path, 30.0, tmp_path / "log.txt")
    assert outcome["status"] == "failed (exit 1)" and "this stage fails on purpose" in outcome["note"]
    publish(tmp_path, merge(tmp_path, {"started": "now"}, {"latency": outcome}))
    assert json.loads((tmp_path / "results.json").read_text())["latency"] == {"rows": [{"step": 1}]}
    assert "failed (exit 1)" in (tmp_path / "report.md").read_text()


def test_stages_that_cannot_get_their_minimum_time_are_skipped_and_say_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"GPU_CHECK_WORK": str(tmp_path / "work"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu.check", "--out", str(out), "--seconds", "5"],
        cwd=check.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    stages = json.loads((out / "results.json").read_text())["stages"]
    assert list(stages) == [s.name for s in check.STAGES]
    assert {s["status"] for s in stages.values()} == {"skipped"}
    assert "| not measured |" in (out / "report.md").read_text()


def test_the_load_generator_drives_a_real_server_and_counts_failures() -> None:
    bodies = bodies_for("/v1/chat")
    with running([ServerSpec("no-op", noop=True)], timeout_s=60) as urls, LoadGenerator(2) as load:
        served = load.run(urls["no-op"] + "/v1/chat", bodies, 4, 1.0)
        missing = load.run(urls["no-op"] + "/no/such/route", bodies, 2, 0.5)
    assert served.errors == 0 and served.ok_per_s > 50
    assert 0 < served.p50_ms <= served.p99_ms < 1000
    assert missing.requests > 0 and missing.errors == missing.requests and missing.ok_per_s == 0


def test_the_load_generator_sends_traffic_only_to_the_loopback() -> None:
    with LoadGenerator(1) as load, pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        load.run("http://example.com/v1/chat", ["{}"], 1, 0.1)


def test_torch_weights_are_recovered_from_a_graph_including_its_renamed_transposed_ones(
    tmp_path: Path,
) -> None:
    config = ForecasterConfig(
        context_length=24, lookback=24, max_horizon=4, hidden=8, quantiles=[0.1, 0.5, 0.9]
    )
    torch.manual_seed(1)
    trained = ForecasterEnsemble([Forecaster(config)]).eval()
    export_onnx(trained, tmp_path / "fast.onnx", diagnostics=False)
    torch.manual_seed(2)
    other = ForecasterEnsemble([Forecaster(config)]).eval()
    state = recover_state(other, lambda m, p: export_onnx(m, p, diagnostics=False), tmp_path / "fast.onnx")
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    other.load_state_dict(state)
    feeds = {name: t.numpy() for name, t in zip(INPUT_NAMES, example_inputs(trained, batch=3), strict=True)}
    np.testing.assert_array_equal(torch_outputs(other, feeds), torch_outputs(trained, feeds))


def test_parts_fit_a_call_and_the_last_rides_with_the_check_only_when_it_fits() -> None:
    mib = plan.MIB
    p = plan.plan(wheel=255 * mib, tree=9 * mib, check_extra=5 * mib)
    assert p.part_bytes == 53 * mib and p.parts == 5 and p.last_with_check  # 9 + 5 + 43 <= 62
    tight = plan.plan(wheel=255 * mib, tree=9 * mib, check_extra=20 * mib)
    assert not tight.last_with_check  # 9 + 20 + 43 > 62: the last part gets its own call
    with pytest.raises(SystemExit, match="no room"):
        plan.plan(wheel=255 * mib, tree=60 * mib, check_extra=0)


def test_split_parts_join_back_into_the_wheel_and_a_missing_part_is_named(tmp_path: Path) -> None:
    wheel = tmp_path / "onnxruntime_gpu-0-cp312-cp312-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(np.random.default_rng(0).bytes(2500))
    parts = plan.split(wheel, 1000, tmp_path / ".ortgpu")
    assert [p["bytes"] for p in parts] == [1000, 1000, 500]
    manifest = {"wheel": wheel.name, "sha256": plan.sha256(wheel), "parts": parts}
    stash = tmp_path / "stash"
    install.gather(tmp_path, stash)
    assert install.join(manifest, stash, tmp_path / "joined.whl") == []
    assert (tmp_path / "joined.whl").read_bytes() == wheel.read_bytes()
    (stash / "part.02").write_bytes(b"damaged")
    (stash / "part.03").unlink()
    assert install.join(manifest, stash, tmp_path / "again.whl") == ["part.02", "part.03"]
    assert not (tmp_path / "again.whl").exists()


def _wheel(folder: Path, name: str, requires: list[str]) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        lines = [f"Name: {name}", *(f"Requires-Dist: {r}" for r in requires)]
        archive.writestr(f"{name}-1.0.dist-info/METADATA", "\n".join(lines) + "\n")
    return path


def test_a_requirement_neither_carried_nor_on_the_gpu_host_is_named(tmp_path: Path) -> None:
    # markers are those of the host (Python 3.12, Linux); extras are not installed
    wheels = [
        _wheel(
            tmp_path,
            "fastapi",
            ["starlette>=1", "anyio>=4", "opentelemetry-api>=1.44", 'jinja2; extra == "std"'],
        ),
        _wheel(
            tmp_path,
            "starlette",
            ["typing-extensions>=4.10; python_version >= '3.13'", "colorama; os_name == 'nt'"],
        ),
    ]
    assert plan.unmet_requirements(wheels) == ["fastapi-1.0-py3-none-any.whl: opentelemetry-api>=1.44"]
