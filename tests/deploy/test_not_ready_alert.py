"""LnserveModelNotReady fires for a model whose sidecar does not even parse: the series a real server exposes for it,
fed to promtool with the shipped rules, raise the alert for that model alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import yaml

from service.settings import Settings
from tests.deploy.test_deploy_manifests import DEPLOY, promtool
from tests.service.helpers import model_folder, serve_in_thread


def test_the_not_ready_alert_fires_for_a_model_whose_sidecar_does_not_parse(tmp_path: Path) -> None:
    models = model_folder(tmp_path, ["chatbot-peri"])
    broken = models / "chatbot" / "artifacts" / "chatbot-bad"
    broken.mkdir()
    (broken / "sidecar.json").write_text("{not json")
    with serve_in_thread(
        Settings(model_dir=models, warmup=False), allow_failed=frozenset({"chatbot-bad"})
    ) as base:
        exposition = httpx.get(base + "/metrics").text
    ready = re.findall(r"^lnserve_model_ready\{(.*)\} (\S+)$", exposition, flags=re.MULTILINE)
    assert sorted(ready) == [
        ('model="chatbot-bad",version="1"', "0.0"),
        ('model="chatbot-peri",version="1"', "1.0"),
    ]
    series = [
        {
            "series": f'lnserve_model_ready{{job="lnserve",instance="a:8000",{labels}}}',
            "values": f"{float(v):g}x20",
        }
        for labels, v in ready
    ]
    description = (
        "Model chatbot-bad has reported lnserve_model_ready 0 for 5 minutes: it failed to load or to warm up. "
        "The pod's log says why."
    )
    tests = {
        "rule_files": [str(DEPLOY / "prometheus" / "rules.yaml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "LnserveModelNotReady", "exp_alerts": []},
                    {
                        "eval_time": "10m",
                        "alertname": "LnserveModelNotReady",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "job": "lnserve",
                                    "instance": "a:8000",
                                    "model": "chatbot-bad",
                                    "version": "1",
                                },
                                "exp_annotations": {
                                    "summary": "lnserve chatbot-bad on a:8000 is not ready",
                                    "description": description,
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "not_ready.test.yaml"
    path.write_text(yaml.safe_dump(tests))
    checked = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
