"""The export of one object type: its records as Sesam entities in `_updated` order.

Live records come from the keyset walk over search (`walk.KeysetWalk`, each query read as a
stream of overlapping pages, `walk.QueryRead`); on an incremental export the deletions after
the offset come from the type's shared archived snapshot (`deletions.ArchivedSnapshots`) and
the survivors' merged ids, and are merged in, in order, as ``_deleted`` entities. Everything
is lazy: HubSpot is read page by page while the body is being written, so memory stays flat.

`Exporter` is one per type (it holds the type's snapshot); `ExportRun` is one export;
`_Pass` is one walk within it, from a position to a horizon.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter
from typing import Any

from ..config import Settings
from ..hubspot import HubSpotClient, Record, SearchPage
from ..hubspot.errors import unusable
from ..object_types import ObjectType
from .deletions import ArchivedSnapshots, Snapshot, deletion_entity
from .positions import ALL_IDS, START_POSITION, Position, encode_position, walk_start
from .walk import KeysetWalk, QueryRead, WalkError, search_body
from .workers import Workers

READ_AHEAD_PAGES = 2  # search pages handed over ahead of the response being written
TIE_HOLD_PAGES = 10  # pages' worth of one millisecond held back before it is read by id
CATCH_UPS = 2  # later horizons a full export reads on to, for what changed while it ran
# Entities handed over at a time. A page's records may name up to MAX_MERGED_IDS merged ids
# each, so a page is handed over in parts of this size, built as they are handed over:
# memory holds a few parts, not a page's every deletion, and a limit stops the building.
HANDOVER_ENTITIES = 1000
Entity = dict[str, Any]
# An entity in the merge: (position, rank, entity); on an equal position a deletion (rank 0)
# comes before a live record (rank 1) and is the one sent.
Ranked = tuple[Position, int, Entity]


@dataclass
class ExportStats:
    """What one export did, for its summary line. Counted from several threads (the body,
    its reader, the request pool), so under a lock."""

    entities: int = 0
    deleted: int = 0  # of the entities, deletions
    upstream_calls: int = 0  # HubSpot requests, retries included
    retries: int = 0
    error: str | None = None  # why the body was cut short, if it was
    # Live records after the start by HubSpot's count (its first search's `total`): about how
    # many entities the export holds, for its progress line.
    expected: int | None = None
    history_missing: int = 0  # live records gone before their history was read (`history`)
    unparsed: int = 0  # typed values only: values that did not read as their property's type
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_calls(self, calls: int) -> None:
        """One logical HubSpot call that took ``calls`` requests."""
        with self._lock:
            self.upstream_calls += calls
            self.retries += calls - 1

    def count_history_missing(self, records: int) -> None:
        with self._lock:
            self.history_missing += records
    def count_unparsed(self, values: int) -> None:
        with self._lock:
            self.unparsed += values

    def count_entity(self, entity: Entity) -> None:
        with self._lock:
            self.entities += 1
            self.deleted += entity.get("_deleted", False)


class Exporter:
    """The export of one object type. Its archived snapshot is shared by all its runs."""

    def __init__(self, client: HubSpotClient, kind: ObjectType, settings: Settings,
                 workers: Workers, clock: Callable[[], float] = time.monotonic) -> None:
        """``workers``: the threads that send the search requests and read ahead, shared by
        every export of every type (the client's budget spaces the requests)."""
        self.client = client
        self.kind = kind
        self.settings = settings
        self.workers = workers
        self.settle_ms = int(settings.settle_seconds * 1000)
        # Renewed in the background, on the request threads (one listing per type at a time).
        self.snapshots = ArchivedSnapshots(
            client, kind, self.settle_ms, settings.snapshot_seconds, clock,
            listing_seconds=settings.archived_listing_seconds, start=workers.background,
            wait_seconds=settings.archived_wait_seconds,
            daily_share=settings.listing_daily_share / 100,
            rate_per_10s=settings.general_rate_per_10s)

    def properties(self) -> list[str]:
        """The properties to export: the configured ones, else HubSpot's whole catalogue;
        always those the walk keys on and, for a type HubSpot merges, the merged ids."""
        names = self.kind.properties or self.client.catalogue(self.kind)
        return list(dict.fromkeys([*names, *self.kind.required_properties]))

    def entities(self, start: Position, limit: int | None, stats: ExportStats) -> Iterator[Entity]:
        """The first ``limit`` entities after ``start`` (all of them if None), in order."""
        return ExportRun(self, start, limit, stats).entities()


class ExportRun:
    """One export: the entities after ``start``, the first ``limit`` of them, counted in
    ``stats``."""

    def __init__(self, exporter: Exporter, start: Position, limit: int | None,
                 stats: ExportStats) -> None:
        self.exporter = exporter
        self.start = start
        self.limit = limit
        self.stats = stats

    def entities(self) -> Iterator[Entity]:
        for entity in islice(self._changes(), self.limit):
            self.stats.count_entity(entity)
            yield entity

    def _changes(self) -> Iterator[Entity]:
        deletions = self.exporter.settings.include_deleted
        if self.start != START_POSITION:
            yield from _Pass(self, self.start, deletions).entities()
            return
        # A full export lists what exists, without deletions (Sesam's full rescan tracks
        # them). Records modified while it ran have moved past its horizon, so it reads on,
        # as incremental passes from that horizon, with the deletions made meanwhile: one of
        # the records it already sent may be among them.
        walked = _Pass(self, self.start, deletions=False)
        yield from walked.entities()
        for _ in range(CATCH_UPS):
            if walked.latest_ms - self.exporter.settle_ms <= walked.horizon_ms:
                return
            walked = _Pass(self, Position(walked.horizon_ms, ALL_IDS, ALL_IDS), deletions,
                           floor_ms=walked.horizon_ms)
            yield from walked.entities()


class _Pass:
    """One walk from ``start`` to a horizon, with the deletions up to it if asked. Once its
    entities are read, ``horizon_ms`` says how far it got and ``latest_ms`` is HubSpot's
    latest clock it saw. ``floor_ms``: a horizon this pass must pass to be worth a search."""

    def __init__(self, run: ExportRun, start: Position, deletions: bool,
                 floor_ms: int | None = None) -> None:
        self._run = run
        self._exporter = run.exporter
        self._start = start
        self._deletions = deletions
        self._floor_ms = floor_ms
        self._settle_ms = self._exporter.settle_ms
        self._cap: int | None = None  # the horizon's upper bound: the snapshot's completeness
        page_size = self._exporter.settings.search_page_size
        self._walk = KeysetWalk(walk_start(start), read_by_id_from=TIE_HOLD_PAGES * (page_size - 1))
        self.horizon_ms = 0
        self.latest_ms = 0

    def entities(self) -> Iterator[Entity]:
        snapshot = None
        if self._deletions:
            snapshot = self._exporter.snapshots.current(
                lambda page: self._run.stats.count_calls(page.calls))
            self._cap = snapshot.complete_ms
            if self._floor_ms is not None and self._cap <= self._floor_ms:
                self.horizon_ms = self.latest_ms = self._floor_ms
                return
        # Live first, so that the walk's horizon is fixed (by its first search) before the
        # deletions up to it are read.
        streams: list[Iterable[Ranked]] = [chain.from_iterable(
            self._exporter.workers.read_ahead(self._live(), READ_AHEAD_PAGES))]
        if snapshot is not None:
            streams.append(self._deleted(snapshot))
        last: Position | None = None
        for position, _, entity in heapq.merge(*streams, key=itemgetter(0, 1)):
            if position != last:
                last = position
                yield entity
        self.horizon_ms = self._horizon()

    def _live(self) -> Iterator[list[Ranked]]:
        """Live records in order (and, with deletions, the ids merged into each just before
        it), a page at a time.

        Each query of the walk is read as a stream of overlapping pages (`QueryRead`), up to
        ``search_concurrency`` of them in flight, so that HubSpot's latency is paid once per
        query; the client's budget spaces them. The horizon is HubSpot's clock minus the
        settle time, and never beyond the snapshot's completeness point."""
        exporter, walk, stats = self._exporter, self._walk, self._run.stats
        kind, settings = exporter.kind, exporter.settings
        size = settings.search_page_size
        properties = exporter.properties()
        wanted = self._run.limit
        expected: int | None = None  # results the next query is thought to have
        while (query := walk.next_query()) is not None:
            try:
                walk.begin(query)
            except WalkError as exc:  # the same query again: HubSpot's answers go nowhere
                raise unusable("search", exc) from None
            read = QueryRead(walk, query, size, expected=expected, wanted=wanted)
            in_flight: deque[Future[SearchPage]] = deque()
            try:
                while True:
                    while len(in_flight) < settings.search_concurrency and (
                            offset := read.next_offset()) is not None:
                        body = search_body(query, kind.modified_property, properties, size, offset=offset)
                        in_flight.append(exporter.workers.submit(exporter.client.search, kind, body))
                    if not in_flight:
                        break
                    page = in_flight.popleft().result()
                    stats.count_calls(page.calls)
                    if stats.expected is None:
                        stats.expected = page.total
                    self.latest_ms = max(self.latest_ms, page.server_ms)
                    horizon = page.server_ms - self._settle_ms
                    walk.fix_horizon(horizon if self._cap is None else min(horizon, self._cap))
                    try:
                        taken = read.take([(record.key, record) for record in page.records],
                                          page.has_more, page.total)
                    except WalkError as exc:
                        raise unusable("search", exc) from None
                    items = (item for _, record in taken for item in self._entities(record))
                    # Each of these positions is sent once (itself, or a deletion on it): no
                    # more than ``wanted`` of them can be needed.
                    while batch := list(islice(items, HANDOVER_ENTITIES if wanted is None
                                               else min(wanted, HANDOVER_ENTITIES))):
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

    def _entities(self, record: Record) -> Iterator[Ranked]:
        """A live record's entity, after the deletions of the ids merged into it: those
        after the start, each built only when it is read."""
        if self._deletions:
            for merged in record.merged_ids:
                position = Position(record.modified_ms, record.id, merged)
                if position > self._start:
                    yield position, 0, deletion_entity(position, merged_into=record.data["id"])
        position = Position(record.modified_ms, record.id, ALL_IDS)
        if position > self._start:
            yield position, 1, {"_id": record.data["id"], "_updated": encode_position(position),
                                **record.data}

    def _deleted(self, snapshot: Snapshot) -> Iterator[Ranked]:
        """The snapshot's deletions after the start up to the walk's horizon (read lazily:
        the walk's first search fixes it)."""
        for ms, record_id in snapshot.after(self._start, self._horizon()):
            position = Position(ms, record_id, ALL_IDS)
            yield position, 0, deletion_entity(position)

    def _horizon(self) -> int:
        assert self._walk.horizon_ms is not None, "the first search fixes the horizon"
        return self._walk.horizon_ms


def _count_dropped(future: Future[SearchPage], stats: ExportStats) -> None:
    if not future.cancelled() and future.exception() is None:
        stats.count_calls(future.result().calls)
