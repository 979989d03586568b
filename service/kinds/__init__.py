"""The registry of model kinds: every subpackage of `service.kinds` that exposes `KIND`, plus the modules named in
`LNSERVE_KIND_MODULES` (a kind that lives outside the service: one import path, nothing else to edit)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from typing import Any

from service.kinds.base import Job, ModelKind, Route, TextReplies

AnyKind = ModelKind[Any, Any]


class UnknownKind(LookupError):
    pass


class Registry:
    def __init__(self, kinds: Iterable[AnyKind] = ()) -> None:
        self._kinds: dict[str, AnyKind] = {}
        for kind in kinds:
            self.add(kind)

    def add(self, kind: AnyKind) -> None:
        if kind.name in self._kinds and self._kinds[kind.name] is not kind:
            raise ValueError(f"two model kinds are named {kind.name!r}")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> AnyKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(
                f"unknown model kind {name!r} (known: {', '.join(sorted(self._kinds))})"
            ) from None

    def __iter__(self) -> Iterator[AnyKind]:
        return iter(self._kinds.values())

    def __contains__(self, name: object) -> bool:
        return name in self._kinds


def builtin_modules() -> list[str]:
    return [f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__) if info.ispkg]


def load_kind(module: str) -> AnyKind:
    kind = getattr(importlib.import_module(module), "KIND", None)
    if not isinstance(kind, ModelKind):
        raise TypeError(f"module {module!r} has no KIND (a ModelKind instance)")
    return kind


def registry(extra_modules: Iterable[str] = ()) -> Registry:
    """The built-in kinds and the extra ones, in that order."""
    return Registry(load_kind(module) for module in [*builtin_modules(), *extra_modules])


__all__ = ["AnyKind", "Job", "ModelKind", "Registry", "Route", "TextReplies", "UnknownKind", "registry"]
