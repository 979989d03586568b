"""The model repository: finds sidecars, verifies artifact checksums, loads runtimes, resolves aliases.

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
from typing import Any

from service.batching import BatchLimits, DynamicBatcher
from service.errors import ModelNotFound, ModelNotReady
from service.metrics import Metrics
from service.runtime import RUNTIMES, Artifact, ArtifactError, Runtime
from service.settings import Settings

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class ModelEntry:
    """One artifact and its serving state (`loading`, `ready` or `failed`)."""

    artifact: Artifact
    state: str = "loading"
    error: str | None = None
    runtime: Runtime[Any, Any] | None = None
    batcher: DynamicBatcher[Any, Any] | None = None
    aliases: list[str] = field(default_factory=list)
    loaded_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(artifact: Artifact) -> None:
    """Raise `ArtifactError` unless every file has the sidecar's size and sha256."""
    for role in ("model", "diagnostics"):
        spec = artifact.sidecar["files"][role]
        path = artifact.file(role)
        if not path.is_file():
            raise ArtifactError(f"{role} file {path.name} is missing")
        actual = sha256_of(path)
        if actual != spec["sha256"]:
            raise ArtifactError(
                f"sha256 mismatch for {path.name}: sidecar says {spec['sha256']}, file has {actual}"
            )
        if "bytes" in spec and path.stat().st_size != int(spec["bytes"]):
            raise ArtifactError(f"size mismatch for {path.name}: sidecar says {spec['bytes']} bytes")


def read_artifact(sidecar_path: Path) -> Artifact:
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"unsupported sidecar format_version {sidecar.get('format_version')!r}")
    if sidecar.get("kind") not in RUNTIMES:
        raise ArtifactError(f"unknown model kind {sidecar.get('kind')!r}")
    if sidecar.get("name") != sidecar_path.parent.name:
        raise ArtifactError(
            f"sidecar name {sidecar.get('name')!r} differs from its folder {sidecar_path.parent.name!r}"
        )
    return Artifact(sidecar_path.parent, sidecar)


class ModelRepository:
    def __init__(self, settings: Settings, metrics: Metrics, executor: Executor) -> None:
        self.settings = settings
        self.metrics = metrics
        self.executor = executor
        self.entries: dict[str, ModelEntry] = {}
        self.aliases: dict[str, str] = {}
        self.refused: dict[str, str] = {}  # sidecars that could not even be parsed: path -> reason
        self.loaded = asyncio.Event()

    def discover(self) -> None:
        for sidecar_path in sorted(self.settings.model_dir.glob("*/artifacts/*/sidecar.json")):
            name = sidecar_path.parent.name
            try:
                artifact = read_artifact(sidecar_path)
            except (ArtifactError, ValueError, KeyError, OSError) as exc:
                self._refuse(name, str(exc))
                self.refused[str(sidecar_path)] = str(exc)
                continue
            self.entries[artifact.name] = ModelEntry(artifact)
            self.metrics.model_ready.labels(artifact.name).set(0)
        for kind_dir in sorted(self.settings.model_dir.glob("*/artifacts")):
            self._read_aliases(kind_dir)
        for alias, target in self.aliases.items():
            if target in self.entries:
                self.entries[target].aliases.append(alias)
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

    async def load_all(self, limits: BatchLimits) -> None:
        """Verify, load and warm up every model, side by side in worker threads (building an ONNX Runtime
        session is single-threaded and can take seconds for a large unrolled graph)."""
        await asyncio.gather(*(self._load_entry(entry, limits) for entry in self.entries.values()))
        self.loaded.set()

    async def _load_entry(self, entry: ModelEntry, limits: BatchLimits) -> None:
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            entry.runtime = await loop.run_in_executor(self.executor, self._load, entry.artifact, limits)
        except Exception as exc:  # any failure refuses this model only
            entry.state, entry.error = "failed", str(exc)
            self._refuse(entry.name, str(exc))
            return
        entry.batcher = DynamicBatcher(entry.name, entry.runtime.predict, limits, self.executor, self.metrics)
        entry.batcher.start()
        entry.state = "ready"
        elapsed = time.perf_counter() - started
        self.metrics.model_load_duration.labels(entry.name).set(elapsed)
        self.metrics.model_ready.labels(entry.name).set(1)
        log.info("model %s ready in %.2f s", entry.name, elapsed, extra={"model": entry.name})

    def _load(self, artifact: Artifact, limits: BatchLimits) -> Runtime[Any, Any]:
        verify_files(artifact)
        runtime = RUNTIMES[artifact.kind](artifact, self.settings.providers, self.settings.intra_op_threads)
        runtime.load()
        if self.settings.warmup:
            sizes = sorted({1, limits.max_batch_size})
            runtime.warmup(sizes)
        compute = self.metrics.compute_duration
        runtime.on_compute = lambda path, seconds: compute.labels(artifact.name, path).observe(seconds)
        runtime.ready = True
        return runtime

    async def stop(self) -> None:
        for entry in self.entries.values():
            if entry.batcher is not None:
                await entry.batcher.stop()

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

    def get(self, name: str, version: str | None = None, kind: str | None = None) -> ModelEntry:
        """A ready entry of the right kind, else `ModelNotFound` / `ModelNotReady`."""
        entry = self.resolve(name, version)
        if kind is not None and entry.artifact.kind != kind:
            raise ModelNotFound(f"model {name!r} is a {entry.artifact.kind}, not a {kind}")
        if not entry.ready:
            detail = entry.error or "still loading"
            raise ModelNotReady(
                f"model {entry.name} is not ready: {detail}",
                {"Retry-After": str(self.settings.retry_after_s)},
            )
        return entry

    @property
    def all_ready(self) -> bool:
        return bool(self.entries) and all(entry.ready for entry in self.entries.values()) and not self.refused
