"""One runtime class per model kind."""

from __future__ import annotations

from typing import Any

from service.runtime.base import Artifact, ArtifactError, Runtime
from service.runtime.chatbot import ChatbotRuntime
from service.runtime.forecaster import ForecasterRuntime

RUNTIMES: dict[str, type[Runtime[Any, Any]]] = {"chatbot": ChatbotRuntime, "forecaster": ForecasterRuntime}

__all__ = ["RUNTIMES", "Artifact", "ArtifactError", "ChatbotRuntime", "ForecasterRuntime", "Runtime"]
