"""The service's background threads, in one place: the HubSpot requests an export sends ahead
of the one it waits for, and the readers that read an export ahead of the body being sent.

They are two pools because they must be: a reader waits for the requests it sent, so in
one bounded pool the readers of enough concurrent exports could hold every thread and wait
for requests that no thread is left to send. Requests are bounded by ``request_threads``
(the client's budget spaces them anyway); readers by ``reader_threads``, beyond which an
export reads as it sends, a little slower and just as right. Both pools are made when first
needed and shut down by `close` (the app's lifespan), which also stops every reader.

A third, small pool renews the types' archived snapshots (`background`): a listing takes
minutes in a big portal, and in the request pool a dozen types renewing at once would hold
most of the threads that exports send their searches with. Renewals beyond its size wait
their turn; the snapshot they renew serves meanwhile.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")

REQUEST_THREADS = 16  # HubSpot requests in flight at once, for every export of every type
READER_THREADS = 32  # exports (and association streams) read ahead at once
LISTING_THREADS = 2  # archived listings renewed at once, for every type
# The pools, and their threads' names.
REQUESTS, READERS, LISTINGS = "hubspot-request", "export-read-ahead", "archived-listing"


class ShuttingDown(RuntimeError):
    """The service stopped while an export was being read."""


class Workers:
    """The thread pools of one service. Thread-safe."""

    def __init__(self, request_threads: int = REQUEST_THREADS,
                 reader_threads: int = READER_THREADS) -> None:
        self._sizes = {REQUESTS: request_threads, READERS: reader_threads, LISTINGS: LISTING_THREADS}
        self._lock = threading.Lock()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._readers: set[_Handover[Any]] = set()
        self._reader_slots = threading.BoundedSemaphore(reader_threads)

    def _pool(self, name: str) -> ThreadPoolExecutor:
        with self._lock:
            if name not in self._pools:
                self._pools[name] = ThreadPoolExecutor(self._sizes[name], thread_name_prefix=name)
            return self._pools[name]

    def submit(self, call: Callable[..., T], *args: object) -> Future[T]:
        """Send a HubSpot request in the background."""
        return self._pool(REQUESTS).submit(call, *args)

    def background(self, call: Callable[..., T], *args: object) -> Future[T]:
        """Run a long piece of HubSpot work (an archived listing) in the background."""
        return self._pool(LISTINGS).submit(call, *args)

    def read_ahead(self, source: Iterator[T], depth: int) -> Iterator[T]:
        """Iterate ``source`` in the background, at most ``depth`` items ahead of the
        consumer: HubSpot is read while the previous pages are encoded and sent. An error
        in ``source`` is raised to the consumer after the items before it; a consumer that
        stops early stops the reader at its next hand-over. With every reader busy,
        ``source`` is read by the consumer itself."""
        if not self._reader_slots.acquire(blocking=False):
            yield from source
            return
        handover: _Handover[T] = _Handover(depth)
        with self._lock:
            self._readers.add(handover)
        try:
            reading = self._pool(READERS).submit(self._read, source, handover)
        except BaseException:
            self._finished(handover)
            raise

        def cancelled(done: Future[None]) -> None:
            if done.cancelled():  # the pool shut down before the reader ran
                self._finished(handover)

        reading.add_done_callback(cancelled)
        try:
            yield from handover.take()
        finally:
            handover.stop()

    @property
    def readers(self) -> int:
        """Readers at work now."""
        with self._lock:
            return len(self._readers)

    def _read(self, source: Iterator[T], handover: _Handover[T]) -> None:
        try:
            for item in source:
                if not handover.put(item):
                    break
            else:
                handover.end()
        except BaseException as error:  # handed to the consumer, which raises it
            handover.fail(error)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (requests still in flight) runs now
            self._finished(handover)

    def _finished(self, handover: _Handover[T]) -> None:
        with self._lock:
            if handover not in self._readers:
                return
            self._readers.discard(handover)
        self._reader_slots.release()

    def close(self) -> None:
        """Stop every reader (its consumer gets `ShuttingDown`) and shut both pools down;
        they are made anew if used again."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            readers = list(self._readers)
        for handover in readers:
            handover.fail(ShuttingDown("the service is shutting down"), stop=True)
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


class _Handover(Generic[T]):
    """Items passed from a reader thread to its consumer, at most ``depth`` waiting."""

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._items: deque[T] = deque()
        self._changed = threading.Condition()
        self._ended = False  # the reader has handed over everything it will
        self._error: BaseException | None = None
        self._stopped = False  # nobody takes anything any more

    def put(self, item: T) -> bool:
        """Hand ``item`` over once there is room; False if nobody will take it."""
        with self._changed:
            while not self._stopped and len(self._items) >= self._depth:
                self._changed.wait()
            if self._stopped:
                return False
            self._items.append(item)
            self._changed.notify_all()
            return True

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def fail(self, error: BaseException, stop: bool = False) -> None:
        """The reading failed: the consumer raises ``error`` after the items before it
        (``stop``: at once, and the reader stops too)."""
        with self._changed:
            self._error, self._ended = error, True
            if stop:
                self._items.clear()
                self._stopped = True
            self._changed.notify_all()

    def stop(self) -> None:
        """The consumer has gone: the reader stops at its next hand-over."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def take(self) -> Iterator[T]:
        while True:
            with self._changed:
                while not (self._items or self._ended):
                    self._changed.wait()
                if not self._items:
                    if self._error is not None:
                        raise self._error
                    return
                item = self._items.popleft()
                self._changed.notify_all()
            yield item
