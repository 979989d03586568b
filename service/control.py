"""Model control with Triton's semantics: `none`, `poll` and `explicit` modes; load, reload and unload.

A (re)load builds and warms the new sessions in worker threads while the versions being replaced keep serving,
then switches in one step (a version's entry and the model's `default` are replaced without an await in between),
then drains the replaced batchers and frees their sessions. A version that fails to load is reported with the
reason; if an earlier load of it was serving, that one keeps serving, and no version is retired by a load that
left the model without a ready version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path

from service.errors import LoadFailed, ModelControlDisabled, ModelNotFound
from service.kinds import AnyKind, UnknownKind
from service.metrics import Metrics
from service.model import ServedModel
from service.repository import (
    Fingerprint,
    Model,
    ModelRepository,
    ModelVersion,
    Source,
    fingerprint,
    read_artifact,
    scan,
    verify_files,
)
from service.runtime.base import Artifact, ArtifactError, RuntimeOptions
from service.settings import Settings
from service.tracing import Tracing

log = logging.getLogger(__name__)


class ModelControl:
    def __init__(
        self,
        settings: Settings,
        repository: ModelRepository,
        metrics: Metrics,
        executor: Executor,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing
        self.repository = repository
        self.metrics = metrics
        self.executor = executor
        self._lock = asyncio.Lock()  # one control operation at a time (requests never take it)
        self._polling: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """The start-up loads of the mode, then (in `poll` mode) the repository scans."""
        settings, repository = self.settings, self.repository
        async with self._lock:
            sources = scan(settings.model_dir)
            if not sources:
                log.warning(
                    "no models found in %s (looked for <kind>/artifacts/<name>/[<version>/]sidecar.json); "
                    "the server will not be ready",
                    settings.model_dir,
                )
            repository.know(sources.values())
            repository.refresh_aliases(sources)
            names = list(sources)
            if settings.model_control == "explicit":
                wanted = settings.load_models
                names = names if "*" in wanted else [n for n in wanted if n in sources]
                for name in sorted(set(wanted) - set(sources) - {"*"}):
                    log.error("cannot load model %s at start: not in the repository", name)
            for name in names:
                repository.models[name].managed = True
            await asyncio.gather(*(self._apply(sources[name], reload=False) for name in names))
            repository.started = True
        if settings.model_control == "poll":
            self._polling = asyncio.create_task(self._poll(), name="repository-poll")

    async def stop(self) -> None:
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
        await asyncio.gather(*(served.stop() for served in self.repository.served()))

    # --- the model control API ------------------------------------------------------------------------------------
    async def load(self, name: str) -> Model:
        """Load, or reload every version the policy serves; `LoadFailed` (old versions still serving) if any
        version failed."""
        self._explicit_only("load")
        async with self._lock:
            sources = scan(self.settings.model_dir)
            if name not in sources:
                raise ModelNotFound(f"no model {name!r} in the repository {self.settings.model_dir}")
            self.repository.know(sources.values())
            self.repository.models[name].managed = True
            errors = await self._apply(sources[name], reload=True)
            self.repository.refresh_aliases(sources)
        model = self.repository.models[name]
        if errors:
            serving = ", ".join(sorted(v.version for v in model.versions.values() if v.ready)) or "none"
            raise LoadFailed(
                f"failed to load model {name!r}: {'; '.join(errors)} (versions serving: {serving})"
            )
        return model

    async def unload(self, name: str) -> None:
        """Stop serving every version of the model: taken out of routing at once, then drained and freed."""
        self._explicit_only("unload")
        async with self._lock:
            model = self.repository.models.get(name)
            if model is None:
                raise ModelNotFound(f"unknown model {name!r}")
            retired = self._retire(model, list(model.versions))
            model.managed = False
        await asyncio.gather(*(served.stop() for served in retired))
        log.info("model %s unloaded", name, extra={"model": name})

    def _explicit_only(self, action: str) -> None:
        if self.settings.model_control != "explicit":
            raise ModelControlDisabled(
                f"explicit model {action} is not allowed in model control mode "
                f"{self.settings.model_control!r} (LNSERVE_MODEL_CONTROL=explicit allows it)"
            )

    # --- polling ---------------------------------------------------------------------------------------------------
    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.repository_poll_s)
            try:
                await self.poll_once()
            except Exception:  # a scan that failed (a folder removed mid-way): the next one tries again
                log.exception("repository poll failed")

    async def poll_once(self) -> None:
        """Load new models and versions, reload changed ones, unload what disappeared."""
        async with self._lock:
            sources = scan(self.settings.model_dir)
            retired: list[ServedModel] = []
            for name, model in self.repository.models.items():
                if name not in sources and model.managed:
                    retired += self._retire(model, list(model.versions))
                    model.managed = False
            self.repository.know(sources.values())
            for name in sources:
                self.repository.models[name].managed = True
            await asyncio.gather(*(self._apply(source, reload=False) for source in sources.values()))
            self.repository.refresh_aliases(sources)
        await asyncio.gather(*(served.stop() for served in retired))

    # --- one model --------------------------------------------------------------------------------------------------
    async def _apply(self, source: Source, reload: bool) -> list[str]:
        """Serve the versions the policy selects from `source`: build what is new, changed (or everything, on a
        reload), switch, then drain and free what was replaced. Returns the failures."""
        model = self.repository.models[source.name]
        targets = self.settings.model_version_policy(source.kind, source.name).select(list(source.versions))
        jobs: dict[str, asyncio.Future[ServedModel]] = {}
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        for version in targets:
            folder = source.versions[version]
            entry = model.versions.get(version)
            files = fingerprint(folder)
            if entry is not None and not reload and entry.attempted == files:
                continue  # unchanged since it was last tried
            if entry is None or not entry.ready:
                entry = model.versions[version] = ModelVersion(source.name, version, folder, attempted=files)
                self._gauge(entry, 0)
            try:
                artifact, kind = self._read(source.name, version, folder)
            except (ArtifactError, UnknownKind, OSError) as exc:
                errors.append(self._failed(entry, str(exc), files))
                continue
            if not entry.ready:
                entry.artifact, entry.kind = artifact, kind
            jobs[version] = loop.run_in_executor(self.executor, self._build, artifact, kind)
        retired: list[ServedModel] = []
        started = time.perf_counter()
        for version, result in zip(
            jobs, await asyncio.gather(*jobs.values(), return_exceptions=True), strict=True
        ):
            entry = model.versions[version]
            files = fingerprint(source.versions[version])
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                errors.append(self._failed(entry, str(result), files))
                continue
            result.start()
            if entry.served is not None:
                retired.append(entry.served)
            fresh = ModelVersion(
                source.name,
                version,
                entry.folder,
                result.runtime.artifact,
                result.kind,
                "ready",
                None,
                result,
                files,
            )
            model.versions[version] = fresh  # the switch: requests from now on get the new sessions
            self._gauge(fresh, 1)
            self.metrics.model_load_duration.labels(source.name, version).set(time.perf_counter() - started)
            log.info("model %s version %s ready", source.name, version, extra={"model": source.name})
        if any(model.versions[v].ready for v in targets if v in model.versions):
            retired += self._retire(model, [v for v in model.versions if v not in targets])
        model.publish()
        await asyncio.gather(*(served.stop() for served in retired))
        return errors

    def _read(self, name: str, version: str, folder: Path) -> tuple[Artifact, AnyKind]:
        artifact = read_artifact(folder, name, version)
        return artifact, self.repository.kinds.get(artifact.kind)

    def _build(self, artifact: Artifact, kind: AnyKind) -> ServedModel:
        """Verify, load and warm up one version (in a worker thread)."""
        settings = self.settings
        verify_files(artifact)
        policy = settings.batch_policy(kind.name, kind.batching, artifact.name)
        options = replace(
            RuntimeOptions.from_settings(settings),
            concurrent_batches=policy.concurrent_batches,
            precision=settings.model_precision(kind.name, artifact.name),
        )
        runtime = kind.runtime(artifact, options)
        runtime.load()
        if settings.warmup:
            runtime.warmup(sorted({1, policy.max_batch_size}))
        return ServedModel(
            kind,
            runtime,
            policy,
            self.metrics,
            settings.activation_sample_rate,
            history_s=settings.activation_history_s,
            tracing=self.tracing,
        )

    def _failed(self, entry: ModelVersion, reason: str, files: Fingerprint) -> str:
        entry.attempted = files
        if entry.ready:
            entry.error = f"reload failed, the previous load still serves: {reason}"
        else:
            entry.status, entry.error = "failed", reason
            self._gauge(entry, 0)
        log.error(
            "refusing model %s: %s", entry.name, reason, extra={"model": entry.name, "version": entry.version}
        )
        return f"version {entry.version}: {reason}"

    def _retire(self, model: Model, versions: list[str]) -> list[ServedModel]:
        """Take versions out of routing (their batchers are drained by the caller) and drop their series."""
        retired = []
        for version in versions:
            entry = model.versions.pop(version)
            if entry.served is not None:
                retired.append(entry.served)
            for gauge in (self.metrics.model_ready, self.metrics.model_load_duration):
                with contextlib.suppress(KeyError):
                    gauge.remove(model.name, version)
        model.publish()
        return retired

    def _gauge(self, entry: ModelVersion, value: int) -> None:
        self.metrics.model_ready.labels(entry.name, entry.version).set(value)
