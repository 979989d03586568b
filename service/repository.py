"""The model repository: what is on disk, what is served, and how a request's model name resolves.

On disk a model is `<model_dir>/<kind>/artifacts/<name>/`: either the artifact itself (`sidecar.json` and its
graphs: version 1) or numbered version folders `<name>/<version>/` (as Triton's repository); both may be mixed
(a numbered `1/` wins over the unversioned files). Loading, reloading and unloading are `service.control`'s; this
module holds the state they switch and answers every lookup without a lock: a request reads `Model.default` (or
one version) once, and a switch replaces those references.

A model whose artifact is missing, corrupt or inconsistent is refused with one clear log line and stays not ready;
every other model is still served.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from models.sidecar import WEIGHTS, Sidecar
from service.errors import ModelNotFound, ModelNotReady
from service.kinds import AnyKind, Registry
from service.model import ServedModel
from service.runtime.base import Artifact, ArtifactError
from service.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed", "unavailable"]
Fingerprint = tuple[tuple[str, int, int], ...]
UNVERSIONED = "1"  # the version of an artifact folder that holds its sidecar directly


@dataclass
class ModelVersion:
    """One version of a model: its artifact (None while its sidecar cannot be read) and what serves it."""

    name: str
    version: str
    folder: Path
    artifact: Artifact | None = None
    kind: AnyKind | None = None
    status: Status = "loading"
    error: str | None = None
    served: ServedModel | None = None
    attempted: Fingerprint = ()  # the folder's files at the last load attempt

    @property
    def ready(self) -> bool:
        return self.served is not None


def version_key(entry: ModelVersion) -> int:
    return int(entry.version)


@dataclass
class Model:
    """A model name and its versions under the version policy; `default` is what a request naming no version
    gets (the highest ready version)."""

    name: str
    kind: str
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    default: ModelVersion | None = None
    aliases: list[str] = field(default_factory=list)
    managed: bool = False
    """Meant to be served: every model in `none`/`poll` mode; in `explicit` mode, loaded and not unloaded."""

    def publish(self) -> None:
        """Point `default` at the highest ready version (one reference assignment: requests never see a mix)."""
        self.default = max((v for v in self.versions.values() if v.ready), key=version_key, default=None)

    def shown(self) -> ModelVersion | None:
        """The version metadata describes: the default, else the highest one (loading or failed)."""
        return self.default or max(self.versions.values(), key=version_key, default=None)

    @property
    def state(self) -> Status:
        shown = self.shown()
        if shown is not None:
            return shown.status
        return "loading" if self.managed else "unavailable"


@dataclass(frozen=True)
class Source:
    """A model folder as found on disk."""

    name: str
    kind: str
    versions: dict[str, Path]


@dataclass(frozen=True)
class Alias:
    model: str
    version: str | None = None

    @classmethod
    def parse(cls, target: str) -> Alias:
        """`name` (its default version) or `name/version`."""
        model, _, version = str(target).partition("/")
        return cls(model, version or None)


def scan(model_dir: Path) -> dict[str, Source]:
    """Every model folder under `<model_dir>/*/artifacts/` with its versions."""
    sources: dict[str, Source] = {}
    for folder in sorted(model_dir.glob("*/artifacts/*")):
        if not folder.is_dir():
            continue
        versions = {UNVERSIONED: folder} if (folder / "sidecar.json").is_file() else {}
        for sub in sorted(folder.iterdir()):
            if sub.name.isdigit() and (sub / "sidecar.json").is_file():
                versions[str(int(sub.name))] = sub
        if versions:
            sources[folder.name] = Source(folder.name, folder.parent.parent.name, versions)
    return sources


def fingerprint(folder: Path) -> Fingerprint:
    """Name, size and modification time of the folder's files: any write changes it."""
    stats = ((p.name, p.stat()) for p in sorted(folder.iterdir()) if p.is_file())
    return tuple((name, stat.st_size, stat.st_mtime_ns) for name, stat in stats)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(artifact: Artifact) -> None:
    """Raise `ArtifactError` unless every file of the sidecar (both graphs, and the weights file they share when
    there is one) has the sidecar's size and sha256."""
    for role, spec in artifact.sidecar.files.entries().items():
        path = artifact.folder / spec.path
        if not path.is_file():
            what = "weights file" if role == WEIGHTS else f"{role} graph file"
            raise ArtifactError(f"{what} {path.name} is missing")
        if path.stat().st_size != spec.bytes:
            raise ArtifactError(f"size mismatch for {path.name}: sidecar says {spec.bytes} bytes")
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise ArtifactError(
                f"sha256 mismatch for {path.name}: sidecar says {spec.sha256}, file has {actual}"
            )


def read_artifact(folder: Path, name: str, version: str) -> Artifact:
    """The typed sidecar of one version; the folder names the model and the version (the sidecar's own
    `version` is replaced by the folder's)."""
    path = folder / "sidecar.json"
    try:
        sidecar = Sidecar.model_validate_json(path.read_bytes())
        created = int(path.stat().st_mtime)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise ArtifactError(f"invalid sidecar: {problems}") from None
    if sidecar.name != name:
        raise ArtifactError(f"sidecar name {sidecar.name!r} differs from its folder {name!r}")
    return Artifact(folder, sidecar.model_copy(update={"version": version}), created)


class ModelRepository:
    def __init__(self, settings: Settings, kinds: Registry) -> None:
        self.settings = settings
        self.kinds = kinds
        self.models: dict[str, Model] = {}
        self.aliases: dict[str, Alias] = {}
        self.started = False  # the start-up loads are over

    def know(self, sources: Iterable[Source]) -> None:
        for source in sources:
            self.models.setdefault(source.name, Model(source.name, source.kind))

    def refresh_aliases(self, sources: dict[str, Source]) -> None:
        """Each kind's `aliases.json`, a kind with one model answering to the kind's name, then
        `LNSERVE_ALIASES`; an alias never hides a model's own name."""
        aliases: dict[str, Alias] = {}
        by_kind: dict[str, list[str]] = {}
        for source in sources.values():
            by_kind.setdefault(source.kind, []).append(source.name)
        for kind, names in sorted(by_kind.items()):
            path = self.settings.model_dir / kind / "artifacts" / "aliases.json"
            if path.is_file():
                for alias, target in json.loads(path.read_text(encoding="utf-8")).items():
                    aliases[str(alias)] = Alias.parse(target)
            if kind not in aliases and len(names) == 1:
                aliases[kind] = Alias(names[0])
        aliases |= {alias: Alias.parse(target) for alias, target in self.settings.aliases.items()}
        self.aliases = {a: t for a, t in aliases.items() if a not in self.models and t.model in self.models}
        for model in self.models.values():
            model.aliases = sorted(a for a, t in self.aliases.items() if t.model == model.name)
        log.info("models %s, aliases %s", sorted(self.models), {a: t.model for a, t in self.aliases.items()})

    # --- lookups (the request path) ------------------------------------------------------------------------------
    def resolve(self, name: str, version: str | None = None) -> ModelVersion:
        """The version a name (or alias) and an optional version stand for."""
        alias = self.aliases.get(name)
        model = self.models.get(alias.model if alias is not None else name)
        if model is None:
            known = sorted([*self.models, *self.aliases])
            raise ModelNotFound(f"unknown model {name!r}; known models: {', '.join(known)}")
        version = version or (alias.version if alias is not None else None)
        entry = model.versions.get(version) if version else model.shown()
        if entry is None and version:
            served = ", ".join(sorted(model.versions, key=int)) or "none"
            raise ModelNotFound(f"model {name!r} has no version {version!r} (it serves {served})")
        if entry is None:
            raise ModelNotFound(
                f"model {name!r} is not loaded (POST /v2/repository/models/{model.name}/load loads it)"
            )
        return entry

    def get(self, name: str, version: str | None = None, kind: AnyKind | None = None) -> ServedModel:
        """A ready model of the right kind, else `ModelNotFound` / `ModelNotReady`."""
        entry = self.resolve(name, version)
        served = entry.served
        if served is None:
            raise ModelNotReady(
                f"model {entry.name} is not ready: {entry.error or 'still loading'}",
                {"Retry-After": str(self.settings.retry_after_s)},
            )
        if kind is not None and served.kind is not kind:
            raise ModelNotFound(f"model {name!r} is a {served.kind.name}, not a {kind.name}")
        return served

    def labels(self, name: str | None) -> tuple[str, str]:
        """(model, version) metric labels for a request that failed before it reached a model."""
        try:
            entry = self.resolve(name or "")
        except ModelNotFound:
            return "unknown", ""
        return entry.name, entry.version

    def describe_all(self) -> list[tuple[str, Model]]:
        """(id, model) for every model, then every alias."""
        rows = list(self.models.items())
        return rows + [(alias, self.models[target.model]) for alias, target in sorted(self.aliases.items())]

    def served(self) -> list[ServedModel]:
        return [v.served for m in self.models.values() for v in m.versions.values() if v.served is not None]

    # --- the repository extension and readiness ------------------------------------------------------------------
    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Triton's repository index: one row per version (or per model that has none), with its state."""
        rows: list[dict[str, Any]] = []
        for name, model in sorted(self.models.items()):
            for version, entry in sorted(model.versions.items(), key=lambda kv: int(kv[0])):
                state = {"ready": "READY", "loading": "LOADING"}.get(entry.status, "UNAVAILABLE")
                rows.append({"name": name, "version": version, "state": state, "reason": entry.error or ""})
            if not model.versions:
                reason = "loading" if model.managed else "unloaded"
                rows.append({"name": name, "state": "UNAVAILABLE", "reason": reason})
        return [row for row in rows if row["state"] == "READY"] if ready_only else rows

    def unready(self) -> dict[str, str]:
        """Why the server is not ready, by model (empty when it is): in strict mode every served model and
        version must be ready, else the required models (by default the kinds' default models)."""
        if not self.started:
            return {"models": "still loading"}
        managed = [model for model in self.models.values() if model.managed]
        if not managed and self.settings.model_control != "explicit":
            return {"models": f"no models found in {self.settings.model_dir}"}
        if self.settings.strict_readiness:
            return {
                name: reason
                for model in managed
                for name, reason in self._model_unready(model, every_version=True).items()
            }
        why: dict[str, str] = {}
        configured = self.settings.required_models
        for name in configured if configured is not None else [kind.default_model for kind in self.kinds]:
            alias = self.aliases.get(name)
            model = self.models.get(alias.model if alias is not None else name)
            if model is None or not model.managed:
                if configured is not None:
                    why[name] = "not in the repository" if model is None else "not loaded"
                continue
            why |= self._model_unready(model, every_version=False)
        return why

    @staticmethod
    def _model_unready(model: Model, every_version: bool) -> dict[str, str]:
        if not model.versions:
            return {model.name: "no version to serve"}
        waiting = [v for v in model.versions.values() if not v.ready]
        if not every_version and model.default is not None:
            return {}
        several = len(model.versions) > 1
        return {
            f"{model.name}/{v.version}" if several else model.name: v.error or v.status for v in waiting
        } or ({} if model.default is not None else {model.name: "no ready version"})
