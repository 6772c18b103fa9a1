"""The CRM as the HTTP surface exports it: any object type, by the same engine, with its
associations if asked.

One `export.Exporter` per object type, made when a pipe first names the type, all sharing
one `hubspot.HubSpotClient` and so one HubSpot budget (HubSpot's search limit is per
account, whatever the type), and one pool of threads that send the search requests.
Associations are read with HubSpot's v4 batch API for a batch of up to 1,000 records at a
time (HubSpot's limit per request), in a thread of their own, so that they are read while
the walk reads the next search pages.

A change of associations alone does not move a record's modification time in HubSpot: it
reaches Sesam with the record's next change, or with the pipe's next full run.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from itertools import chain, islice
from typing import Any, Callable, Iterator

from .config import Settings
from .continuation import Position
from .errors import UpstreamError
from .export import Entity, Exporter, ExportStats, read_ahead
from .hubspot import HubSpotClient, error_context
from .objects import CONTACTS, ObjectType, ObjectTypes, standard_types

ASSOCIATION_BATCH = 1000  # HubSpot's most inputs per v4 batch read
ASSOCIATION_READ_AHEAD = 1  # batches of entities whose associations are read ahead of the body
PAGE_THREADS = 16  # search requests sent at once, by all exports of all types together


class Crm:
    """Resolves object types and exports them. Thread-safe."""

    def __init__(self, client: HubSpotClient, settings: Settings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        properties = {**dict(settings.object_properties), CONTACTS: settings.properties}
        self.types = ObjectTypes(standard_types(settings.modified_property, properties),
                                 client.schemas, properties, settings.properties_cache_seconds)
        self._client = client
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._exporters: dict[str, Exporter] = {}
        # Created as needed, idle when nothing is exported; the client's budget spaces them.
        self._pages = ThreadPoolExecutor(max_workers=PAGE_THREADS, thread_name_prefix="hubspot-page")

    def exporter(self, kind: ObjectType) -> Exporter:
        """The one exporter of a type (its archived snapshot is shared by all its exports)."""
        with self._lock:
            if kind.path not in self._exporters:
                settings = replace(self._settings, modified_property=kind.modified_property)
                self._exporters[kind.path] = Exporter(self._client.of(kind), settings, self._pages,
                                                     self._clock)
            return self._exporters[kind.path]

    def entities(self, kind: ObjectType, start: Position, limit: int | None, stats: ExportStats,
                 associations: tuple[ObjectType, ...] = ()) -> Iterator[Entity]:
        """The export of one type after ``start``; each live record with its associations of
        the ``associations`` types."""
        entities = self.exporter(kind).entities(start, limit, stats)
        if not associations:
            return entities
        reader = _Associations(self._client, kind, associations, stats)
        batches = (reader.attach(batch) for batch in _batches(entities, ASSOCIATION_BATCH))
        return chain.from_iterable(read_ahead(batches, ASSOCIATION_READ_AHEAD))


def _batches(entities: Iterator[Entity], size: int) -> Iterator[list[Entity]]:
    """Consecutive entities, up to ``size`` a batch (in order)."""
    while batch := list(islice(entities, size)):
        yield batch


class _Associations:
    """Reads the associations of a batch of records, every page of every record."""

    def __init__(self, client: HubSpotClient, source: ObjectType,
                 targets: tuple[ObjectType, ...], stats: ExportStats) -> None:
        self._client = client
        self._source = source
        self._targets = targets
        self._stats = stats

    def attach(self, batch: list[Entity]) -> list[Entity]:
        ids = [entity["id"] for entity in batch if not entity.get("_deleted")]
        if not ids:
            return batch
        found = {target.name: self._read(target, ids) for target in self._targets}
        for entity in batch:
            if not entity.get("_deleted"):
                entity["associations"] = {name: found[name][entity["id"]] for name in found}
        return batch

    def _read(self, target: ObjectType, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every association of ``ids`` to ``target``, by id, sorted by the target's id."""
        found: dict[str, list[dict[str, Any]]] = {}
        pending: list[dict[str, str]] = [{"id": i} for i in ids]
        while pending:
            batch, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
            data, calls = self._client.associations(self._source, target, batch)
            self._stats.upstream_calls += calls
            self._stats.retries += calls - 1
            asked = {item["id"] for item in batch}
            try:
                answered = _take(data, found, pending)
            except (KeyError, TypeError, AttributeError) as exc:
                raise UpstreamError(502, "HubSpot answer unusable",
                                    f"HubSpot's association answer ({self._source.name} to "
                                    f"{target.name}) could not be used: {type(exc).__name__} "
                                    f"{str(exc)[:80]}") from None
            answered |= _without_associations(data) & asked
            if missing := asked - answered:
                raise UpstreamError(502, "HubSpot answer unusable",
                                    f"HubSpot's association answer ({self._source.name} to "
                                    f"{target.name}) says nothing of {len(missing)} of the ids "
                                    f"asked, such as {min(missing)!r}.")
        return {i: sorted(found.get(i, []), key=lambda to: int(to["id"])) for i in ids}


def _take(data: dict[str, Any], found: dict[str, list[dict[str, Any]]],
          pending: list[dict[str, str]]) -> set[str]:
    """Adds one answer's associations to ``found`` and the records' next pages to
    ``pending``; returns the records it answered for."""
    answered = set()
    for result in data.get("results") or []:
        record = str(result["from"]["id"])
        answered.add(record)
        found.setdefault(record, []).extend(
            {"id": str(to["toObjectId"]), "types": to.get("associationTypes", [])}
            for to in result.get("to") or [])
        after = ((result.get("paging") or {}).get("next") or {}).get("after")
        if after is not None:
            pending.append({"id": record, "after": str(after)})
    return answered


def _without_associations(data: dict[str, Any]) -> set[str]:
    """The ids a 207 answer lists as having nothing to return (HubSpot names them in each
    error's ``context``)."""
    return {str(value) for _, values in error_context(data) for value in values}
