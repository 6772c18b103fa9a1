"""The export: HubSpot contacts as Sesam entities in `_updated` order, streamed as JSON.

Live contacts come from the keyset walk over search (`continuation.KeysetWalk`); on an
incremental export the contacts deleted (archived) since the offset come from the list
API and are merged in, in order, as ``_deleted`` entities. Everything is lazy: HubSpot is
read page by page while the body is being written, so memory stays flat.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any, Iterable, Iterator

import orjson

from .config import Settings
from .continuation import (
    START, Key, KeysetWalk, contact_key, encode_key, format_ms, parse_timestamp,
)
from .hubspot import HubSpotClient, search_body

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
Entity = dict[str, Any]


@dataclass
class ExportStats:
    """What one export did, for its summary log line."""

    entities: int = 0
    deleted: int = 0
    search_pages: int = 0
    list_pages: int = 0
    error: str | None = None  # why the body was cut short, if it was


class Exporter:
    """Turns a `since` position into the stream of entities after it."""

    def __init__(self, client: HubSpotClient, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._settle_ms = int(settings.settle_seconds * 1000)

    def entities(self, start: Key, limit: int | None, stats: ExportStats) -> Iterator[Entity]:
        """The first ``limit`` entities after ``start`` (all of them if None), in order."""
        for entity in islice(self._changes(start, stats), limit):
            stats.entities += 1
            yield entity

    def _changes(self, start: Key, stats: ExportStats) -> Iterator[Entity]:
        walk = KeysetWalk(start)
        if start == START or not self._settings.include_deleted:
            # A full export lists what exists; Sesam's full rescan tracks deletions itself.
            yield from (entity for _, entity in self._live(walk, stats))
            return
        # The archived list is not sorted by time and is read first, whole; it also fixes
        # the horizon before the first search.
        deleted = self._deleted(start, walk, stats)
        last: Key | None = None
        # Deletions go first on an equal key, and an equal key is sent once: the contact
        # was modified and deleted on the same millisecond, and deleted is what it is now.
        for key, entity in heapq.merge(deleted, self._live(walk, stats), key=itemgetter(0)):
            if key != last:
                last = key
                yield entity

    def _live(self, walk: KeysetWalk, stats: ExportStats) -> Iterator[tuple[Key, Entity]]:
        prop = self._settings.modified_property
        properties = self._client.property_names()
        while (query := walk.next_query()) is not None:
            body = search_body(query, prop, properties, self._settings.search_page_size)
            page = self._client.search(body)
            stats.search_pages += 1
            walk.fix_horizon(page.server_ms - self._settle_ms)
            keyed = [(contact_key(contact, prop), contact) for contact in page.results]
            for key, contact in walk.accept(query, keyed, page.has_more):
                yield key, {"_id": contact["id"], "_updated": encode_key(key), **contact}

    def _deleted(self, start: Key, walk: KeysetWalk, stats: ExportStats) -> Iterator[tuple[Key, Entity]]:
        found: list[tuple[Key, str]] = []
        for page in self._client.archived_pages():
            stats.list_pages += 1
            walk.fix_horizon(page.server_ms - self._settle_ms)
            horizon = walk.horizon_ms
            assert horizon is not None
            for contact in page.results:
                archived_at = contact.get("archivedAt")
                if not archived_at:
                    continue
                key = (parse_timestamp(archived_at), int(contact["id"]))
                if start < key and key[0] <= horizon:
                    found.append((key, contact["id"]))
        found.sort(key=itemgetter(0))
        stats.deleted = len(found)
        return ((key, _deletion(key, contact_id)) for key, contact_id in found)


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
