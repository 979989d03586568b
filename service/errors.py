"""One error base class carrying its HTTP status; every error body is `{"error": "<message>"}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class LnserveError(Exception):
    """Base of every error the service answers with; `reason` is the failure-metric label.

    Subclasses name their status and reason in the class line: `class QueueFull(LnserveError, status=503, ...)`.
    """

    status_code: ClassVar[int] = 500
    reason: ClassVar[str] = "internal"

    def __init_subclass__(cls, status: int | None = None, reason: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
        if reason is not None:
            cls.reason = reason

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(LnserveError, status=400, reason="bad_request"):
    """The body is not what the protocol expects at all (not JSON, broken binary framing)."""


class InvalidInput(LnserveError, status=422, reason="bad_request"):
    """Well-formed JSON whose values are wrong (FastAPI's validation errors land here too)."""


class NonFiniteOutput(LnserveError, status=422, reason="nonfinite_output"):
    """The model's answer for this input is not a finite number (e.g. a series near the float32 maximum)."""


class Unauthorized(LnserveError, status=401, reason="unauthorized"):
    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message, {"WWW-Authenticate": "Bearer"})


class ModelNotFound(LnserveError, status=404, reason="not_found"):
    """Unknown model, alias or version; or a model of another kind than the route serves."""


class PayloadTooLarge(LnserveError, status=413, reason="too_large"):
    pass


class ModelControlDisabled(LnserveError, status=403, reason="forbidden"):
    """Load / unload asked for while the model control mode is `none` or `poll` (as Triton refuses them)."""


class LoadFailed(LnserveError, status=400, reason="load_failed"):
    """A load or reload that failed (the versions that served before still serve); the message says why."""


class BodyIncomplete(LnserveError, status=408, reason="incomplete_body"):
    """The client went away, or was cut off by the body timeout, before its body arrived."""


class ModelNotReady(LnserveError, status=503, reason="not_ready"):
    """Loading, or refused at load (the reason is in the message)."""


class QueueFull(LnserveError, status=503, reason="queue_full"):
    pass


class RequestTimeout(LnserveError, status=504, reason="timeout"):
    pass


class InternalError(LnserveError, status=500, reason="internal"):
    pass


REASON_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "bad_request",
    408: "incomplete_body",
    413: "too_large",
    422: "bad_request",
    503: "queue_full",
    504: "timeout",
}


def reason_for_status(status: int) -> str:
    """The failure-metric reason for a status that did not come from an `LnserveError`."""
    return REASON_BY_STATUS.get(status, "internal" if status >= 500 else "bad_request")


def format_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic errors as one readable line: `series[3]: Input should be a finite number; horizon: ...`."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            parts.append(
                f"request body is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
            )
            continue
        loc = [part for part in error.get("loc", ()) if part != "body"]
        where = ""
        for part in loc:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        message = str(error.get("msg", "invalid value"))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"
