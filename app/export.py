"""The export: HubSpot contacts as Sesam entities in `_updated` order, streamed as JSON.

Live contacts come from the keyset walk over search (`continuation.KeysetWalk`); on an
incremental export the deletions after the offset come from the shared archived snapshot
(`deletions.ArchivedSnapshots`) and the survivors' merged ids, and are merged in, in order,
as ``_deleted`` entities. Everything is lazy: HubSpot is read page by page while the body is
being written, so memory stays flat.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator, TypeVar

import orjson

from .config import Settings
from .continuation import (
    ALL_IDS, START_POSITION, KeysetWalk, Position, QueryRead, WalkError, contact_key,
    encode_position, walk_start,
)
from .deletions import ArchivedSnapshots, Snapshot, deletion_entity, merged_ids
from .errors import UpstreamError
from .hubspot import HubSpotClient, Page, search_body
from .redact import LINE_LIMIT, quote

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
READ_AHEAD_PAGES = 2  # search pages handed over ahead of the response being written
TIE_HOLD_PAGES = 10  # pages' worth of one millisecond held back before it is read by id
CATCH_UPS = 2  # later horizons a full export reads on to, for what changed while it ran
Entity = dict[str, Any]
# An entity in the merge: (position, rank, entity); on an equal position a deletion (rank 0)
# comes before a live contact (rank 1) and is the one sent.
Ranked = tuple[Position, int, Entity]


@dataclass
class ExportStats:
    """What one export did, for its summary log line."""

    entities: int = 0
    deleted: int = 0  # of the entities, deletions
    upstream_calls: int = 0  # HubSpot requests, retries included
    retries: int = 0
    error: str | None = None  # why the body was cut short, if it was

    def count_page(self, page: Page) -> None:
        self.upstream_calls += page.calls
        self.retries += page.calls - 1


@dataclass
class _Reached:
    """How far one pass of the walk got: its horizon, and HubSpot's latest clock seen."""

    horizon_ms: int = 0
    latest_ms: int = 0


class Exporter:
    """Turns a `since` position into the stream of entities after it."""

    def __init__(self, client: HubSpotClient, settings: Settings, pool: Executor,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``pool``: the threads that send the search requests, shared by every export of
        every type (the client's budget spaces them)."""
        self._client = client
        self._settings = settings
        self._settle_ms = int(settings.settle_seconds * 1000)
        self._snapshots = ArchivedSnapshots(
            client, settings.modified_property, self._settle_ms,
            settings.snapshot_seconds, clock)
        self._pool = pool

    def entities(self, start: Position, limit: int | None, stats: ExportStats) -> Iterator[Entity]:
        """The first ``limit`` entities after ``start`` (all of them if None), in order."""
        for entity in islice(self._changes(start, limit, stats), limit):
            stats.entities += 1
            stats.deleted += entity.get("_deleted", False)
            yield entity

    def _changes(self, start: Position, limit: int | None, stats: ExportStats) -> Iterator[Entity]:
        deletions = self._settings.include_deleted
        if start != START_POSITION:
            yield from self._pass(start, limit, stats, deletions)
            return
        # A full export lists what exists, without deletions (Sesam's full rescan tracks
        # them). Contacts modified while it ran have moved past its horizon, so it reads on,
        # as incremental passes from that horizon, with the deletions made meanwhile: one of
        # the contacts it already sent may be among them.
        reached = yield from self._pass(start, limit, stats, deletions=False)
        for _ in range(CATCH_UPS):
            if reached.latest_ms - self._settle_ms <= reached.horizon_ms:
                return
            reached = yield from self._pass((reached.horizon_ms, ALL_IDS, ALL_IDS), limit, stats,
                                            deletions, floor_ms=reached.horizon_ms)

    def _pass(self, start: Position, limit: int | None, stats: ExportStats, deletions: bool,
              floor_ms: int | None = None) -> Iterator[Entity]:
        """One walk from ``start`` to a horizon, with the deletions up to it if asked; returns
        how far it got. ``floor_ms``: a horizon this pass must pass to be worth a search."""
        reached = _Reached()
        cap = None
        snapshot = None
        if deletions:
            with _unusable_answer("list of archived contacts"):
                snapshot = self._snapshots.current(stats.count_page)
            cap = snapshot.complete_ms
            if floor_ms is not None and cap <= floor_ms:
                reached.horizon_ms = reached.latest_ms = floor_ms
                return reached
        walk = KeysetWalk(walk_start(start),
                          read_by_id_from=TIE_HOLD_PAGES * (self._settings.search_page_size - 1))
        # Live first, so that the walk's horizon is fixed (by its first search) before the
        # deletions up to it are read.
        streams: list[Iterable[Ranked]] = [chain.from_iterable(read_ahead(
            self._live(walk, start, limit, stats, cap, deletions, reached), READ_AHEAD_PAGES))]
        if snapshot is not None:
            streams.append(_deleted(snapshot, start, walk))
        last: Position | None = None
        for position, _, entity in heapq.merge(*streams, key=itemgetter(0, 1)):
            if position != last:
                last = position
                yield entity
        reached.horizon_ms = _horizon(walk)
        return reached

    def _live(self, walk: KeysetWalk, start: Position, limit: int | None, stats: ExportStats,
              cap: int | None, merges: bool, reached: _Reached) -> Iterator[list[Ranked]]:
        """Live contacts in order (and, with ``merges``, the ids merged into each just before
        it), a page at a time.

        Each query of the walk is read as a stream of overlapping pages (`QueryRead`), up to
        ``search_concurrency`` of them in flight, so that HubSpot's latency is paid once per
        query; the client's budget spaces them. The horizon is HubSpot's clock minus the
        settle time, and never beyond ``cap``."""
        prop = self._settings.modified_property
        size = self._settings.search_page_size
        properties = self._client.property_names()
        wanted = limit
        expected: int | None = None  # results the next query is thought to have
        while (query := walk.next_query()) is not None:
            read = QueryRead(walk, query, size, expected=expected, wanted=wanted)
            in_flight: deque[Future[Page]] = deque()
            try:
                while True:
                    while len(in_flight) < self._settings.search_concurrency and (
                            offset := read.next_offset()) is not None:
                        body = search_body(query, prop, properties, size, offset=offset)
                        in_flight.append(self._pool.submit(self._client.search, body))
                    if not in_flight:
                        break
                    page = in_flight.popleft().result()
                    stats.count_page(page)
                    reached.latest_ms = max(reached.latest_ms, page.server_ms)
                    horizon = page.server_ms - self._settle_ms
                    walk.fix_horizon(horizon if cap is None else min(horizon, cap))
                    with _unusable_answer("search"):
                        keyed = [(contact_key(c, prop), c) for c in page.results]
                        batch = [item for key, contact in read.take(keyed, page.has_more, page.total)
                                 for item in _live_entities(key, contact, merges) if item[0] > start]
                    if batch:
                        yield batch
                    if wanted is not None:
                        wanted -= len(batch)
                        if wanted <= 0:
                            return
                    if not read.open:
                        break
            finally:
                for future in in_flight:  # pages no longer wanted: unsent, or counted when back
                    if not future.cancel():
                        future.add_done_callback(lambda done: _count_dropped(done, stats))
            expected = read.left()


def _count_dropped(future: Future[Page], stats: ExportStats) -> None:
    if not future.cancelled() and future.exception() is None:
        stats.count_page(future.result())


def _deleted(snapshot: Snapshot, start: Position, walk: KeysetWalk) -> Iterator[Ranked]:
    """The snapshot's deletions after ``start`` up to the walk's horizon (read lazily: the
    walk's first search fixes it)."""
    for ms, contact_id in snapshot.after(start, _horizon(walk)):
        position = (ms, contact_id, ALL_IDS)
        yield position, 0, deletion_entity(position)


def _horizon(walk: KeysetWalk) -> int:
    assert walk.horizon_ms is not None, "the first search fixes the horizon"
    return walk.horizon_ms


def _live_entities(key: tuple[int, int], contact: Entity, merges: bool) -> list[Ranked]:
    """A live contact's entity, after the deletions of the ids merged into it."""
    ms, contact_id = key
    items: list[Ranked] = []
    if merges:
        for merged in merged_ids(contact):
            position = (ms, contact_id, merged)
            items.append((position, 0, deletion_entity(position, merged_into=contact["id"])))
    position = (ms, contact_id, ALL_IDS)
    items.append((position, 1, {"_id": contact["id"], "_updated": encode_position(position),
                                **contact}))
    return items


T = TypeVar("T")


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def read_ahead(source: Iterator[T], depth: int) -> Iterator[T]:
    """Iterate ``source`` in a thread of its own, at most ``depth`` items ahead of the
    consumer: HubSpot is read while the previous pages are encoded and sent. An error in
    ``source`` is raised to the consumer; a consumer that stops early stops the thread."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as error:  # handed to the consumer, which raises it
            hand_over(_Failed(error))

    threading.Thread(target=produce, name="export-read-ahead", daemon=True).start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


@contextmanager
def _unusable_answer(what: str) -> Iterator[None]:
    """A HubSpot answer that parses but cannot be used (a contact without id or time, a
    page that promises more and holds nothing) is HubSpot's failure, told as such."""
    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError, WalkError) as exc:
        raise UpstreamError(502, "HubSpot answer unusable",
                            f"HubSpot's {what} answer could not be used: {quote(exc)}") from None


def json_array(entities: Iterable[Entity], stats: ExportStats) -> Iterator[bytes]:
    """The entities as one JSON array, in chunks of about CHUNK_BYTES.

    An error before the first chunk is raised (the caller can still answer with a proper
    error status). An error after it ends the body with a line that is not JSON, so that
    Sesam sees an invalid array and does not advance its offset past what was not sent.
    """
    buffer = bytearray(b"[")
    sent_any = False
    first = True
    try:
        for entity in entities:
            if not first:
                buffer += b","
            first = False
            buffer += orjson.dumps(entity)
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                sent_any = True
                buffer.clear()
    except Exception as exc:
        if not sent_any:
            raise
        stats.error = quote(exc, LINE_LIMIT)
        log.error("export aborted mid-stream; the body was ended as invalid JSON",
                  extra={"error": stats.error})
        buffer += b"\n!! EXPORT ABORTED: " + stats.error.encode("utf-8", "replace")
        buffer += b"\n!! This body is deliberately not valid JSON: retry the request.\n"
        yield bytes(buffer)
        return
    buffer += b"]"
    yield bytes(buffer)
