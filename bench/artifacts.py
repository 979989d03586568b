"""What the benchmarks run, read from the service's kind registry: each kind's default artifact, its request
bodies and the graph feeds those bodies become (built by the kind's own runtime, as the service builds them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.sidecar import read
from service.kinds import AnyKind, registry
from service.runtime.base import Artifact, Runtime, RuntimeOptions

ROOT = Path(__file__).resolve().parents[1]
KINDS = {kind.name: kind for kind in registry()}


def default_artifact(kind: str) -> Artifact:
    """The artifact the service serves under the kind's default name (the alias target, else the only one), from
    ``LNSERVE_MODEL_DIR`` like the service."""
    from service.settings import Settings

    base = Settings().model_dir / kind / "artifacts"
    aliases_file = base / "aliases.json"
    aliases = json.loads(aliases_file.read_text(encoding="utf-8")) if aliases_file.exists() else {}
    default = KINDS[kind].default_model
    names = (
        [aliases[default]]
        if default in aliases
        else sorted(p.parent.name for p in base.glob("*/sidecar.json"))
    )
    if not names:
        raise SystemExit(f"no {kind} artifact under {base}: train and export it first (make train)")
    return Artifact(base / names[0], read(base / names[0] / "sidecar.json"))


def prepared_runtime(artifact: Artifact, threads: int = 1, load: bool = False) -> Runtime[Any, Any]:
    runtime = KINDS[artifact.kind].runtime(artifact, RuntimeOptions("cpu", threads))
    runtime.load() if load else runtime.prepare()
    return runtime


def bench_bodies(kind: AnyKind, batch: int) -> list[dict[str, Any]]:
    """`batch` of the kind's benchmark bodies; batch 1 is the body of median size."""
    bodies = kind.bench_bodies(max(batch, 64))
    if batch == 1:
        return [sorted(bodies, key=lambda b: len(json.dumps(b)))[len(bodies) // 2]]
    return bodies[:batch]


def bench_items(runtime: Runtime[Any, Any], batch: int) -> list[Any]:
    """The kind's benchmark bodies as items."""
    kind = KINDS[runtime.artifact.kind]
    parsed = [kind.route.request.model_validate(body) for body in bench_bodies(kind, batch)]
    return [item for body in parsed for item in kind.parse(runtime, body).items]


def feeds_for(artifact: Artifact, batch: int) -> dict[str, np.ndarray]:
    runtime = prepared_runtime(artifact)
    return runtime.feeds(bench_items(runtime, batch))


def kind_of(artifact: Artifact) -> AnyKind:
    return KINDS[artifact.kind]
