"""deploy/: the kustomizations render, every object validates against Kubernetes, and the pieces fit together
(selectors, ports, probes, security, GPU overlay, rules, dashboard, Dockerfile)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = ["base", "overlays/gpu", "overlays/pending-requests"]
K8S_VERSION = "1.37.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "InferenceService"}
METRICS = {
    "lnserve_request_success_total",
    "lnserve_request_failure_total",
    "lnserve_request_duration_seconds",
    "lnserve_queue_duration_seconds",
    "lnserve_compute_duration_seconds",
    "lnserve_batch_size",
    "lnserve_pending_requests",
    "lnserve_model_load_duration_seconds",
    "lnserve_model_ready",
    "lnserve_activation_samples_total",
    "lnserve_activation_count_total",
    "lnserve_activation_positive_sum_total",
    "lnserve_activation_negative_sum_total",
    "lnserve_activation_bin_total",
    "lnserve_activation_nonfinite_total",
    "lnserve_activation_reference",
    "lnserve_activation_reference_std",
    "lnserve_gpu_memory_used_bytes",
    "lnserve_gpu_utilization_ratio",
}


def render(kustomization: str) -> dict[str, dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: cannot render the kustomizations")
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / kustomization)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out) if doc}


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, dict[str, Any]]]:
    return {name: render(name) for name in KUSTOMIZATIONS}


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(c: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in c["env"]}


def recorded_series() -> set[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def promql_metric_names(expr: str) -> set[str]:
    """lnserve metric names (and recorded `lnserve:` series) an expression reads; `{__name__=~"a_(b|c)_d"}` counts
    as a_b_d and a_c_d."""
    names: set[str] = set()
    for pattern in re.findall(r'__name__=~"([^"]+)"', expr):
        match = re.fullmatch(r"([^(]*)\(([^)]*)\)(.*)", pattern)
        assert match, f"write {pattern!r} as one (a|b) group"
        head, alternatives, tail = match.groups()
        names |= {head + alternative + tail for alternative in alternatives.split("|")}
    expr = re.sub(r'__name__=~"[^"]+"', "", expr)
    names |= set(re.findall(r"\blnserve_[a-z_]+", expr)) | set(re.findall(r"\blnserve:[a-z_0-9:]+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_validates_against_kubernetes(kustomization: str) -> None:
    objects = render(kustomization)
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} | {
        "ServiceMonitor",
        "PrometheusRule",
    }
    for kind, obj in objects.items():
        if kind not in CRD_KINDS:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_an_invalid_manifest_is_rejected_by_the_validator(rendered: dict[str, Any]) -> None:
    deployment = json.loads(json.dumps(rendered["base"]["Deployment"]))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_service_pdb_hpa_and_servicemonitor_point_at_the_deployment(rendered: dict[str, Any]) -> None:
    objects = rendered["base"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert objects["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == objects["Deployment"]["metadata"]["name"]
    )
    monitor = objects["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= objects["Service"]["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in {port["name"] for port in objects["Service"]["spec"]["ports"]}
    assert monitor["endpoints"][0]["path"] == "/metrics"


def test_deployment_probes_security_and_graceful_shutdown(rendered: dict[str, Any]) -> None:
    spec = rendered["base"]["Deployment"]["spec"]["template"]["spec"]
    c = container(rendered["base"])
    assert c["image"] == "lnserve:cpu"
    assert c["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8001, "protocol": "TCP"},
    ]
    assert env(c)["LNSERVE_GRPC_PORT"] == "8001"
    assert {p["name"]: p["targetPort"] for p in rendered["base"]["Service"]["spec"]["ports"]} == {
        "http": "http",
        "grpc": "grpc",
    }
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # A broken artifact must never restart the pod: only readiness waits for models.
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}
    assert set(c["resources"]["requests"]) == {"cpu", "memory"} and set(c["resources"]["limits"]) == {
        "cpu",
        "memory",
    }
    # The pod gets SIGTERM after the preStop sleep; it must outlive that plus the service's graceful drain.
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert spec["terminationGracePeriodSeconds"] > pre_stop + float(env(c)["LNSERVE_GRACEFUL_TIMEOUT_S"])


def test_the_deployment_samples_activations_at_the_measured_default(rendered: dict[str, Any]) -> None:
    default = Settings.model_fields["activation_sample_rate"].default
    assert float(env(container(rendered["base"]))["LNSERVE_ACTIVATION_SAMPLE_RATE"]) == default == 0.005


def test_gpu_overlay_requests_a_gpu_and_uses_the_gpu_image(rendered: dict[str, Any]) -> None:
    c = container(rendered["overlays/gpu"])
    assert c["image"] == "lnserve:gpu"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env(c)["LNSERVE_PROVIDERS"] == "cuda"
    tolerations = rendered["overlays/gpu"]["Deployment"]["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    # Everything else of the base survives the patch.
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "nvidia.com/gpu" not in container(rendered["base"])["resources"]["limits"]


def test_pending_requests_hpa_uses_the_metric_prometheus_adapter_serves(rendered: dict[str, Any]) -> None:
    metrics = rendered["overlays/pending-requests"]["HorizontalPodAutoscaler"]["spec"]["metrics"]
    pods_metric = next(m["pods"] for m in metrics if m["type"] == "Pods")
    adapter = yaml.safe_load((DEPLOY / "prometheus-adapter" / "values.yaml").read_text())
    rule = adapter["rules"]["custom"][0]
    assert pods_metric["metric"]["name"] == rule["name"]["as"] == "lnserve_pending_requests"
    assert promql_metric_names(rule["seriesQuery"]) == {"lnserve_pending_requests"}
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_prometheusrule_carries_exactly_the_plain_rules_file(rendered: dict[str, Any]) -> None:
    plain = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())
    assert rendered["base"]["PrometheusRule"]["spec"] == plain
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout


def test_alert_rules_cover_the_required_alerts_on_known_metrics() -> None:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    alerts = {rule["alert"] for rule in rules if "alert" in rule}
    assert alerts == {
        "LnserveHighP99Latency",
        "LnserveHighErrorRatio",
        "LnserveQueueFull",
        "LnserveQueueBacklog",
        "LnserveModelNotReady",
        "LnserveTargetDown",
        "LnserveActivationDrift",
        "LnserveNonFiniteActivation",
    }
    for rule in rules:
        assert promql_metric_names(rule["expr"]) <= METRICS | recorded_series(), rule["expr"]


def promtool() -> str:
    if shutil.which("promtool") is None:
        installer = subprocess.run(
            [str(ROOT / "scripts" / "ensure-prometheus.sh")], capture_output=True, text=True, timeout=600
        )
        if installer.returncode != 0 or shutil.which("promtool") is None:
            pytest.skip(f"promtool is not installed and cannot be installed: {installer.stderr.strip()}")
    return str(shutil.which("promtool"))


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    rules = DEPLOY / "prometheus"
    check = subprocess.run(
        [promtool(), "check", "rules", "rules.yaml"], cwd=rules, capture_output=True, text=True
    )
    assert check.returncode == 0 and "SUCCESS: 20 rules found" in check.stdout, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool(), "test", "rules", "rules.test.yaml"], cwd=rules, capture_output=True, text=True
    )
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr
    config = subprocess.run(
        [promtool(), "check", "config", "prometheus.yaml"], cwd=rules, capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.parametrize(
    ("original", "changed", "failure"),
    [
        ("lnserve:activation_drift:5m > 3\n", "lnserve:activation_drift:5m > 10\n", "time: 20m"),
        ("increase5m >= 100\n", "increase5m >= 10\n", "time: 20m"),  # the guard: the forecaster would fire
        ("[5m])) + 0.5)\n", "[5m])) + 0.1)\n", "psi"),  # the prior of half a count per bin
    ],
)
def test_promtool_unit_tests_catch_a_changed_drift_rule(
    tmp_path: Path, original: str, changed: str, failure: str
) -> None:
    rules = (DEPLOY / "prometheus" / "rules.yaml").read_text()
    assert original in rules
    (tmp_path / "rules.yaml").write_text(rules.replace(original, changed))
    shutil.copy(DEPLOY / "prometheus" / "rules.test.yaml", tmp_path)
    unit = subprocess.run(
        [promtool(), "test", "rules", "rules.test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert unit.returncode == 1
    assert failure in unit.stdout + unit.stderr, unit.stdout + unit.stderr


def test_kserve_inferenceservice_runs_the_image_as_its_predictor() -> None:
    isvc = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    (c,) = isvc["spec"]["predictor"]["containers"]
    assert c["name"] == "kserve-container"
    assert c["image"].startswith("lnserve:")
    assert c["ports"] == [{"containerPort": 8000, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8000}
    assert isvc["metadata"]["annotations"]["prometheus.kserve.io/path"] == "/metrics"


def test_grafana_dashboard_queries_only_lnserve_metrics_and_covers_the_topics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "lnserve.json").read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = promql_metric_names(target["expr"])
            assert names and names <= METRICS | recorded_series(), (panel["title"], target["expr"])
            used |= names
    titles = " | ".join(panel["title"] for panel in panels).lower()
    for topic in ("request rate", "latency", "queue time", "batch size", "errors by reason", "drift", "rms"):
        assert topic in titles, topic
    assert {
        "lnserve_activation_positive_sum_total",
        "lnserve_activation_negative_sum_total",
        "lnserve_activation_count_total",
        "lnserve_activation_reference",
        "lnserve:activation_drift:5m",
        "lnserve:activation_layer_psi:5m",
    } <= used


def test_dockerfile_has_cpu_and_gpu_targets_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", text, flags=re.MULTILINE))
    assert {"cpu", "gpu"} <= stages
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim", text, flags=re.MULTILINE)
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    assert "EXPOSE 8000" in text and "STOPSIGNAL SIGTERM" in text and "LNSERVE_HOST=0.0.0.0" in text
    assert "/v2/health/ready" in text.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert not [line for line in text.splitlines() if "torch" in line and not line.startswith("#")]


@pytest.mark.parametrize(
    ("target", "ort"), [("cpu", "onnxruntime>=1.31"), ("gpu", "onnxruntime-gpu[cuda,cudnn]>=1.31")]
)
def test_image_requirements_pick_one_onnxruntime_and_no_training_packages(target: str, ort: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "image_requirements.py"),
            str(ROOT / "pyproject.toml"),
            target,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [line for line in out if line.startswith("onnxruntime")] == [ort]
    names = {re.split(r"[<>=\[;]", line)[0] for line in out}
    assert not {"torch", "scikit-learn", "pytest"} & names
    # onnx converts the fast graph at load (int8 on the CPU, float16 on the GPU): both images; NVML: the gpu image only
    assert "onnx" in names and ("nvidia-ml-py" in names) == (target == "gpu")
    assert any(line.startswith("fastapi") for line in out)
