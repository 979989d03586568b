"""The monitoring path for real: `lnserve serve` as a subprocess, Debian's Prometheus server scraping it every
second with the project's alert rules loaded, chat and forecast traffic, then Prometheus's HTTP API must show the
requests counted, an activation RMS series for every layer of the default chatbot, the rules evaluating and every
Grafana dashboard query answering; last, the drift demonstration of bench/drift_demo.py must show the windowed drift
rise and fall in the API and in Prometheus alike. Bounded in time; both processes are stopped even when an assertion
fails."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from bench import drift_demo

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 150.0
OBSERVE_TIMEOUT_S = 60.0
CHAT_MESSAGES = [
    "i forgot my password",
    "hello there",
    "how do i cancel my order",
    "where is my package",
    "can i get a refund",
    "the app keeps crashing",
    "what are your opening hours",
    "thanks, bye",
]
N_FORECASTS = 3
T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@contextmanager
def process(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a command for the duration of the block; SIGTERM it afterwards, SIGKILL if it lingers."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_path.parent)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def wait_for(
    what: str, probe: Callable[[], T | None], timeout_s: float, proc: subprocess.Popen[bytes], log: Path
) -> T:
    """Poll `probe` until it returns something other than None; fail with the process's log otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}\n{tail(log)}")
        try:
            result = probe()
        except httpx.TransportError:
            result = None
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout_s:.0f} s\n{tail(log)}")
        time.sleep(0.5)


def prometheus_binary() -> str:
    if shutil.which("prometheus") is None:
        installer = subprocess.run(
            [str(ROOT / "scripts" / "ensure-prometheus.sh")], capture_output=True, text=True, timeout=600
        )
        if installer.returncode != 0 or shutil.which("prometheus") is None:
            pytest.skip(
                f"Debian's prometheus server is not installed and cannot be installed: {installer.stderr.strip()}"
            )
    return str(shutil.which("prometheus"))


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, what: str, probe: Callable[[], T | None]) -> T:
        return wait_for(what, probe, OBSERVE_TIMEOUT_S, self.proc, self.log)

    def wait_for_value(self, expr: str, at_least: float) -> float:
        def probe() -> float | None:
            value = self.scalar(expr)
            return value if value is not None and value >= at_least else None

        return self.wait_for(f"{expr} >= {at_least}", probe)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring")


@pytest.fixture(scope="module")
def lnserve(workdir: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LNSERVE_")}
    # Warm-up only makes readiness slower here; nothing monitored depends on it.
    env |= {
        "LNSERVE_ACTIVATION_SAMPLE_RATE": "1",
        "LNSERVE_LOG_FORMAT": "text",
        "LNSERVE_INTRA_OP_THREADS": "1",
        "LNSERVE_WARMUP": "false",
    }
    command = [
        str(Path(sys.executable).parent / "lnserve"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = workdir / "lnserve.log"
    url = f"http://127.0.0.1:{port}"
    with process(command, log, env) as proc:

        def ready() -> bool | None:
            return True if httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200 else None

        wait_for("lnserve /v2/health/ready", ready, STARTUP_TIMEOUT_S, proc, log)
        yield url


@pytest.fixture(scope="module")
def prometheus(lnserve: str, workdir: Path) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "deploy" / "prometheus" / "rules.yaml")],
        "scrape_configs": [
            {"job_name": "lnserve", "static_configs": [{"targets": [lnserve.removeprefix("http://")]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    command = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    log = workdir / "prometheus.log"
    with process(command, log) as proc:
        server = Prometheus(f"http://127.0.0.1:{port}", proc, log)

        def ready() -> bool | None:
            return True if httpx.get(f"{server.url}/-/ready", timeout=5).status_code == 200 else None

        wait_for("prometheus /-/ready", ready, STARTUP_TIMEOUT_S, proc, log)
        server.wait_for("lnserve scraped (up == 1)", lambda: server.scalar('up{job="lnserve"} == 1'))
        yield server


@pytest.fixture(scope="module")
def default_chatbot(lnserve: str) -> dict[str, Any]:
    """The artifact behind the `chatbot` alias and its layers, from /v1/models, checked against the files."""
    response = httpx.get(f"{lnserve}/v1/models", timeout=10)
    assert response.status_code == 200, response.text
    models = response.json()["data"]
    entry = next(model for model in models if model["id"] == "chatbot")
    artifacts = ROOT / "models" / "chatbot" / "artifacts"
    artifact = json.loads((artifacts / "aliases.json").read_text())["chatbot"]
    sidecar = json.loads((artifacts / artifact / "sidecar.json").read_text())
    layers = [layer["name"] for layer in sidecar["layers"]]
    assert entry["artifact"] == artifact
    assert [layer["name"] for layer in entry["architecture"]["layers"]] == layers
    return {"artifact": artifact, "layers": layers}


def success_count(model: str) -> str:
    return f'sum(lnserve_request_success_total{{job="lnserve", model="{model}"}})'


def chat(client: httpx.Client, message: str) -> str:
    response = client.post("/v1/chat", json={"message": message})
    assert response.status_code == 200, response.text
    return str(response.json()["artifact"])


def forecast(client: httpx.Client, phase: int) -> str:
    series = [100.0 + 2.0 * t + 15.0 * math.sin(2 * math.pi * (t + phase) / 12) for t in range(48)]
    response = client.post("/v1/forecast", json={"series": series, "horizon": 12, "season_length": 12})
    assert response.status_code == 200, response.text
    return str(response.json()["artifact"])


@pytest.fixture(scope="module")
def traffic(lnserve: str, prometheus: Prometheus) -> dict[str, Any]:
    """One chat and one forecast, seen scraped, then the rest: so Prometheus sees the counters increase (a
    counter whose first sample already holds every request would show no rate at all)."""
    with httpx.Client(base_url=lnserve, timeout=30) as client:
        chatbot, forecaster = chat(client, CHAT_MESSAGES[0]), forecast(client, 0)
        prometheus.wait_for_value(success_count(chatbot), 1)
        prometheus.wait_for_value(success_count(forecaster), 1)
        for message in CHAT_MESSAGES[1:]:
            chat(client, message)
        for phase in range(1, N_FORECASTS):
            forecast(client, phase)
    return {"chat": len(CHAT_MESSAGES), "forecast": N_FORECASTS, "chatbot": chatbot, "forecaster": forecaster}


def test_prometheus_sees_the_requests_and_an_rms_series_for_every_chatbot_layer(
    prometheus: Prometheus, default_chatbot: dict[str, Any], traffic: dict[str, Any]
) -> None:
    artifact, layers = default_chatbot["artifact"], default_chatbot["layers"]
    assert traffic["chatbot"] == artifact
    chats = prometheus.wait_for_value(success_count(artifact), traffic["chat"])
    forecasts = prometheus.wait_for_value(success_count(traffic["forecaster"]), traffic["forecast"])
    assert (chats, forecasts) == (traffic["chat"], traffic["forecast"])
    increase = prometheus.wait_for_value(
        f'sum(increase(lnserve_request_success_total{{job="lnserve", model="{artifact}"}}[1m]))', 1
    )

    selector = f'job="lnserve", model="{artifact}", statistic="rms"'
    rms_expr = (
        f"sum by (layer) (lnserve_activation_positive_sum_total{{{selector}}})"
        f" / sum by (layer) (lnserve_activation_count_total{{{selector}}})"
    )

    def all_layers() -> list[dict[str, Any]] | None:
        result = prometheus.query(rms_expr)
        return result if {series["metric"]["layer"] for series in result} == set(layers) else None

    rms = prometheus.wait_for(f"an rms series for each of the {len(layers)} layers", all_layers)
    values = {series["metric"]["layer"]: float(series["value"][1]) for series in rms}
    assert len(rms) == len(layers)
    assert all(math.isfinite(value) and value > 0 for value in values.values()), values
    samples = prometheus.scalar(f'sum(lnserve_activation_samples_total{{model="{artifact}"}})')
    assert samples == traffic["chat"]  # sample rate 1: every chat request fed the aggregates
    print(
        f"\nobserved via Prometheus: {chats:.0f} chat requests on {artifact} (increase over 1m "
        f"{increase:.1f}), {forecasts:.0f} forecasts on {traffic['forecaster']}, {len(rms)} rms series, {samples:.0f} activation samples; "
        f"rms by layer: {', '.join(f'{layer}={values[layer]:.3g}' for layer in layers)}"
    )


def test_alert_rules_evaluate_in_prometheus_and_stay_quiet_on_healthy_traffic(
    prometheus: Prometheus, default_chatbot: dict[str, Any], traffic: dict[str, Any]
) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return groups if rules and all(rule["health"] == "ok" for rule in rules) else None

    groups = prometheus.wait_for("every rule evaluated with health ok", evaluated)
    assert {group["name"] for group in groups} == {"lnserve.rules", "lnserve.alerts"}
    artifact = default_chatbot["artifact"]
    rate = prometheus.wait_for_value(f'lnserve:requests:rate5m{{job="lnserve", model="{artifact}"}}', 1e-6)
    alerts = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    broken = {
        "LnserveHighErrorRatio",
        "LnserveModelNotReady",
        "LnserveTargetDown",
        "LnserveNonFiniteActivation",
    }
    assert not [alert for alert in alerts if alert["labels"]["alertname"] in broken | {"LnserveQueueFull"}], (
        alerts
    )
    active = [
        f"{a['labels']['alertname']} {a['labels'].get('model')}/{a['labels'].get('layer')} {a['state']}"
        for a in alerts
    ]
    print(
        f"\nrules: {sum(len(g['rules']) for g in groups)} ok; request rate {rate:.3f}/s; active alerts: {active}"
    )


def test_every_grafana_dashboard_query_runs_and_the_core_panels_have_data(
    prometheus: Prometheus, default_chatbot: dict[str, Any], traffic: dict[str, Any]
) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "lnserve.json").read_text())
    results: dict[str, int] = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$model", ".*")
                .replace("$statistic", "rms")
                .replace("$window", "1m")
            )
            results[f"{panel['title']} [{target['refId']}]"] = len(prometheus.query(expr))
    layers = len(default_chatbot["layers"])
    assert results["Request rate [A]"] >= 2  # the chatbot and the forecaster
    assert results["Activation RMS: live vs training reference [A]"] >= layers
    assert results["Activation RMS: live vs training reference [B]"] >= layers
    assert results["Live RMS / reference RMS [A]"] >= layers
    assert results["Drift by layer (mean shift + PSI, 5m) [A]"] >= layers
    assert results["Drift components by layer: mean shift and PSI (5m) [B]"] >= layers
    assert results["Models ready [A]"] >= 2
    print(f"\ndashboard queries: {len(results)} ran, {sum(1 for n in results.values() if n)} returned series")


DEMO_WINDOW_S, DEMO_PHASE_S = 4, 5.0


def test_windowed_drift_rises_with_shifted_traffic_and_falls_back_in_the_api_and_in_prometheus(
    lnserve: str, prometheus: Prometheus, default_chatbot: dict[str, Any], traffic: dict[str, Any]
) -> None:
    """In-distribution, shifted (other scripts, pasted logs; scaled forecast series with a level jump), then
    in-distribution again, each phase longer than the window: the drift of the window at the end of each phase,
    from the API and from the recording rules' expression evaluated by Prometheus over the same window."""
    rows = drift_demo.run_phases(
        lnserve, DEMO_WINDOW_S, DEMO_PHASE_S, default_chatbot["artifact"], prometheus.query
    )
    print("\n" + drift_demo.table(rows))
    for model in (default_chatbot["artifact"], "forecaster"):
        before, shifted, after = (row for row in rows if row["model"] == model)
        for row in (before, shifted, after):
            assert row["samples"] >= 10, row  # every request sampled (fewer on a loaded machine)
        for source in (before, before["prometheus"], after, after["prometheus"]):
            assert source["max"] is not None and source["max"] < 1.0, (model, source)
        for source in (shifted, shifted["prometheus"]):
            assert source["max"] > 3.0 and source["median"] > 1.0, (
                model,
                source,
            )  # above the alert threshold
        assert shifted["prometheus"]["max"] == pytest.approx(shifted["max"], rel=0.25), shifted
