"""Request bodies for the HTTP benchmarks: real validation utterances and seasonal series of varied lengths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VAL_FILE = ROOT / "models" / "chatbot" / "data" / "val.jsonl"


def chat_messages(n: int = 64) -> list[str]:
    """``n`` validation utterances spread evenly over the file (so over intents and lengths)."""
    lines = [
        json.loads(line)["text"] for line in VAL_FILE.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    step = max(1, len(lines) // n)
    return lines[::step][:n]


def seasonal_series(n: int = 64, seed: int = 0) -> list[list[float]]:
    """Monthly-looking series (trend x seasonality x noise), 24 to 144 points long."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(24, 145))
        t = np.arange(length)
        level = rng.uniform(50, 500)
        trend = 1.0 + rng.uniform(0.0, 0.01) * t
        season = 1.0 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi))
        noise = rng.normal(1.0, 0.03, length)
        out.append([round(float(v), 3) for v in level * trend * season * noise])
    return out


def chat_bodies(return_activations: bool = False, n: int = 64) -> list[str]:
    return [json.dumps({"message": m, "return_activations": return_activations}) for m in chat_messages(n)]


def forecast_bodies(return_activations: bool = False, n: int = 64) -> list[str]:
    return [
        json.dumps(
            {"series": s, "horizon": 12, "season_length": 12, "return_activations": return_activations}
        )
        for s in seasonal_series(n)
    ]


def bodies_for(endpoint: str, return_activations: bool = False) -> list[str]:
    if endpoint == "/v1/chat":
        return chat_bodies(return_activations)
    if endpoint == "/v1/forecast":
        return forecast_bodies(return_activations)
    raise ValueError(f"no bodies for {endpoint}")
