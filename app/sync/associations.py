"""The associations of exported records: every associated record of the types a pipe asks
for, read with HubSpot's v4 batch API for up to 1,000 records a request (HubSpot's limit),
following a record's own pages when it has many.

A change of associations alone does not move a record's modification time in HubSpot: it
reaches Sesam with the record's next change, or with the pipe's next full run.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from ..hubspot import Association, HubSpotClient, HubSpotError
from ..object_types import ObjectType
from ..redact import quote
from .export import Entity, ExportStats

ASSOCIATION_BATCH = 1000  # HubSpot's most inputs per v4 batch read
# Pages of one record's associations to one type: HubSpot allows a record at most 10,000
# associations to one type (more only on request), at least 100 a page, so 100 pages; ten
# times that is not a real record's paging but one that never ends.
MAX_PAGES_PER_RECORD = 1_000


def batches(entities: Iterator[Entity], size: int) -> Iterator[list[Entity]]:
    """Consecutive entities, up to ``size`` a batch (in order)."""
    while batch := list(islice(entities, size)):
        yield batch


class AssociationReader:
    """Reads the associations of a batch of records of ``source`` to each of ``targets``,
    every page of every record, and adds them to the records' entities."""

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
        found: dict[str, list[Association]] = {}
        cursors: dict[str, set[str]] = {}  # by record: the cursors HubSpot gave so far
        pending: list[dict[str, str]] = [{"id": i} for i in ids]
        while pending:
            batch, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
            answer = self._client.associations(self._source, target, batch)
            self._stats.count_calls(answer.calls)
            asked = {item["id"] for item in batch}
            answered = {record for record, _, _ in answer.found} | (answer.without & asked)
            for record, associated, after in answer.found:
                found.setdefault(record, []).extend(associated)
                if after is not None:
                    self._check_paging(target, record, after, cursors.setdefault(record, set()))
                    pending.append({"id": record, "after": after})
            if missing := asked - answered:
                raise HubSpotError(502, "HubSpot answer unusable",
                                   f"HubSpot's association answer ({self._source.name} to "
                                   f"{target.name}) says nothing of {len(missing)} of the ids "
                                   f"asked, such as {min(missing)!r}.")
        return {i: [a.entity() for a in sorted(found.get(i, []), key=lambda a: a.id)] for i in ids}

    def _check_paging(self, target: ObjectType, record: str, after: str, given: set[str]) -> None:
        """A 502 where a record's association paging would never end (a cursor HubSpot gave
        before, or `MAX_PAGES_PER_RECORD` pages), instead of reading on for ever, on the
        budget every export shares; else note ``after`` among those ``given``."""
        why = (f"it gave the cursor {quote(after)} twice" if after in given else
               f"it went on past {MAX_PAGES_PER_RECORD} pages" if len(given) + 1 >= MAX_PAGES_PER_RECORD
               else None)
        if why is not None:
            raise HubSpotError(502, "HubSpot paging does not end",
                               f"HubSpot's association answer ({self._source.name} to "
                               f"{target.name}) would page on forever for record "
                               f"{quote(record)}: {why}.")
        given.add(after)
