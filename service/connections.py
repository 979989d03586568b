"""Connection limits uvicorn lacks, added at the callbacks of its httptools protocol.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but waits forever for a request's headers or
body, takes any number of connections and any size of headers, and its own `limit_concurrency` answers in plain
text. Here every connection gets:

- a header deadline: the request line and headers must arrive within `header_timeout_s` of the connection opening
  or of the previous response (slowloris), else the connection is closed; at most `MAX_HEADER_BYTES` of them
  (else 431);
- a body deadline: the body must arrive within `body_timeout_s` of the headers, else 408 and the connection is
  closed (the handler still reading it sees a disconnect);
- a cap: a connection opened while `max_connections` are open gets 503 with `Retry-After` to its request and is
  closed;
- on shutdown, idle keep-alive connections are closed after `DRAIN_GRACE_S` rather than at once, so a request
  already sent on one is answered instead of reset.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
DRAIN_GRACE_S = 1.0
SWEEP_S = 0.25  # deadlines are kept to within this


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    retry_after_s: int


def _response(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps({"error": message}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def protocol(limits: Limits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with these limits (pass it as `uvicorn.Config(http=...)`)."""
    refused = _response(
        503,
        "Service Unavailable",
        f"the server holds its maximum of {limits.max_connections} connections; retry later",
        {"retry-after": str(limits.retry_after_s)},
    )
    body_late = _response(
        408, "Request Timeout", f"the request body did not arrive within {limits.body_timeout_s:g} s"
    )
    too_large = _response(
        431, "Request Header Fields Too Large", f"request headers exceed {MAX_HEADER_BYTES} bytes"
    )

    def sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        now = loop.time()
        for connection in list(connections):
            if isinstance(connection, LimitedProtocol) and connection._deadline <= now:
                connection._deadline = math.inf
                connection._expire()
        loop.call_later(SWEEP_S, sweep, loop, connections)

    class LimitedProtocol(HttpToolsProtocol):
        sweeping = False  # one sweep per server checks every connection's deadline

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline = math.inf
            self._expire: Callable[[], None] = self._headers_late
            self._header_bytes = 0
            self._refuse = False
            self._draining = False

        # --- deadlines: a float per connection (setting it costs nothing per request), checked by a sweep ------
        def _arm(self, delay: float, expire: Callable[[], None]) -> None:
            self._deadline, self._expire = self.loop.time() + delay, expire

        def _disarm(self) -> None:
            self._deadline = math.inf

        def _idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _close(self, response: bytes = b"") -> None:
            """Close now; `response` is written first unless the request in flight has begun its own answer."""
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if response and (self._idle() or not cycle.response_started):
                self.transport.write(response)
            if not self._idle():
                cycle.disconnected = True  # the handler's receive() now says so, its send() is dropped
                cycle.message_event.set()
            self.transport.close()

        def _headers_late(self) -> None:
            if self._idle():  # no request in flight: this connection is waiting for (the rest of) its headers
                self._close()

        def _body_late(self) -> None:
            if (
                self.cycle is not None and self.cycle.more_body
            ):  # (an answer already sent is not followed by a 408)
                self._close(b"" if self.cycle.response_started else body_late)

        # --- uvicorn's callbacks (once the connection is closing, the rest of the data is not parsed) ----------
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not LimitedProtocol.sweeping:
                LimitedProtocol.sweeping = True
                self.loop.call_later(SWEEP_S, sweep, self.loop, self.connections)
            self._refuse = len(self.connections) > limits.max_connections
            self._arm(limits.header_timeout_s, self._headers_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if not self.transport.is_closing():
                super().data_received(data)

        def send_400_response(self, msg: str) -> None:  # malformed HTTP: the one error shape even here
            self._close(_response(400, "Bad Request", msg))

        def on_message_begin(self) -> None:
            self._header_bytes = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            if self._count(len(url)):
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._count(len(name) + len(value)):
                super().on_header(name, value)

        def _count(self, size: int) -> bool:
            self._header_bytes += size
            if self._header_bytes > MAX_HEADER_BYTES:
                self._close(too_large)
            return not self.transport.is_closing()

        def on_headers_complete(self) -> None:
            if self.transport.is_closing():
                return
            if self._refuse:
                self._close(refused)
                return
            self._arm(limits.body_timeout_s, self._body_late)  # on_message_complete disarms it
            super().on_headers_complete()
            if self._draining:
                self.cycle.keep_alive = False

        def on_body(self, body: bytes) -> None:
            if not self.transport.is_closing():
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self.transport.is_closing():
                return
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm(limits.header_timeout_s, self._headers_late)

        # --- graceful shutdown (SIGTERM) ------------------------------------------------------------------
        def shutdown(self) -> None:
            """A connection busy with a request closes after its answer (uvicorn's way); an idle keep-alive one only
            after a short grace, so that a request already on its way in is answered, with `Connection: close`,
            instead of being cut off unread."""
            if not self._idle():
                self.cycle.keep_alive = False
                return
            self._draining = True
            self.loop.call_later(DRAIN_GRACE_S, self._close_if_idle)

        def _close_if_idle(self) -> None:
            if self._idle():
                self._close()

    return LimitedProtocol
