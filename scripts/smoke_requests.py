"""Smoke-test a running lnserve: a chat, a forecast, a KServe v2 infer request, an error, /metrics, /inspector.

Standard library only, so it runs against a container or a cluster from any Python 3.11:
    python3 scripts/smoke_requests.py http://127.0.0.1:8000
Exits 1 with the first failed check; prints one line per check otherwise.
"""

from __future__ import annotations

import json
import math
import re
import sys
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 30


class CheckFailed(Exception):
    pass


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    try:
        return status, json.loads(text), text
    except json.JSONDecodeError:
        return status, None, text


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def chat(base: str) -> dict[str, Any]:
    status, model, _ = call(base, "GET", "/v1/models/chatbot")
    check(status == 200, f"GET /v1/models/chatbot: {status}")
    labels, layers = model["chatbot"]["labels"], model["architecture"]["layers"]
    status, body, text = call(
        base, "POST", "/v1/chat", {"message": "i forgot my password", "return_activations": True}
    )
    check(status == 200, f"POST /v1/chat: {status} {text[:300]}")
    check(body["intent"] in labels, f"chat intent {body['intent']!r} is not one of the model's labels")
    check(0.0 <= body["confidence"] <= 1.0, f"chat confidence {body['confidence']} outside [0, 1]")
    check(isinstance(body["reply"], str) and body["reply"] != "", "chat reply is empty")
    names = [layer["name"] for layer in body["activations"]["layers"]]
    check(names == [layer["name"] for layer in layers], f"chat activations name layers {names}")
    check(
        all(math.isfinite(layer["rms"]) for layer in body["activations"]["layers"]),
        "non-finite activation rms",
    )
    print(
        f"ok chat: {body['intent']} ({body['confidence']:.2f}) from {body['artifact']}, {len(names)} layers"
    )
    return {"artifact": body["artifact"], "layers": names}


def forecast(base: str) -> None:
    # Two years of a monthly series with trend and season.
    series = [100.0 + 2.0 * t + 15.0 * math.sin(2 * math.pi * t / 12) for t in range(48)]
    request = {"series": series, "horizon": 12, "season_length": 12, "quantiles": [0.1, 0.5, 0.9]}
    status, body, text = call(base, "POST", "/v1/forecast", request)
    check(status == 200, f"POST /v1/forecast: {status} {text[:300]}")
    points = body["forecast"]
    check(len(points) == 12, f"forecast has {len(points)} points, want 12")
    check(all(math.isfinite(p) for p in points), "forecast has non-finite points")
    low, high = min(series), max(series)
    span = high - low
    check(
        all(low - span <= p <= high + span for p in points),
        f"forecast {points} far outside the series' range",
    )
    q = body["quantiles"]
    check(sorted(q) == ["0.1", "0.5", "0.9"], f"forecast quantile keys {sorted(q)}")
    check(
        all(a <= b + 1e-4 <= c + 2e-4 for a, b, c in zip(q["0.1"], q["0.5"], q["0.9"], strict=True)),
        "quantiles cross",
    )
    print(f"ok forecast: 12 points from {body['artifact']}, first {points[0]:.1f}, last {points[-1]:.1f}")

    status, body, _ = call(base, "POST", "/v1/forecast", {"series": [1.0, 2.0, 3.0], "horizon": 4})
    check(
        status == 422 and set(body) == {"error"},
        f"a too-short series gives {status} {body}, want 422 {{'error'}}",
    )
    print(f"ok forecast error: 422 {body['error'][:80]!r}")


def v2_infer(base: str) -> None:
    request = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["i forgot my password", "hello"]}
        ]
    }
    status, body, text = call(base, "POST", "/v2/models/chatbot/infer", request)
    check(status == 200, f"POST /v2/models/chatbot/infer: {status} {text[:300]}")
    outputs = {output["name"]: output for output in body["outputs"]}
    check(outputs["intent"]["shape"] == [2], f"v2 intent shape {outputs['intent']['shape']}")
    probabilities = outputs["probabilities"]["data"]
    n_labels = outputs["probabilities"]["shape"][1]
    for row in range(2):
        total = sum(probabilities[row * n_labels : (row + 1) * n_labels])
        check(abs(total - 1.0) < 1e-3, f"v2 probabilities of row {row} sum to {total}")
    print(f"ok v2 infer: intents {outputs['intent']['data']}")


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition as (name, labels, value); the label order is the server's."""
    samples = []
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?", line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def metrics(base: str, chat_model: dict[str, Any]) -> None:
    status, _, text = call(base, "GET", "/metrics")
    check(status == 200, f"GET /metrics: {status}")
    samples = parse_metrics(text)
    artifact = chat_model["artifact"]

    def values(name: str, **labels: str) -> list[float]:
        return [v for n, ls, v in samples if n == name and labels.items() <= ls.items()]

    check(
        sum(values("lnserve_request_success_total", model=artifact)) >= 1,
        f"requests to {artifact} not counted",
    )
    check(values("lnserve_model_ready", model=artifact) == [1.0], f"{artifact} is not ready in /metrics")
    missing = [
        layer
        for layer in chat_model["layers"]
        if sum(values("lnserve_activation_count_total", model=artifact, layer=layer, statistic="rms")) < 1
    ]
    check(not missing, f"/metrics counts no rms value for layers {missing}")
    print(
        f"ok metrics: {len(samples)} samples, requests counted and rms of {len(chat_model['layers'])} layers of {artifact}"
    )


def inspector(base: str) -> None:
    """The page and every file it loads are inside the image (package data), none from elsewhere."""
    status, _, page = call(base, "GET", "/inspector")
    check(status == 200 and "activation inspector" in page, f"GET /inspector: {status}")
    assets = re.findall(r'(?:src|href)="(inspector/static/[^"]+)"', page)
    check(len(assets) == 3, f"the inspector page loads {assets}")
    for asset in assets:
        status, _, text = call(base, "GET", "/" + asset)
        check(status == 200 and len(text) > 100, f"GET /{asset}: {status}")
    check("http://" not in page and "https://" not in page, "the inspector page refers to another host")
    print(f"ok inspector: the page and {len(assets)} assets")


def main(argv: list[str]) -> int:
    base = (argv[1] if len(argv) > 1 else "http://127.0.0.1:8000").rstrip("/")
    try:
        chat_model = chat(base)
        forecast(base)
        v2_infer(base)
        metrics(base, chat_model)
        inspector(base)
    except (CheckFailed, KeyError, TypeError, ValueError, OSError) as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
