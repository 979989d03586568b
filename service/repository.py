"""The model repository: finds sidecars, validates them, verifies checksums, loads and warms up each model as its
kind says, resolves aliases.

A model whose artifact is missing, corrupt or inconsistent is refused with one clear log line and stays not ready;
every other model is still served.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from models.sidecar import DIAGNOSTIC, FAST, Sidecar
from service.errors import ModelNotFound, ModelNotReady
from service.kinds import AnyKind, Registry, UnknownKind
from service.metrics import Metrics
from service.model import ServedModel
from service.runtime.base import Artifact, ArtifactError, RuntimeOptions
from service.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed"]


@dataclass
class ModelEntry:
    """One artifact and its serving status."""

    artifact: Artifact
    kind: AnyKind
    status: Status = "loading"
    error: str | None = None
    served: ServedModel | None = None
    aliases: list[str] = field(default_factory=list)
    created: int = 0  # the sidecar's mtime when it was found (the folder may move away later)

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(artifact: Artifact) -> None:
    """Raise `ArtifactError` unless both graph files have the sidecar's size and sha256."""
    for graph in (FAST, DIAGNOSTIC):
        spec = getattr(artifact.sidecar.files, graph)
        path = artifact.file(graph)
        if not path.is_file():
            raise ArtifactError(f"{graph} graph file {path.name} is missing")
        if path.stat().st_size != spec.bytes:
            raise ArtifactError(f"size mismatch for {path.name}: sidecar says {spec.bytes} bytes")
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise ArtifactError(
                f"sha256 mismatch for {path.name}: sidecar says {spec.sha256}, file has {actual}"
            )


def read_artifact(sidecar_path: Path) -> Artifact:
    try:
        sidecar = Sidecar.model_validate_json(sidecar_path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise ArtifactError(f"invalid sidecar: {problems}") from None
    if sidecar.name != sidecar_path.parent.name:
        raise ArtifactError(
            f"sidecar name {sidecar.name!r} differs from its folder {sidecar_path.parent.name!r}"
        )
    return Artifact(sidecar_path.parent, sidecar)


class ModelRepository:
    def __init__(self, settings: Settings, kinds: Registry, metrics: Metrics, executor: Executor) -> None:
        self.settings = settings
        self.kinds = kinds
        self.metrics = metrics
        self.executor = executor
        self.entries: dict[str, ModelEntry] = {}
        self.aliases: dict[str, str] = {}
        self.refused: dict[str, str] = {}  # sidecars that could not even be parsed: path -> reason

    def discover(self) -> None:
        for sidecar_path in sorted(self.settings.model_dir.glob("*/artifacts/*/sidecar.json")):
            name = sidecar_path.parent.name
            try:
                artifact = read_artifact(sidecar_path)
                kind = self.kinds.get(artifact.kind)
                created = int(sidecar_path.stat().st_mtime)
            except (ArtifactError, UnknownKind, OSError) as exc:
                self._refuse(name, str(exc))
                self.refused[str(sidecar_path)] = str(exc)
                continue
            self.entries[artifact.name] = ModelEntry(artifact, kind, created=created)
            self.metrics.model_ready.labels(artifact.name).set(0)
        for kind_dir in sorted(self.settings.model_dir.glob("*/artifacts")):
            self._read_aliases(kind_dir)
        for alias, target in self.aliases.items():
            if target in self.entries:
                self.entries[target].aliases.append(alias)
        if not self.entries:
            log.warning(
                "no models found in %s (looked for */artifacts/*/sidecar.json); the server will not be ready",
                self.settings.model_dir,
            )
        log.info("found models %s, aliases %s", sorted(self.entries), self.aliases)

    def _read_aliases(self, artifacts_dir: Path) -> None:
        kind = artifacts_dir.parent.name
        path = artifacts_dir / "aliases.json"
        if path.is_file():
            for alias, target in json.loads(path.read_text(encoding="utf-8")).items():
                if alias not in self.entries:
                    self.aliases[str(alias)] = str(target)
        same_kind = [
            name for name, entry in self.entries.items() if entry.artifact.folder.parent == artifacts_dir
        ]
        if kind not in self.aliases and kind not in self.entries and len(same_kind) == 1:
            self.aliases[kind] = same_kind[0]  # a kind with one artifact answers to its kind's name

    def _refuse(self, name: str, reason: str) -> None:
        log.error("refusing model %s: %s", name, reason, extra={"model": name})

    async def load_all(self) -> None:
        """Verify, load and warm up every model, side by side in worker threads (building an ONNX Runtime
        session is single-threaded and can take seconds for a large unrolled graph)."""
        await asyncio.gather(*(self._load_entry(entry) for entry in self.entries.values()))

    async def _load_entry(self, entry: ModelEntry) -> None:
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            entry.served = await loop.run_in_executor(self.executor, self._load, entry)
        except Exception as exc:  # any failure refuses this model only
            entry.status, entry.error = "failed", str(exc)
            self._refuse(entry.name, str(exc))
            return
        entry.served.start()
        entry.status = "ready"
        elapsed = time.perf_counter() - started
        self.metrics.model_load_duration.labels(entry.name).set(elapsed)
        self.metrics.model_ready.labels(entry.name).set(1)
        log.info("model %s ready in %.2f s", entry.name, elapsed, extra={"model": entry.name})

    def _load(self, entry: ModelEntry) -> ServedModel:
        settings, artifact = self.settings, entry.artifact
        verify_files(artifact)
        runtime = entry.kind.runtime(artifact, RuntimeOptions(settings.providers, settings.intra_op_threads))
        runtime.load()
        policy = settings.batch_policy(entry.kind.name, entry.kind.batching, artifact.name)
        if settings.warmup:
            runtime.warmup(sorted({1, policy.max_batch_size}))
        return ServedModel(
            entry.kind, runtime, policy, self.executor, self.metrics, settings.activation_sample_rate
        )

    async def stop(self) -> None:
        for entry in self.entries.values():
            if entry.served is not None:
                await entry.served.stop()

    def resolve(self, name: str, version: str | None = None) -> ModelEntry:
        """The entry for an artifact name or alias; a given version must be the artifact's."""
        entry = self.entries.get(self.aliases.get(name, name))
        if entry is None:
            known = sorted([*self.entries, *self.aliases])
            raise ModelNotFound(f"unknown model {name!r}; known models: {', '.join(known)}")
        if version not in (None, "", entry.artifact.version):
            raise ModelNotFound(
                f"model {name!r} has no version {version!r} (it has {entry.artifact.version!r})"
            )
        return entry

    def get(self, name: str, version: str | None = None, kind: AnyKind | None = None) -> ServedModel:
        """A ready model of the right kind, else `ModelNotFound` / `ModelNotReady`."""
        entry = self.resolve(name, version)
        if kind is not None and entry.kind is not kind:
            raise ModelNotFound(f"model {name!r} is a {entry.kind.name}, not a {kind.name}")
        if entry.served is None or not entry.ready:
            detail = entry.error or "still loading"
            raise ModelNotReady(
                f"model {entry.name} is not ready: {detail}",
                {"Retry-After": str(self.settings.retry_after_s)},
            )
        return entry.served

    def describe_all(self) -> list[tuple[str, ModelEntry]]:
        """(id, entry) for every artifact, then every alias whose target exists."""
        rows = [(name, entry) for name, entry in self.entries.items()]
        rows += [(alias, self.entries[t]) for alias, t in sorted(self.aliases.items()) if t in self.entries]
        return rows

    @property
    def all_ready(self) -> bool:
        return bool(self.entries) and all(entry.ready for entry in self.entries.values()) and not self.refused

    def not_ready(self) -> dict[str, Any]:
        waiting: dict[str, Any] = {e.name: e.error or e.status for e in self.entries.values() if not e.ready}
        return waiting | self.refused
