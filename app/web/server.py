"""The HTTP server's protocol: uvicorn's h11 protocol, with a bound on the time a client may
take to send its request head.

uvicorn closes an idle kept-alive connection after its keep-alive timeout, but that timer
stops at the first byte of the next request, and a new connection has none: a client that
sends half a request head, or nothing, holds its connection (and its buffer) for as long
as it likes. Here a connection whose request head is not complete within
REQUEST_HEAD_TIMEOUT_SECONDS of its start (or of the end of the previous response on it)
is closed.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head takes longer than
    ``head_timeout`` seconds (set by `with_head_timeout`)."""

    head_timeout: float = 15.0

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_complete():
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next request's cycle at once
        if not self._head_complete():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _head_complete(self) -> bool:
        """Whether the request head of this connection's current cycle has come whole (h11
        leaves IDLE with it), or the connection is closing anyway."""
        return self.conn.their_state is not h11.IDLE or self.transport.is_closing()

    def _await_head(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._head_complete():
            self.logger.debug("closing a connection whose request head did not come whole "
                             "within %g s", self.head_timeout)
            self.transport.close()


def with_head_timeout(seconds: float) -> type[HeadTimeoutH11Protocol]:
    """The protocol class for uvicorn's ``http=``, bounding the request head to ``seconds``."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout": seconds})
