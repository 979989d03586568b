"""An honest drift demonstration: in-distribution traffic, then shifted traffic, then in-distribution again, with the
windowed drift read from the API (and, when Prometheus is installed, from a real Prometheus scraping the server
and evaluating the recording rules of deploy/prometheus/rules.yaml with their window set to the same length).

- chatbot: validation messages vs. messages in other scripts and languages and pasted logs / stack traces;
- forecaster: validation windows of its own series vs. the same windows scaled by 1000 and with a level jump.

Each phase lasts longer than one window, so the window at the end of a phase holds only that phase's requests:
drift must rise within one window of the shift and fall back within one window after it.

    .venv/bin/python -m bench.drift_demo [--window-s 10] [--phase-s 12] [--no-prometheus] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from bench.servers import ServerSpec, running
from bench.tables import dump_json, header, markdown_table

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("in-distribution", "shifted", "in-distribution again")
OTHER_SCRIPTS = [
    "Здравствуйте, я не могу войти в свой аккаунт",
    "Мне нужно вернуть деньги за подписку",
    "パスワードを忘れました。どうすればいいですか",
    "请帮我取消订阅，谢谢",
    "我的发票在哪里可以下载",
    "لا أستطيع تسجيل الدخول إلى حسابي",
    "Γεια σας, θέλω να αλλάξω το email μου",
    "मेरा पासवर्ड काम नहीं कर रहा है",
    "비밀번호를 재설정하고 싶어요",
    "ฉันต้องการยกเลิกการสมัครสมาชิก",
    "Ich möchte mein Abonnement kündigen, bitte schnell",
    "¿Dónde está mi factura del mes pasado?",
]
LOG_LINES = [
    "2025-03-01T12:00:{s:02d}Z ERROR [worker-{w}] java.lang.NullPointerException at com.acme.billing."
    "InvoiceService.render(InvoiceService.java:{n})",
    "Traceback (most recent call last): File \"/srv/app/{w}.py\", line {n}, in handler KeyError: 'user_{s}'",
    '{s}.{w}.0.{n} - - [01/Mar/2025:12:00:{s:02d} +0000] "POST /api/v2/session HTTP/1.1" 502 {n} "-" "curl/8.5"',
    "E0301 12:00:{s:02d}.{n} {w} reflector.go:{n}] failed to list *v1.Pod: connection refused 0x{n:x}",
]


def chat_in_distribution() -> list[dict[str, Any]]:
    """The validation messages, shuffled (the file is sorted by intent: a window of it would hold a few intents)."""
    lines = (ROOT / "models" / "chatbot" / "data" / "val.jsonl").read_text(encoding="utf-8").splitlines()
    bodies = [{"message": json.loads(line)["text"]} for line in lines if line.strip()]
    random.Random(0).shuffle(bodies)
    return bodies


def chat_shifted(seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    logs = [
        line.format(s=rng.randrange(60), w=rng.randrange(16), n=rng.randrange(10, 999))
        for line in LOG_LINES
        for _ in range(8)
    ]
    return [{"message": text} for text in [*OTHER_SCRIPTS, *logs]]


def forecast_in_distribution(limit: int = 200) -> list[dict[str, Any]]:
    """Validation windows of the forecaster's own series (what its sidecar reference was computed on)."""
    from models.forecaster import data

    bodies = []
    for series in data.training_series():
        horizon = data.HORIZON[series.freq]
        context, _ = data.validation_split(series, horizon)
        context = context[-96:]
        if len(context) >= 8 and np.all(np.isfinite(context)):
            bodies.append(
                {
                    "series": [float(v) for v in context],
                    "horizon": horizon,
                    "season_length": series.season_length,
                }
            )
    return random.Random(0).sample(bodies, min(limit, len(bodies)))


def forecast_shifted(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same windows scaled by 1000 with a level jump over their last quarter: a scale and a break."""
    shifted = []
    for body in bodies:
        values = np.asarray(body["series"]) * 1000.0
        values[-len(values) // 4 :] += 5.0 * (np.abs(values).max() + 1.0)
        shifted.append({**body, "series": [float(v) for v in values]})
    return shifted


@dataclass(frozen=True)
class Scenario:
    model: str  # the artifact whose drift is read
    endpoint: str
    phases: dict[str, list[dict[str, Any]]]


def scenarios(chatbot: str) -> list[Scenario]:
    chats = chat_in_distribution()
    forecasts = forecast_in_distribution()
    return [
        Scenario(
            chatbot,
            "/v1/chat",
            {PHASES[0]: chats, PHASES[1]: chat_shifted(), PHASES[2]: list(reversed(chats))},
        ),
        Scenario(
            "forecaster",
            "/v1/forecast",
            {PHASES[0]: forecasts, PHASES[1]: forecast_shifted(forecasts), PHASES[2]: forecasts[::-1]},
        ),
    ]


def send_for(
    client: httpx.Client, endpoint: str, model: str, bodies: list[dict[str, Any]], seconds: float
) -> int:
    """Send `bodies` (cycled) from 4 threads for `seconds`; every answer must be a 200. Returns the count."""
    deadline = time.monotonic() + seconds
    cycle: Iterator[dict[str, Any]] = itertools.cycle(bodies)

    def worker(_: int) -> int:
        sent = 0
        while time.monotonic() < deadline:
            response = client.post(endpoint, json={**next(cycle), "model": model})
            assert response.status_code == 200, response.text
            sent += 1
        return sent

    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(worker, range(4)))


def api_drift(client: httpx.Client, model: str, window_s: int) -> dict[str, Any]:
    body = client.get(f"/v1/models/{model}/activations", params={"window_s": window_s}).json()
    drift = [layer["drift"] for layer in body["layers"] if layer["drift"] is not None]
    return {
        "samples": body["samples"],
        "median": float(np.median(drift)) if drift else None,
        "max": max(drift) if drift else None,
        "mean_shift": float(np.median([layer["mean_shift"] or 0.0 for layer in body["layers"]])),
        "psi": float(np.median([layer["psi"] or 0.0 for layer in body["layers"]])),
    }


def drift_rule(window_s: int) -> str:
    """The recording rules' drift expression with every recorded series expanded and the window set to `window_s`
    (so a Prometheus that evaluates no rules at this window computes the same thing)."""
    groups = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yaml").read_text())["groups"]
    records = {rule["record"]: rule["expr"] for g in groups for rule in g["rules"] if "record" in rule}
    expr = records["lnserve:activation_drift:5m"]
    pattern = re.compile(r"lnserve:activation_[a-z_]+:(?:5m|rate5m|increase5m)")
    while pattern.search(expr):
        expr = pattern.sub(lambda m: f"({records[m.group(0)]})", expr)
    return expr.replace("[5m]", f"[{window_s}s]")


def prometheus_drift(
    query: Callable[[str], list[dict[str, Any]]], model: str, window_s: int
) -> dict[str, Any]:
    values = [float(r["value"][1]) for r in query(drift_rule(window_s)) if r["metric"].get("model") == model]
    values = [v for v in values if np.isfinite(v)]
    return {
        "median": float(np.median(values)) if values else None,
        "max": max(values) if values else None,
    }


def run_phases(
    url: str,
    window_s: int,
    phase_s: float,
    chatbot: str,
    prometheus: Callable[[str], list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Every scenario's three phases in turn; after each phase the drift of the last `window_s` seconds."""
    rows = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for scenario in scenarios(chatbot):
            for phase, bodies in scenario.phases.items():
                sent = send_for(client, scenario.endpoint, scenario.model, bodies, phase_s)
                time.sleep(1.5)  # the last requests folded and scraped
                row = {"model": scenario.model, "phase": phase, "sent": sent}
                row |= api_drift(client, scenario.model, window_s)
                if prometheus is not None:
                    row["prometheus"] = prometheus_drift(prometheus, scenario.model, window_s)
                rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    out = []
    for r in rows:
        prom = r.get("prometheus", {})
        out.append(
            [
                r["model"],
                r["phase"],
                str(r["sent"]),
                str(r["samples"]),
                number(r["median"]),
                number(r["max"]),
                number(r["mean_shift"]),
                number(r["psi"]),
                number(prom.get("median")),
                number(prom.get("max")),
            ]
        )
    return markdown_table(
        [
            "model",
            "phase",
            "requests",
            "samples in window",
            "API drift (median layer)",
            "API drift (max layer)",
            "mean shift (median)",
            "PSI (median)",
            "Prometheus drift (median)",
            "Prometheus drift (max)",
        ],
        out,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window-s", type=int, default=10)
    parser.add_argument("--phase-s", type=float, default=12.0, help="longer than the window")
    parser.add_argument("--no-prometheus", action="store_true")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    from bench.prometheus import scraping  # only this script needs a Prometheus server

    chatbot = json.loads((ROOT / "models" / "chatbot" / "artifacts" / "aliases.json").read_text())["chatbot"]
    env = {"LNSERVE_ACTIVATION_SAMPLE_RATE": "1", "LNSERVE_INTRA_OP_THREADS": "1"}
    with running([ServerSpec("lnserve", env)]) as urls:
        url = urls["lnserve"]
        if args.no_prometheus:
            rows = run_phases(url, args.window_s, args.phase_s, chatbot)
        else:
            with scraping(url) as query:
                rows = run_phases(url, args.window_s, args.phase_s, chatbot, query)
    print(
        header(f"Drift demonstration (window {args.window_s} s, phases of {args.phase_s:g} s, sample rate 1)")
    )
    print(table(rows))
    dump_json(args.json, {"window_s": args.window_s, "phase_s": args.phase_s, "rows": rows})


if __name__ == "__main__":
    main()
