"""The exports' share of the service: at most MAX_CONCURRENT_EXPORTS at once, each with a
thread of its own while it reads HubSpot, apart from the threads that answer /ready (and
from the event loop, which answers /health and /metrics without any thread).

Starlette reads a sync body iterator in anyio's default pool of 40 threads, the one that
runs sync handlers too, and cancels it on a disconnect without closing it: a slow HubSpot
then held every thread, /health included, and an export whose client had gone read on
until the iterator was collected. Here an export reads in the threads of its own limiter,
and the body it streams is closed (its HubSpot reads and read-ahead stopped, its summary
logged as `client_gone`) as soon as the response ends, however it ends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
import anyio.to_thread
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from ..metrics import Metrics
from .problems import busy

T = TypeVar("T")
log = logging.getLogger(__name__)

# Retry-After of an export refused because the others run: an export takes minutes, and
# Sesam retries a failed run at its next schedule anyway.
BUSY_RETRY_SECONDS = 30.0


class ExportSlots:
    """At most ``limit`` exports at once. Used on the event loop only (async handlers), so
    the count needs no lock."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self._metrics = metrics
        self._taken = 0
        # One thread per export at most: an admitted export never waits for a thread, and
        # the exports together never hold more than ``limit`` threads.
        self._threads = anyio.CapacityLimiter(limit)

    def take(self) -> Slot:
        """A slot for one export, or the 503 problem (counted) when every slot is taken;
        decided before anything reads HubSpot."""
        if self._taken >= self.limit:
            self._metrics.exports_refused.inc()
            log.warning("export refused: %d exports are running, the most MAX_CONCURRENT_EXPORTS "
                        "allows", self._taken, extra={"running": self._taken})
            raise busy(self.limit, BUSY_RETRY_SECONDS)
        self._taken += 1
        return Slot(self._threads, self._release)

    def _release(self) -> None:
        self._taken -= 1


class Slot:
    """One admitted export: runs its blocking work in the exports' threads; released once."""

    def __init__(self, threads: anyio.CapacityLimiter, release: Callable[[], None]) -> None:
        self._threads = threads
        self._release: Callable[[], None] | None = release

    async def run(self, call: Callable[..., T], *args: object) -> T:
        """``call(*args)`` in a thread of the exports' limiter. A cancellation waits for
        the call to return (a thread cannot be stopped), so the slot is never given back
        while its thread still works."""
        return await anyio.to_thread.run_sync(call, *args, limiter=self._threads)

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


_END = object()  # what next() returns at the end of a body


class ExportResponse(StreamingResponse):
    """An export's streamed body: its ``first`` chunk (read already), then the rest of
    ``chunks``, read in the export's thread; ``chunks`` is closed when the response ends,
    whether sent whole, cut short by an error, or left by its client (Starlette cancels the
    stream on a disconnect, and would leave a sync iterator open), even if it ends before
    the body began; then the slot is released."""

    def __init__(self, first: bytes, chunks: Iterator[bytes], slot: Slot, *,
                 on_disconnect: Callable[[], None]) -> None:
        self._first = first
        self._on_disconnect = on_disconnect
        self._chunks = chunks
        self._slot = slot
        self._closed = False
        super().__init__(self._read(), media_type="application/json")

    async def _read(self) -> AsyncIterator[bytes]:
        yield self._first
        while (chunk := await self._slot.run(next, self._chunks, _END)) is not _END:
            assert isinstance(chunk, bytes)
            yield chunk
        # Before the body's end is sent: a client that has the whole body finds the slot free.
        await self.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                # Said before Starlette cancels the stream, which then waits for the chunk
                # being read: so that chunk ends at the next entity, not 64 KB later.
                self._on_disconnect()
            return message

        try:
            await super().__call__(scope, watched, send)
        finally:
            # Shielded: on a disconnect this runs in a cancelled scope.
            with anyio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        """Stop the export (a generator's close runs its clean-up: the summary line, the
        read-ahead stopped) and give its slot back; at most once."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self._chunks, "close", None)
        try:
            if close is not None:
                await self._slot.run(close)
        finally:
            self._slot.release()
