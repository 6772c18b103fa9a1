"""Deletions: one shared snapshot per object type of HubSpot's archived records, where each
deletion sits in the export, and the entities of deleted and merged-away records.

Why it is built this way
------------------------
HubSpot offers no time filter for archived (deleted) records: the only way to learn of a
deletion is to list every archived record of the type (`archived=true`, 100 a page).
Listing them for every request would cost hundreds of calls per request in a big portal, so
the listing is a *snapshot* shared by every request, page and consumer of the service, read
again at most once per ``HUBSPOT_ARCHIVED_SNAPSHOT_SECONDS`` (default: the settle time).

A snapshot is complete up to its *completeness point*: HubSpot's clock (the ``Date`` of its
first page) minus the settle time, the same allowance for lag that search gets. Every
deletion made before that point is in it (or was undone since). An export therefore never
hands out an ``_updated`` beyond the completeness point of the snapshot it merged in
(`Snapshot.complete_ms` caps the walk's horizon), and a deletion made after it lands after
every offset that export gave out: a later request, with a later snapshot, reports it.

Where a deletion sits (its ``_updated``) must be after the offset of every pipe that has not
seen it. HubSpot's ``archivedAt`` is meant to be the deletion time, but HubSpot has said that
for contacts it used to return the record's *last-modified* time, and deleting a record never
moves that. So ``archivedAt`` is trusted only where it proves itself: when it is later than
the record's own modification time, it cannot be the modification time, so it is the
deletion time. Otherwise (it equals the modification time: the old behaviour, or a record
deleted on the very millisecond of its last change) the deletion is placed by what the
service saw itself: just after the completeness point of the first snapshot that held it
(``first seen``, `first_seen_ms`). Any export that lacked the record used a snapshot read
before the record showed up in the listing, so its horizon lies before that point, whichever
replica served it and whatever ``archivedAt`` says. Such a deletion reaches Sesam one
snapshot interval (and a second) later than a trusted one.

State: the only state is in memory (the current snapshot and when each archived id was first
seen). Nothing is written anywhere. A restarted service, or a second replica, starts without
it, so its first snapshot counts every untrusted deletion as new and reports it once more
(Sesam already has it, and a repeated deletion creates no new version). Nothing is lost,
because a later first sighting only moves a deletion later, never before an offset that was
handed out without it.

Restores: HubSpot sets a restored record's modification time to the moment of the restore,
so search reports it live again, after its deletion. Purges (after 90 days, or GDPR deletes)
leave no trace anywhere: Sesam's full rescan is the only remedy.

Renewal: only the first snapshot of a type is listed while an export waits (it holds the
type's lock; concurrent exports wait for that one listing). Once a snapshot exists, the
export that finds it due starts the renewal in the background (the service's `Workers`),
one at a time, waits for it at most ``HUBSPOT_ARCHIVED_WAIT_SECONDS`` (default 0: never,
so only the very first export of a type waits for a listing) and otherwise answers from
the snapshot it has: capped at that snapshot's completeness point, an old snapshot is
only late, never wrong. A renewal that fails is logged and the old snapshot serves on; the
first export after the interval tries again.

Budget: a recycle bin of 100,000 takes 1,000 calls a listing. The interval between the
starts of two listings is the configured one or, if longer, the one at which listings use
at most ``HUBSPOT_LISTING_DAILY_SHARE`` of HubSpot's daily limit (`listing_interval`, with
the calls of the last listing; the limit is taken as `ASSUMED_DAILY_LIMIT` unless HubSpot
said more calls are left), and a listing's calls are paced to half the 10-second budget.

Bounds: a listing must end. The client stops it where HubSpot's paging does not end (a
cursor given twice, or an implausible number of pages: a 502), and it is given
``HUBSPOT_ARCHIVED_LISTING_SECONDS`` in all (checked before each page is asked for, and
each page is bounded by the client: a 504 past it). An export that waits for another's
first listing waits as long at most, then answers a 503 with a Retry-After instead of
hanging behind a listing that overran. A first listing that fails leaves no snapshot: the
next export lists again.

Merges: a record merged into another vanishes without being archived; the survivor's
``hs_merged_object_ids`` names it. Each id there other than the survivor's own is reported
deleted just before the survivor (`deletion_entity` with ``merged_into``), every time the
survivor changes.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..hubspot import ArchivedPage, ArchivedRecord, HubSpotClient, HubSpotError
from ..object_types import ObjectType
from ..timestamps import format_ms
from .positions import ALL_IDS, Key, Position, encode_position

log = logging.getLogger(__name__)

SECOND_MS = 1000  # HubSpot's Date header has whole seconds
# When an export that found the listing still running past its deadline is told to come
# back: the overrun is at most one HubSpot call, which the client bounds.
LISTING_BUSY_RETRY_SECONDS = 30
Entity = dict[str, Any]


def deletion_ms(record: ArchivedRecord, first_seen_ms: int) -> int:
    """Where the deletion of an archived record from HubSpot's listing sits (epoch ms): its
    ``archivedAt`` when that is provably the deletion time, else ``first_seen_ms``."""
    if record.archived_ms is None or record.modified_ms is None:
        return first_seen_ms
    return record.archived_ms if record.archived_ms > record.modified_ms else first_seen_ms


def deletion_entity(position: Position, merged_into: str | None = None) -> Entity:
    """The Sesam entity of a deleted record, or of one merged away into ``merged_into``.
    Its ``archivedAt`` is where the deletion sits: HubSpot's when trusted, else when the
    service first saw the record archived."""
    record_id = str(position.id if merged_into is None else position.sub)
    entity: Entity = {"_id": record_id, "_updated": encode_position(position), "_deleted": True,
                      "id": record_id}
    if merged_into is None:
        entity.update(archived=True, archivedAt=format_ms(position.ms))
    else:
        entity["mergedInto"] = merged_into
    return entity


@dataclass(frozen=True)
class Snapshot:
    """HubSpot's archived records of one type as listed once, keyed where their deletions sit."""

    complete_ms: int  # no deletion made before this is missing (HubSpot's clock - settle)
    taken_at: float  # the service's monotonic clock when the listing began
    deletions: list[Key] = field(repr=False)  # sorted
    first_seen: dict[int, int] = field(repr=False)  # id -> first_seen_ms, for the next snapshot
    calls: int = 0  # HubSpot calls the listing took: its cost, which spaces the next

    def after(self, start: Position, horizon_ms: int) -> Iterator[Key]:
        """The deletions after ``start`` up to ``horizon_ms``, in order."""
        first = bisect.bisect_right(self.deletions, (start.ms, start.id))
        if start.sub < ALL_IDS:
            # Inside a survivor's merged ids: that survivor's own deletion is still to come.
            first = bisect.bisect_left(self.deletions, (start.ms, start.id))
        for index in range(first, len(self.deletions)):
            key = self.deletions[index]
            if key.ms > horizon_ms:
                return
            yield key


def first_seen_ms(page_server_ms: int, settle_ms: int) -> int:
    """Where a deletion first seen on a listing page answered at ``page_server_ms`` sits: after
    the completeness point of every snapshot read before that page (the Date header drops
    the milliseconds, so the page may have been read up to 999 ms later)."""
    return page_server_ms + SECOND_MS - 1 - settle_ms


DAY_SECONDS = 86_400
# HubSpot's smallest daily limit (Free and Starter portals; Professional has 650,000,
# Enterprise 1,000,000): the one assumed until its X-HubSpot-RateLimit-Daily-Remaining says
# more calls are left than that.
ASSUMED_DAILY_LIMIT = 250_000
LISTING_SHARE_OF_10S = 0.5  # of the 10-second budget, the most one listing's calls may use
Start = Callable[[Callable[[], None]], "Future[None]"]


def listing_interval(configured: float, calls: int, daily_share: float, daily_limit: int) -> float:
    """Seconds between the starts of two listings of a type whose last listing took ``calls``
    HubSpot calls: the configured interval, or longer, so that listing every so often uses at
    most ``daily_share`` (0..1) of ``daily_limit`` calls a day."""
    return max(configured, calls * DAY_SECONDS / (daily_share * daily_limit))


class ArchivedSnapshots:
    """The one archived snapshot of an object type, shared by every export. Thread-safe.

    Only the first snapshot is listed while an export waits (every concurrent export waits
    for that one listing). Once a snapshot exists, an export that finds it due for renewal
    starts the listing in the background (``start``: the service's `Workers`), one at a time,
    waits for it at most ``wait_seconds`` and otherwise answers from the snapshot it has,
    capped at that snapshot's completeness point, which keeps it safe however old it is."""

    def __init__(self, client: HubSpotClient, kind: ObjectType, settle_ms: int,
                 interval_seconds: float, clock: Callable[[], float] = time.monotonic, *,
                 listing_seconds: float = 900.0, start: Start | None = None,
                 wait_seconds: float = 0.0, daily_share: float = 0.1, rate_per_10s: int = 100,
                 sleep: Callable[[float], None] = time.sleep,
                 timer: Callable[[], float] = time.monotonic) -> None:
        """``clock`` times the snapshot's interval; ``listing_seconds`` (real time) bounds
        one listing, and how long an export waits for the first. ``daily_share`` of HubSpot's
        daily limit is the most the listings may use; ``rate_per_10s`` is the client's
        10-second budget, of which a listing uses half at most (paced with ``sleep`` and
        ``timer``, real time). Without ``start`` a renewal is listed at once, in the thread
        of the export that found it due (for tests)."""
        self._client = client
        self._listing_seconds = listing_seconds
        self._kind = kind
        self._settle_ms = settle_ms
        self._interval = interval_seconds
        self._clock = clock
        self._start = start or _inline
        self._wait_seconds = wait_seconds
        self._daily_share = daily_share
        self._pace = 10.0 / (rate_per_10s * LISTING_SHARE_OF_10S)  # seconds between calls
        self._sleep = sleep
        self._timer = timer
        self._lock = threading.Lock()  # held by the first listing
        self._changed = threading.Condition()  # guards what follows
        self._current: Snapshot | None = None
        self._listing = False  # a background listing is under way
        self._last_start: float | None = None  # clock when the last listing began
        self._last_calls = 0  # HubSpot calls the last listing took, finished or failed
        self._daily_limit = ASSUMED_DAILY_LIMIT

    def age(self) -> float | None:
        """Seconds since the current snapshot's listing began; None before the first."""
        current = self._current
        return None if current is None else self._clock() - current.taken_at

    def interval(self) -> float:
        """Seconds from the start of the last listing to the next: the configured interval,
        longer when the last listing cost so many calls that listing as often would use more
        than the daily share (`listing_interval`)."""
        with self._changed:
            return listing_interval(self._interval, self._last_calls, self._daily_share,
                                    self._daily_limit)

    def current(self, on_page: Callable[[ArchivedPage], None]) -> Snapshot:
        """The snapshot to merge in. The first is listed now (``on_page`` sees each of its
        pages); concurrent callers wait for that one listing, for as long as a listing may
        take, and after that get a 503. Later ones are renewed in the background."""
        with self._changed:
            current = self._current
        if current is None:
            return self._first(on_page)
        with self._changed:
            self._begin_if_due()
            if self._listing and self._wait_seconds > 0:
                self._changed.wait_for(lambda: not self._listing, timeout=self._wait_seconds)
            assert self._current is not None
            return self._current

    def _first(self, on_page: Callable[[ArchivedPage], None]) -> Snapshot:
        if not self._lock.acquire(timeout=self._listing_seconds):
            raise HubSpotError(
                503, "Deleted records still being listed",
                f"Another export has been listing the archived {self._kind.name} for over "
                f"{self._listing_seconds:g} s (HUBSPOT_ARCHIVED_LISTING_SECONDS); try again later.",
                retry_after=LISTING_BUSY_RETRY_SECONDS)
        try:
            with self._changed:
                if self._current is not None:  # listed by the export this one waited for
                    return self._current
                self._last_start = now = self._clock()
            snapshot = self._listed(now, {}, on_page)
            with self._changed:
                self._current = snapshot
                self._changed.notify_all()
            return snapshot
        finally:
            self._lock.release()

    def _due(self, now: float) -> bool:
        """Whether a renewal is due (under ``_changed``): the interval has passed since the
        last listing began, successful or not."""
        if self._last_start is None:
            return True
        return now - self._last_start >= listing_interval(
            self._interval, self._last_calls, self._daily_share, self._daily_limit)

    def _begin_if_due(self) -> None:
        """Start a background listing if none is under way and one is due (under ``_changed``)."""
        now = self._clock()
        if self._listing or not self._due(now):
            return
        assert self._start is not None and self._current is not None
        self._listing, self._last_start = True, now
        previous = self._current.first_seen
        try:
            future = self._start(lambda: self._renew(now, previous))
        except RuntimeError:  # the pool is shutting down: the next export tries again
            self._listing, self._last_start = False, None
            return
        future.add_done_callback(self._cancelled)

    def _cancelled(self, future: Future[None]) -> None:
        if future.cancelled():  # the pool shut down before the listing ran
            with self._changed:
                self._listing, self._last_start = False, None
                self._changed.notify_all()

    def _renew(self, now: float, previous: dict[int, int]) -> None:
        """A background listing. One that fails leaves the snapshot in place and is logged;
        the first export after the interval (counted from this listing's start, with the
        calls it spent) starts another."""
        try:
            snapshot = self._listed(now, previous, lambda _: None)
        except Exception as error:
            # Nobody waits on this thread to hear of the failure: the old snapshot serves
            # on, and the failure is logged here, HubSpot's as a warning, the service's own
            # bug as an error with its traceback.
            with self._changed:
                self._listing = False
                assert self._current is not None
                age = self._clock() - self._current.taken_at
                self._changed.notify_all()
            own_bug = not isinstance(error, HubSpotError)
            log.log(logging.ERROR if own_bug else logging.WARNING,
                    "Listing of archived records failed; the previous snapshot serves on",
                    exc_info=error if own_bug else None,
                    extra={"object_type": self._kind.name, "error": str(error),
                           "snapshot_age_seconds": round(age, 1),
                           "retry_in_seconds": round(self.interval(), 1)})
            return
        with self._changed:
            self._current, self._listing = snapshot, False
            self._changed.notify_all()
        log.info("Archived records listed", extra={
            "object_type": self._kind.name, "deleted_records": len(snapshot.deletions),
            "calls": snapshot.calls, "next_in_seconds": round(self.interval(), 1)})

    def _listed(self, now: float, previous: dict[int, int],
                on_page: Callable[[ArchivedPage], None]) -> Snapshot:
        """A listing. What it cost (its calls, finished or not) sets the interval to the next."""
        calls = [0]

        def counted(page: ArchivedPage) -> None:
            calls[0] += page.calls
            on_page(page)

        try:
            return self._read(now, previous, counted)
        finally:
            left = self._client.daily_calls_left()
            with self._changed:
                self._last_calls = calls[0]
                if left is not None:  # HubSpot allows at least this many a day
                    self._daily_limit = max(self._daily_limit, left)

    def _read(self, now: float, previous: dict[int, int],
              on_page: Callable[[ArchivedPage], None]) -> Snapshot:
        keys: list[Key] = []
        seen: dict[int, int] = {}
        complete_ms: int | None = None
        calls = 0
        deadline = time.monotonic() + self._listing_seconds
        pages = self._client.archived_pages(self._kind, deadline)
        next_at = self._timer()
        while True:
            # Paced: a listing's calls use at most half of the 10-second budget, so exports'
            # searches and other calls keep the rest while a big recycle bin is listed.
            wait = next_at - self._timer()
            if wait > 0:
                self._sleep(wait)
            next_at = self._timer() + self._pace
            page = next(pages)  # the generator asks HubSpot for the page now
            on_page(page)
            calls += page.calls
            if complete_ms is None:
                complete_ms = page.server_ms - self._settle_ms
            default = first_seen_ms(page.server_ms, self._settle_ms)
            for record in page.records:
                seen[record.id] = previous.get(record.id, default)
                keys.append(Key(deletion_ms(record, seen[record.id]), record.id))
            if page.after is None:  # the last page: no wait for a call that is not made
                break
        keys.sort()
        assert complete_ms is not None, "archived_pages yields at least one page"
        return Snapshot(complete_ms, now, keys, seen, calls)


def _inline(work: Callable[[], None]) -> Future[None]:
    """Run ``work`` now, as a done future."""
    future: Future[None] = Future()
    work()
    future.set_result(None)
    return future
