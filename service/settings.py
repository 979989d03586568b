"""Service settings: one pydantic-settings class, read from `LNSERVE_*` environment variables and passed in."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.batching import BatchPolicy

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class VersionPolicy(BaseModel):
    """Which versions of a model are served (Triton's `version_policy`): exactly one of `latest`, `all`, `specific`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latest: int | None = Field(default=None, ge=1)
    """The N highest versions."""
    all: bool | None = None
    """Every version found."""
    specific: list[int] | None = Field(default=None, min_length=1)
    """These versions (those of them that exist)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> VersionPolicy:
        given = [name for name in ("latest", "all", "specific") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of latest, all, specific (got {given or 'none'})")
        return self

    def select(self, versions: list[str]) -> list[str]:
        """The versions to serve, highest first (`versions` are numeric folder names)."""
        ordered = sorted(versions, key=int, reverse=True)
        if self.latest is not None:
            return ordered[: self.latest]
        if self.all:
            return ordered
        return [v for v in ordered if int(v) in set(self.specific or ())]


LATEST_ONE = VersionPolicy(latest=1)


class ModelSettings(BaseModel):
    """Per-model (or per-kind) settings, keyed by artifact or kind name: batching overrides and the version
    policy."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(default=None, ge=1, le=1024)
    max_queue_delay_us: int | None = Field(default=None, ge=0, le=10_000_000)
    max_queue_size: int | None = Field(default=None, ge=1)
    max_items_per_request: int | None = Field(default=None, ge=1)
    request_timeout_s: float | None = Field(default=None, gt=0)
    group_by_key: bool | None = None
    """Batch only items of one `batch_key` together (the chatbot's key is its length bucket)."""
    wait_when_idle: bool | None = None
    """Wait `max_queue_delay_us` for companions even when the model is idle (default: a lone request runs at once)."""
    inline_when_idle: bool | None = None
    """Run a lone request at an idle model on the event loop's thread (default), without the thread hand-over."""
    concurrent_batches: int | None = Field(default=None, ge=0, le=64)
    """Batches the model runs at once on the CPU (0: the machine's rule)."""
    precision: Literal["fp32", "fp16", "int8"] | None = None
    """Of the model's fast graph (default: `LNSERVE_PRECISION`), e.g. `{"chatbot": {"precision": "int8"}}`."""
    version_policy: VersionPolicy | None = None
    """Which versions of the model are served, e.g. `{"latest": 2}`, `{"all": true}`, `{"specific": [1, 3]}`."""

    def policy_fields(self) -> dict[str, Any]:
        return policy_fields(self.model_dump(exclude_none=True, exclude={"version_policy", "precision"}))


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

    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    """TCP port of the KServe v2 gRPC server (`inference.GRPCInferenceService`); unset: no gRPC server."""

    model_dir: Path = REPO_MODELS_DIR
    """The `models/` folder: a model is `<model_dir>/<kind>/artifacts/<name>/` holding `sidecar.json` (version 1)
    or numbered version folders `<name>/<version>/sidecar.json`."""

    model_control: Literal["none", "poll", "explicit"] = "none"
    """Triton's model control modes: `none` loads every model at start and never changes; `poll` also rescans the
    repository every `repository_poll_s` and loads, reloads or unloads what changed; `explicit` loads only
    `load_models` at start, then what `POST /v2/repository/models/{name}/load` and `/unload` say."""

    repository_poll_s: float = Field(default=15.0, gt=0)
    """Seconds between two scans of the repository in `poll` mode."""

    load_models: list[str] = Field(default_factory=list)
    """Models loaded at start in `explicit` mode (JSON list; `["*"]` loads every model)."""

    version_policy: VersionPolicy = LATEST_ONE
    """Versions served per model unless `model_settings` says otherwise (JSON), e.g. `{"latest": 2}`."""

    aliases: dict[str, str] = Field(default_factory=dict)
    """Aliases besides (and over) each kind's `aliases.json` (JSON): alias -> `name` (its highest ready version)
    or `name/version` (that version), e.g. `{"chatbot": "chatbot-peri", "chatbot-stable": "chatbot-post/1"}`."""

    strict_readiness: bool = False
    """`/v2/health/ready` needs every served model ready (Triton's `--strict-readiness`); when false, only the
    `required_models`."""

    required_models: list[str] | None = None
    """Models (names or aliases) that `/v2/health/ready` waits for when not strict (JSON list); default: the
    model each kind's route answers with (`chatbot`, `forecaster`)."""

    kind_modules: list[str] = Field(default_factory=list)
    """Extra model kinds: import paths of modules exposing `KIND` (JSON list), besides those in `service.kinds`."""

    providers: str = "auto"
    """ONNX Runtime providers: `auto` (CUDA when available, else CPU), `cpu`, `cuda`, or a comma list of ORT names."""

    intra_op_threads: int = Field(default=0, ge=0)
    """Threads per ONNX Runtime session; 0 fits them to the machine (the usable cores, i.e. the CPU affinity capped by
    a container's CPU limit, shared by the concurrent batches, at most 8 each; 1 on CUDA)."""

    concurrent_batches: int = Field(default=0, ge=0, le=64)
    """Batches one model runs at once on the CPU, each on its own thread (as Triton's instance count, with one
    session); 0 fits it to the machine: 2 with two cores or more, else 1. A kind may default to 1 (the forecaster:
    its unrolled LSTM gains more from two threads per batch). Always 1 on CUDA."""

    intra_op_spinning: bool = True
    """Whether ONNX Runtime's intra-op threads spin while waiting for work (CPU provider). Off frees the core a
    waiting thread would burn for the event loop, at the cost of a wake-up per run."""

    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    """Of each fast graph, converted at load from the shipped one (inputs and outputs stay fp32) and served only if it
    matches the fp32 graph on the warm-up batches (relative error within 1e-2 for fp16, 1e-1 for int8); the
    diagnostic graph stays fp32. `fp16`: float16, for CUDA. `int8`: ONNX Runtime's dynamic quantization of the
    MatMuls, on the CPU provider only (the chatbot 1.3x faster per message, the forecaster slower: set it per model
    in `model_settings`). Both need the `onnx` package (the `int8` or `gpu` extra; both images have it)."""

    cuda_graphs: bool = True
    """On CUDA, capture the fast graph of every length bucket at power-of-two batch sizes during warm-up."""

    cuda_device_id: int = Field(default=0, ge=0)
    """The GPU the CUDA provider uses."""

    max_batch_size: int = Field(default=32, ge=1, le=1024)
    """Largest batch the dynamic batcher forms for one model."""

    max_queue_delay_us: int = Field(default=500, ge=0, le=10_000_000)
    """How long the batcher waits for more requests after the first one of a batch, in microseconds."""

    wait_when_idle: bool = False
    """Wait `max_queue_delay_us` for companions even when a model is idle. Off (default): a request that finds its
    model idle (no batch running, nothing arrived while the last one ran) is not held for companions; under load
    batches form as before."""

    inline_when_idle: bool = True
    """Run such a lone request (one item, model idle) on the event loop's own thread instead of handing it to the
    model's thread and back: the two thread wake-ups cost more than the loop loses by blocking for one inference of
    one item (docs/benchmarks.md). Off: every batch runs on the model's thread."""

    max_queue_size: int = Field(default=512, ge=1)
    """Items (texts, series) that may wait per model; one more is refused at once with 503 and `Retry-After`."""

    max_items_per_request: int = Field(default=256, ge=1)
    """Items one request may hold (at most `max_queue_size`); a larger request gets 413 (a retry cannot help)."""

    request_timeout_s: float = Field(default=30.0, gt=0)
    """Per-request limit for queueing plus inference; past it the request fails with 504."""

    model_settings: dict[str, ModelSettings] = Field(default_factory=dict)
    """Batching overrides per artifact or kind name (JSON), e.g. `{"chatbot-post": {"max_batch_size": 64}}`."""

    activation_sample_rate: float = Field(default=0.005, ge=0.0, le=1.0)
    """Fraction of batches run through the instrumented graph to feed the live activation aggregates."""

    activation_history_s: int = Field(default=900, ge=1, le=86_400)
    """Seconds of live activation sums kept per model: the longest `window_s` of `/v1/models/{name}/activations`."""

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

    tracing: bool = False
    """OpenTelemetry spans (request, queue, compute, diagnostic) and trace ids in the logs; needs the `otel`
    extra. Exported over OTLP (the standard `OTEL_EXPORTER_OTLP_*` variables) unless a tracer provider is set."""

    def _per_model(self, field: str, kind: str, model: str) -> Any:
        """A service-wide setting, then the kind's `model_settings` entry for it, then the model's own."""
        value = getattr(self, field)
        for name in (kind, model):
            given = getattr(self.model_settings.get(name), field, None)
            if given is not None:
                value = given
        return value

    def model_version_policy(self, kind: str, model: str) -> VersionPolicy:
        """The service-wide policy, then the kind's, then the model's own."""
        policy: VersionPolicy = self._per_model("version_policy", kind, model)
        return policy

    def model_precision(self, kind: str, model: str) -> Literal["fp32", "fp16", "int8"]:
        """The service-wide precision, then the kind's, then the model's own."""
        precision: Literal["fp32", "fp16", "int8"] = self._per_model("precision", kind, model)
        return precision

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
            wait_when_idle=self.wait_when_idle,
            inline_when_idle=self.inline_when_idle,
            concurrent_batches=self.concurrent_batches,
        )
        defaults = {k: v for k, v in kind_defaults.items() if k not in given}
        policy = base.merged(policy_fields(defaults))
        for name in (kind, model):
            if name in self.model_settings:
                policy = policy.merged(self.model_settings[name].policy_fields())
        return policy
