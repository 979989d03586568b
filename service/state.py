"""The per-app service state that handlers reach through `deps.State`."""

from __future__ import annotations

from dataclasses import dataclass

from service.batching import BatchLimits
from service.inference import Inference
from service.metrics import Metrics
from service.repository import ModelRepository
from service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    repository: ModelRepository
    inference: Inference
    limits: BatchLimits
