"""Write deploy/base/prometheusrule.yaml from deploy/prometheus/rules.yaml, the one source of the alert rules.

The rules file is copied as text (comments and folded strings kept) under the PrometheusRule's `spec:`.
Usage: python3 scripts/render_prometheusrule.py [--check]   (--check: exit 1 if the file is out of date)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
TARGET = ROOT / "deploy" / "base" / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/rules.yaml by scripts/render_prometheusrule.py: edit that file, then run
# `python3 scripts/render_prometheusrule.py`. kube-prometheus-stack picks rules up by its ruleSelector (by default
# the label release=<its Helm release name>): add that label here if your Prometheus needs it.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: lnserve
spec:
"""


def render(rules_text: str) -> str:
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str]) -> int:
    rendered = render(RULES.read_text())
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != rendered:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python3 scripts/render_prometheusrule.py")
            return 1
        return 0
    TARGET.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
