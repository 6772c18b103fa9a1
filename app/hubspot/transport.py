"""Answers from HubSpot read within bounds: a deadline for the whole answer and a most it
may weigh.

Why: requests' read timeout bounds each read of the socket, not the answer. A stand-in
that sends one byte every few seconds, status line and headers included, never trips it,
and `response.content` reads a body of any size whole into memory (a 300 MB body peaked at
935 MB; an endless chunked one ran to 6.6 GB). So every answer is streamed
(`read_bounded`): its declared Content-Length is checked before any of the body is read,
and what arrives is counted as it arrives.

The deadline covers headers and body alike. Neither requests nor urllib3 offers one (the
`total` of urllib3's `Timeout` only shortens each read), so each request's socket is
watched (`Watch`): the connection classes of the session's pools (`BoundedAdapter`)
hand the socket to the current call's watch as soon as the request has been sent, and a
timer shuts it down at the deadline, which ends any read blocked on it at once. The
watch lets go of the socket when the connection goes back to its pool, so a socket that
another call may already use is never shut. What remains unwatched: a request through a
proxy (requests builds a proxy's pools itself), or through an adapter mounted on the
session after the client's; it gets the per-read timeout, and its deadline is checked
between reads of the body only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

C = TypeVar("C")
READ_CHUNK_BYTES = 64 * 1024  # how much of a body is taken at a time, and counted


class AnswerTooLarge(Exception):
    """The answer is larger than the most the client reads."""


class AnswerTooSlow(Exception):
    """The answer did not arrive whole before its deadline."""


class Watch:
    """The deadline of one answer: shuts the socket it is reading from down when it passes.
    Thread-safe (the timer runs in a thread of its own)."""

    def __init__(self, seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._deadline = monotonic() + seconds
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self._ended = False
        self.expired = False  # whether the deadline passed while the answer was read

    def remaining(self) -> float:
        """Seconds left until the deadline (negative once it passed)."""
        return self._deadline - self._monotonic()

    def arm(self, sock: socket.socket) -> None:
        """Watch ``sock``: shut it down if the answer is still being read at the deadline."""
        with self._lock:
            if self._ended:
                return
            self._socket = sock
            if self._timer is None:
                self._timer = threading.Timer(max(0.0, self.remaining()), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def release(self, sock: socket.socket | None) -> None:
        """``sock`` goes back to its pool: another call may use it, so it is not shut."""
        with self._lock:
            if sock is not None and self._socket is sock:
                self._socket = None

    def end(self) -> None:
        """The answer was read (or given up): nothing is shut any more."""
        with self._lock:
            self._ended = True
            self._socket = None
            if self._timer is not None:
                self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            if self._ended or self._socket is None:
                return
            self.expired = True
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: nothing left to stop


CURRENT: ContextVar[Watch | None] = ContextVar("hubspot_answer_watch", default=None)
"""The watch of the call this thread is making, if any (set by the client around a request)."""


def _watch(connection: Any) -> None:
    watch = CURRENT.get()
    if watch is not None and connection.sock is not None:
        connection.watch = watch
        watch.arm(connection.sock)


def _unwatch(connection: Any) -> None:
    watch: Watch | None = getattr(connection, "watch", None)
    if watch is not None:
        watch.release(connection.sock)
        connection.watch = None


def _watched(connection_class: type[C]) -> type[C]:
    """``connection_class`` with its socket handed to the current call's watch once the
    request is sent. Made from the class urllib3's pools use at the time (not a fixed one),
    so that whatever replaces it (vcrpy's cassettes in the tests) stays in place. Made once
    per pool, and the pool manager keeps its pools."""
    base: Any = connection_class

    def getresponse(self: Any) -> Any:
        _watch(self)
        return base.getresponse(self)

    return cast("type[C]", type(f"Watched{base.__name__}", (base,), {"getresponse": getresponse}))


class _Watching:
    """A pool whose connections are watched: mixed in before urllib3's pool class."""

    ConnectionCls: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Whatever class the pool uses now (vcrpy's cassettes replace the stock one).
        self.ConnectionCls = _watched(self.ConnectionCls)

    def _put_conn(self, conn: Any) -> None:
        _unwatch(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _WatchedHTTPPool(_Watching, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_Watching, HTTPSConnectionPool):
    pass


class BoundedAdapter(HTTPAdapter):
    """requests' adapter whose connections are watched by the current call's `Watch`."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool,
                                                   "https": _WatchedHTTPSPool}


def read_bounded(response: requests.Response, limit: int, watch: Watch) -> bytes:
    """The whole (decoded) body of ``response``, if it is at most ``limit`` bytes and
    arrives before ``watch``'s deadline; raises `AnswerTooLarge` or `AnswerTooSlow`."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AnswerTooLarge(f"it announced {int(declared)} bytes")
    body = bytearray()
    for chunk in response.iter_content(READ_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(f"it went on past {limit} bytes")
        if watch.remaining() < 0:
            raise AnswerTooSlow()
    return bytes(body)
