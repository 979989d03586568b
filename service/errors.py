"""One error base class carrying its HTTP status; every error body is `{"error": "<message>"}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class LnserveError(Exception):
    """Base of every error the service answers with; `reason` is the failure-metric label."""

    status_code: ClassVar[int] = 500
    reason: ClassVar[str] = "internal"

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(LnserveError):
    status_code = 400
    reason = "bad_request"


class InvalidInput(LnserveError):
    """Well-formed JSON whose values are wrong (FastAPI's validation errors land here too)."""

    status_code = 422
    reason = "bad_request"


class NonFiniteOutput(LnserveError):
    """The model's answer for this input is not a finite number (e.g. a series near the float32 maximum)."""

    status_code = 422
    reason = "nonfinite_output"


class Unauthorized(LnserveError):
    status_code = 401
    reason = "unauthorized"

    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message, {"WWW-Authenticate": "Bearer"})


class ModelNotFound(LnserveError):
    status_code = 404
    reason = "not_found"


class PayloadTooLarge(LnserveError):
    status_code = 413
    reason = "too_large"


class ModelNotReady(LnserveError):
    status_code = 503
    reason = "not_ready"


class QueueFull(LnserveError):
    status_code = 503
    reason = "queue_full"


class RequestTimeout(LnserveError):
    status_code = 504
    reason = "timeout"


class InternalError(LnserveError):
    status_code = 500
    reason = "internal"


REASON_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "bad_request",
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
