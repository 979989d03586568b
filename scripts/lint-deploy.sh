#!/usr/bin/env bash
# Lint the container and deployment files (`make lint`): hadolint on the Dockerfile, promtool on the alert rules
# (check + unit tests) and the example Prometheus config, the PrometheusRule in sync with the rules file, every
# kustomization rendered with `kubectl kustomize` and every manifest validated with kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
K8S_VERSION="${K8S_VERSION:-1.37.0}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

step() { echo "== $*"; }

step "hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile

step "promtool check/test rules"
scripts/ensure-prometheus.sh
promtool check rules deploy/prometheus/rules.yaml
promtool test rules deploy/prometheus/rules.test.yaml
promtool check config deploy/prometheus/prometheus.yaml
"$VENV/bin/python" scripts/render_prometheusrule.py --check

step "kubectl kustomize + kubernetes-validate (Kubernetes $K8S_VERSION)"
command -v kubectl >/dev/null 2>&1 || { echo "kubectl is needed to render deploy/ (kubectl kustomize)" >&2; exit 1; }
for dir in deploy/base deploy/overlays/*/; do
    dir="${dir%/}"
    name="${dir//\//_}"
    kubectl kustomize "$dir" >"$out/$name.yaml"
    echo "rendered $dir: $(grep -c '^kind:' "$out/$name.yaml") objects"
done
# CRDs (ServiceMonitor, PrometheusRule, InferenceService) have no schema here: kubernetes-validate warns and
# skips them; tests/deploy checks their content against the Service and the rules file instead.
"$VENV/bin/kubernetes-validate" --strict --quiet --no-warn -k "$K8S_VERSION" "$out"/*.yaml deploy/kserve/*.yaml
echo "validated $(cat "$out"/*.yaml | grep -c '^kind:') rendered objects (CRDs skipped) against Kubernetes $K8S_VERSION"

step "deploy lint passed"
