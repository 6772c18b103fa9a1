"""The export: HubSpot contacts as Sesam entities in `_updated` order, streamed as JSON.

Live contacts come from the keyset walk over search (`continuation.KeysetWalk`); on an
incremental export the contacts deleted (archived) since the offset come from the list
API and are merged in, in order, as ``_deleted`` entities. Everything is lazy: HubSpot is
read page by page while the body is being written, so memory stays flat.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter
from typing import Any, Iterable, Iterator, TypeVar

import orjson

from .config import Settings
from .continuation import (
    START, Key, KeysetWalk, WalkError, contact_key, encode_key, format_ms, join_overlapping,
    parse_timestamp,
)
from .errors import UpstreamError
from .hubspot import HubSpotClient, Page, search_body

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
READ_AHEAD_ROUNDS = 1  # rounds of search pages fetched ahead of the response being written
CATCH_UPS = 2  # later horizons a full export reads on to, for what changed while it ran
Entity = dict[str, Any]


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


class Exporter:
    """Turns a `since` position into the stream of entities after it."""

    def __init__(self, client: HubSpotClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._settle_ms = int(settings.settle_seconds * 1000)
        # Page requests of all exports share these threads (and the client's budget).
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="hubspot-page")

    def entities(self, start: Key, limit: int | None, stats: ExportStats) -> Iterator[Entity]:
        """The first ``limit`` entities after ``start`` (all of them if None), in order."""
        for entity in islice(self._changes(start, limit, stats), limit):
            stats.entities += 1
            stats.deleted += entity.get("_deleted", False)
            yield entity

    def _changes(self, start: Key, limit: int | None, stats: ExportStats) -> Iterator[Entity]:
        walk = KeysetWalk(start, read_by_id_from=self._settings.search_page_size - 1)
        full = start == START
        # A full export lists what exists (Sesam's full rescan tracks deletions itself). On
        # an incremental one the archived list, not sorted by time, is read first and whole;
        # it also fixes the horizon before the first search.
        deleted = iter(()) if full or not self._settings.include_deleted else (
            self._deleted(start, walk, stats))
        live = read_ahead(self._live(walk, limit, stats, catch_up=full), READ_AHEAD_ROUNDS)
        last: Key | None = None
        # Deletions go first on an equal key, and an equal key is sent once: the contact
        # was modified and deleted on the same millisecond, and deleted is what it is now.
        for key, entity in heapq.merge(deleted, chain.from_iterable(live), key=itemgetter(0)):
            if key != last:
                last = key
                yield entity

    def _live(self, walk: KeysetWalk, limit: int | None, stats: ExportStats,
              catch_up: bool = False) -> Iterator[list[tuple[Key, Entity]]]:
        """Live contacts in order, a round of search requests at a time.

        A round is one keyset query read as several overlapping pages at once, so that
        HubSpot's latency is paid once for several pages (`join_overlapping`). With
        ``catch_up`` (a full export, which Sesam may use to track deletions), contacts
        modified while the export ran are read too, up to CATCH_UPS later horizons."""
        prop = self._settings.modified_property
        size = self._settings.search_page_size
        properties = self._client.property_names()
        wanted = limit
        pages_in_round = 1  # until HubSpot's total says how much there is to read
        catch_ups = 0
        server_ms = 0
        while True:
            query = walk.next_query()
            if query is None:
                if not (catch_up and catch_ups < CATCH_UPS
                        and walk.extend_horizon(server_ms - self._settle_ms)):
                    return
                catch_ups += 1
                pages_in_round = 1
                continue
            bodies = [search_body(query, prop, properties, size, offset=i * (size - 1))
                      for i in range(pages_in_round)]
            pages = list(self._pool.map(self._client.search, bodies))
            for page in pages:
                stats.count_page(page)
            server_ms = max(page.server_ms for page in pages)
            walk.fix_horizon(pages[0].server_ms - self._settle_ms)
            with _unusable_answer("search"):
                keyed, has_more = join_overlapping(
                    [([(contact_key(c, prop), c) for c in page.results], page.has_more)
                     for page in pages], [page.total for page in pages])
                batch = [(key, {"_id": contact["id"], "_updated": encode_key(key), **contact})
                         for key, contact in walk.accept(query, keyed, has_more)]
            if batch:
                yield batch
            if wanted is not None:
                wanted -= len(batch)
                if wanted <= 0:
                    return
            pages_in_round = self._round_size(pages[0].total, len(batch), wanted)

    def _round_size(self, total: int | None, emitted: int, wanted: int | None) -> int:
        """How many pages the next round reads: enough for what is left, at most the
        configured concurrency, so small exports do not pay for pages that come back empty."""
        left = None if total is None else max(total - emitted, 0)
        if wanted is not None:
            left = wanted if left is None else min(left, wanted)
        if left is None:
            return self._settings.search_concurrency
        size = self._settings.search_page_size
        return max(1, min(self._settings.search_concurrency, -(-left // (size - 1))))

    def _deleted(self, start: Key, walk: KeysetWalk, stats: ExportStats) -> Iterator[tuple[Key, Entity]]:
        found: list[tuple[Key, str]] = []
        for page in self._client.archived_pages():
            stats.count_page(page)
            walk.fix_horizon(page.server_ms - self._settle_ms)
            horizon = walk.horizon_ms
            assert horizon is not None
            with _unusable_answer("list of archived contacts"):
                for contact in page.results:
                    archived_at = contact.get("archivedAt")
                    if not archived_at:
                        continue
                    key = (parse_timestamp(archived_at), int(contact["id"]))
                    if start < key and key[0] <= horizon:
                        found.append((key, contact["id"]))
        found.sort(key=itemgetter(0))
        return ((key, _deletion(key, contact_id)) for key, contact_id in found)


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
                            f"HubSpot's {what} answer could not be used: {exc}") from None


def _deletion(key: Key, contact_id: str) -> Entity:
    return {"_id": contact_id, "_updated": encode_key(key), "_deleted": True, "id": contact_id,
            "archived": True, "archivedAt": format_ms(key[0])}


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
        stats.error = str(exc)
        log.error("export aborted mid-stream; the body was ended as invalid JSON",
                  extra={"error": stats.error})
        buffer += b"\n!! EXPORT ABORTED: " + str(exc).encode("utf-8", "replace")
        buffer += b"\n!! This body is deliberately not valid JSON: retry the request.\n"
        yield bytes(buffer)
        return
    buffer += b"]"
    yield bytes(buffer)
