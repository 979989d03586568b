"""Service settings: one pydantic-settings class, read from `LNSERVE_*` environment variables and passed in."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.batching import BatchPolicy

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class ModelSettings(BaseModel):
    """Per-model (or per-kind) overrides of the batching settings, keyed by artifact or kind name."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(default=None, ge=1, le=1024)
    max_queue_delay_us: int | None = Field(default=None, ge=0, le=10_000_000)
    max_queue_size: int | None = Field(default=None, ge=1)
    max_items_per_request: int | None = Field(default=None, ge=1)
    request_timeout_s: float | None = Field(default=None, gt=0)
    group_by_key: bool | None = None
    """Batch only items of one `batch_key` together (the chatbot's key is its length bucket)."""

    def policy_fields(self) -> dict[str, Any]:
        return policy_fields(self.model_dump(exclude_none=True))


def policy_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings names -> `BatchPolicy` field names and units."""
    renames = {"max_queue_delay_us": "max_queue_delay_s", "request_timeout_s": "timeout_s"}
    out = {renames.get(k, k): v for k, v in values.items()}
    if "max_queue_delay_s" in out:
        out["max_queue_delay_s"] = out["max_queue_delay_s"] / 1e6
    return out


class Settings(BaseSettings):
    """Everything the service can be told; every field is an `LNSERVE_<FIELD>` environment variable."""

    model_config = SettingsConfigDict(env_prefix="LNSERVE_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Bind address of the HTTP server."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port of the HTTP server (0 picks a free one)."""

    model_dir: Path = REPO_MODELS_DIR
    """The `models/` folder; artifacts are found at `<model_dir>/*/artifacts/*/sidecar.json`."""

    kind_modules: list[str] = Field(default_factory=list)
    """Extra model kinds: import paths of modules exposing `KIND` (JSON list), besides those in `service.kinds`."""

    providers: str = "auto"
    """ONNX Runtime providers: `auto` (CUDA when available, else CPU), `cpu`, `cuda`, or a comma list of ORT names."""

    intra_op_threads: int = Field(default=0, ge=0)
    """Threads per ONNX Runtime session; 0 fits them to the machine (the CPU count, at most 8)."""

    max_batch_size: int = Field(default=32, ge=1, le=1024)
    """Largest batch the dynamic batcher forms for one model."""

    max_queue_delay_us: int = Field(default=500, ge=0, le=10_000_000)
    """How long the batcher waits for more requests after the first one of a batch, in microseconds."""

    max_queue_size: int = Field(default=512, ge=1)
    """Items (texts, series) that may wait per model; one more is refused at once with 503 and `Retry-After`."""

    max_items_per_request: int = Field(default=256, ge=1)
    """Items one request may hold (at most `max_queue_size`); a larger request gets 413 (a retry cannot help)."""

    request_timeout_s: float = Field(default=30.0, gt=0)
    """Per-request limit for queueing plus inference; past it the request fails with 504."""

    model_settings: dict[str, ModelSettings] = Field(default_factory=dict)
    """Batching overrides per artifact or kind name (JSON), e.g. `{"chatbot-post": {"max_batch_size": 64}}`."""

    activation_sample_rate: float = Field(default=0.001, ge=0.0, le=1.0)
    """Fraction of batches run through the instrumented graph to feed the live activation aggregates."""

    api_key: SecretStr | None = None
    """When set, every endpoint except health and `/metrics` needs `Authorization: Bearer <api_key>`."""

    max_body_bytes: int = Field(default=1_048_576, ge=1)
    """Largest request body accepted; larger bodies get 413."""

    header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection must deliver a request's headers within this time of opening (or of its previous response)."""

    body_timeout_s: float = Field(default=30.0, gt=0)
    """A request's body must arrive within this time of its headers; else 408 and the connection is closed."""

    keep_alive_timeout_s: int = Field(default=5, ge=1)
    """An idle keep-alive connection is closed after this many seconds without a new request."""

    max_connections: int = Field(default=2048, ge=1)
    """Open connections the server keeps; a request on one more gets 503 with `Retry-After` and is closed."""

    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])
    """Host names the server answers to (JSON list; `*.example.com` matches subdomains); others get 400."""

    log_format: Literal["json", "text"] = "json"
    """`json` (one object per line, with request ids) or `text` for humans."""

    log_level: str = "INFO"
    """Python logging level of the service loggers (`DEBUG`, `INFO`, `WARNING`, `ERROR`)."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if not isinstance(logging.getLevelName(value.upper()), int):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()

    warmup: bool = True
    """Run every batch and length bucket once before a model reports ready."""

    load_in_background: bool = True
    """Load models after the server starts listening, so `/v2/health/live` answers while they load."""

    graceful_timeout_s: float = Field(default=30.0, gt=0)
    """On SIGTERM, how long in-flight requests may take to finish before the server exits anyway."""

    retry_after_s: int = Field(default=1, ge=1)
    """Value of the `Retry-After` header sent with 503 when a queue is full or a model is not ready."""

    def batch_policy(self, kind: str, kind_defaults: Mapping[str, Any], model: str) -> BatchPolicy:
        """Service-wide settings, then the kind's defaults (where the setting was not given), then the per-kind and
        per-model overrides."""
        given = {name for name in self.model_fields_set}
        base = BatchPolicy(
            max_batch_size=self.max_batch_size,
            max_queue_delay_s=self.max_queue_delay_us / 1e6,
            max_queue_size=self.max_queue_size,
            max_items_per_request=self.max_items_per_request,
            timeout_s=self.request_timeout_s,
            retry_after_s=self.retry_after_s,
        )
        defaults = {k: v for k, v in kind_defaults.items() if k not in given}
        policy = base.merged(policy_fields(defaults))
        for name in (kind, model):
            if name in self.model_settings:
                policy = policy.merged(self.model_settings[name].policy_fields())
        return policy
