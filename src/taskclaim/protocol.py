"""uvicorn's HTTP protocol with the read timeouts it lacks, and a cheap way to see a client has gone.

uvicorn closes a keep-alive connection that stays idle after an answer, but not one that opens and sends
nothing, nor one that sends its request a byte at a time: each holds a connection (and a file
descriptor) for as long as its client likes. Here a connection is also closed when

- it sends no request within ``keepalive`` seconds of opening (uvicorn's own timer covers the time
  after each answer), or
- a request is not complete, headers and body, ``read`` seconds after its first byte.

A request only notes its deadline (a float): one sweep per process, every ``SWEEP_SECONDS``, closes the
connections past theirs, so the timeouts cost the hot path nothing. A long poll is not affected: its
request is complete before it waits.

The connection's transport is put into the ASGI scope, so a handler can ask ``client_gone(scope)``: a
plain attribute read, where Starlette's ``Request.is_disconnected`` needs a cancelled receive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from taskclaim.notifier import server_stopping

_TRANSPORT = "taskclaim.transport"


def client_gone(scope: Mapping[str, Any]) -> bool:
    """True once the connection that carried this request has closed (False when not served by
    ``TimedHttpProtocol``: nothing is known then)."""
    transport = scope.get("extensions", {}).get(_TRANSPORT)
    return transport is not None and transport.is_closing()


SWEEP_SECONDS = 0.25


class TimedHttpProtocol(HttpToolsProtocol):
    keepalive_seconds = 5.0
    read_seconds = 30.0
    _sweeping: set[asyncio.AbstractEventLoop] = set()  # noqa: RUF012 - one sweep per event loop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_deadline: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.read_deadline = self.loop.time() + self.keepalive_seconds
        if self.loop not in self._sweeping:
            self._sweeping.add(self.loop)
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        if self.read_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self.read_deadline = self.loop.time() + self.read_seconds  # a request's first bytes
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {_TRANSPORT: self.transport}  # type: ignore[dict-item]

    def on_message_complete(self) -> None:
        self.read_deadline = None
        super().on_message_complete()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown begins (called for each connection): waiting long polls end now."""
        server_stopping()
        super().shutdown()


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Close every connection whose request (or first request) is overdue; then again in a while."""
    now = loop.time()
    for connection in list(connections):
        deadline = getattr(connection, "read_deadline", None)
        if deadline is not None and deadline < now and not connection.transport.is_closing():
            connection.transport.close()
    loop.call_later(SWEEP_SECONDS, _sweep, loop, connections)


def protocol_class(keepalive: float, read: float) -> type[TimedHttpProtocol]:
    """A ``TimedHttpProtocol`` with these timeouts, for ``uvicorn.Config(http=…)``."""
    return type(
        "TimedHttpProtocol", (TimedHttpProtocol,), {"keepalive_seconds": keepalive, "read_seconds": read}
    )
