"""Service settings: one pydantic-settings class, read from `LNSERVE_*` environment variables and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class Settings(BaseSettings):
    """Everything the service can be told; every field is an `LNSERVE_<FIELD>` environment variable."""

    model_config = SettingsConfigDict(env_prefix="LNSERVE_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Bind address of the HTTP server."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port of the HTTP server (0 picks a free one)."""

    model_dir: Path = REPO_MODELS_DIR
    """The `models/` folder; artifacts are found at `<model_dir>/*/artifacts/*/sidecar.json`."""

    providers: str = "auto"
    """ONNX Runtime providers: `auto` (CUDA when available, else CPU), `cpu`, `cuda`, or a comma list of ORT names."""

    intra_op_threads: int = Field(default=0, ge=0)
    """Threads per ONNX Runtime session; 0 fits them to the machine (the CPU count, at most 8)."""

    max_batch_size: int = Field(default=32, ge=1, le=1024)
    """Largest batch the dynamic batcher forms for one model."""

    max_queue_delay_us: int = Field(default=500, ge=0, le=10_000_000)
    """How long the batcher waits for more requests after the first one of a batch, in microseconds."""

    max_queue_size: int = Field(default=512, ge=1)
    """Requests that may wait per model; one more is refused at once with 503 and `Retry-After`."""

    request_timeout_s: float = Field(default=30.0, gt=0)
    """Per-request limit for queueing plus inference; past it the request fails with 504."""

    activation_sample_rate: float = Field(default=0.001, ge=0.0, le=1.0)
    """Fraction of ordinary traffic run through the instrumented graph to feed the live activation aggregates."""

    api_key: SecretStr | None = None
    """When set, every endpoint except health and `/metrics` needs `Authorization: Bearer <api_key>`."""

    max_body_bytes: int = Field(default=1_048_576, ge=1)
    """Largest request body accepted; larger bodies get 413."""

    log_format: Literal["json", "text"] = "json"
    """`json` (one object per line, with request ids) or `text` for humans."""

    log_level: str = "INFO"
    """Python logging level of the service loggers."""

    warmup: bool = True
    """Run every batch and length bucket once before a model reports ready."""

    load_in_background: bool = True
    """Load models after the server starts listening, so `/v2/health/live` answers while they load."""

    graceful_timeout_s: float = Field(default=30.0, gt=0)
    """On SIGTERM, how long in-flight requests may take to finish before the server exits anyway."""

    retry_after_s: int = Field(default=1, ge=1)
    """Value of the `Retry-After` header sent with 503 when a queue is full or a model is not ready."""
