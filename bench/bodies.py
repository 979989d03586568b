"""Request bodies for the HTTP benchmarks: each kind's own benchmark bodies, posted to its own route."""

from __future__ import annotations

import json

from bench.artifacts import KINDS

ENDPOINTS = {kind.route.path: kind for kind in KINDS.values()}


def bodies_for(endpoint: str, return_activations: bool = False, n: int = 64) -> list[str]:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"no bodies for {endpoint}; kinds' routes: {sorted(ENDPOINTS)}")
    bodies = ENDPOINTS[endpoint].bench_bodies(n)
    return [json.dumps({**body, "return_activations": return_activations}) for body in bodies]
