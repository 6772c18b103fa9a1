"""Property history, opt-in: who changed a value, when, and from which source.

HubSpot's search cannot return a property's history; its v3 batch read can
(``propertiesWithHistory``), for fewer records a request than its usual 100. The export
reads it beside the walk: the entities go in batches of `HISTORY_BATCH` to one batch read
each, read ahead of the body on the shared workers (`Crm.entities`), so memory holds a few
batches and the body keeps streaming. Each live entity then carries
``propertiesWithHistory``: for each property asked, its values newest first (HubSpot's
ValueWithTimestamp: value, timestamp, sourceType, sourceId, sourceLabel, updatedByUserId);
deleted entities carry none.

A record that goes (deleted, merged away) between the walk and its batch read is not in
HubSpot's answer: its entity goes out as the walk found it, without
``propertiesWithHistory``, counted in the export's summary (``history_missing``) and
logged; its deletion reaches the pipe on its next run. The entity is never given another
record's history or a made-up empty one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from ..hubspot import HubSpotClient
from ..object_types import ObjectType
from ..redact import quote
from .associations import batches
from .export import Entity, ExportStats

log = logging.getLogger(__name__)

# Records per batch read with history. HubSpot's published description of the v3 objects
# API (PublicApiSpecs/CRM/Objects/Rollouts/424/v3/objects.json, `propertiesWithHistory`)
# says only that asking for history "will reduce the maximum number of objects that can be
# read by a single request"; HubSpot's CRM guides give 50 records a request with history
# (against 100 without). 50 it is.
HISTORY_BATCH = 50
MAX_HISTORY_PROPERTIES = 20  # property names one export may ask the history of (openapi.yaml too)
HISTORY_READ_AHEAD = 1  # batches whose history is read ahead of the body
HISTORY_FIELD = "propertiesWithHistory"


class InvalidHistory(ValueError):
    """A `history` parameter the service cannot serve (a 400)."""


class UnknownProperty(InvalidHistory):
    """A well-formed name that is not a property of the type (HubSpot would ignore it
    silently): a 404, as a type the portal lacks is."""


def checked_names(client: HubSpotClient, kind: ObjectType, raw: str | None) -> tuple[str, ...]:
    """The property names of a `history` parameter (comma-separated), each once, in order;
    `UnknownProperty` naming those the type's catalogue lacks, `InvalidHistory` for too many.
    HubSpot ignores a name it does not know, which would give every record an empty
    history that looks real: so each is checked against the catalogue first."""
    if raw is None:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    if len(names) > MAX_HISTORY_PROPERTIES:
        raise InvalidHistory(f"query parameter 'history': at most {MAX_HISTORY_PROPERTIES} "
                              f"properties, got {len(names)}.")
    known = set(client.catalogue(kind))
    if unknown := [name for name in names if name not in known]:
        shown = ", ".join(quote(name, 100) for name in unknown[:5])
        raise UnknownProperty(f"query parameter 'history': {shown} "
                              f"{'is not a property' if len(unknown) == 1 else 'are not properties'} "
                              f"of {kind.name} in this portal.")
    return names


class HistoryReader:
    """Reads the history of ``names`` for batches of records of ``kind`` and adds it to
    their entities."""

    def __init__(self, client: HubSpotClient, kind: ObjectType, names: tuple[str, ...],
                 stats: ExportStats) -> None:
        self._client = client
        self._kind = kind
        self._names = names
        self._stats = stats

    def batches(self, entities: Iterator[Entity]) -> Iterator[list[Entity]]:
        """``entities`` in batches of `HISTORY_BATCH`, each with its history."""
        return (self.attach(batch) for batch in batches(entities, HISTORY_BATCH))

    def attach(self, batch: list[Entity]) -> list[Entity]:
        live = [entity for entity in batch if not entity.get("_deleted")]
        if not live:
            return batch
        # Each id once: a record changed while a full export ran comes again in its
        # catch-up pass, possibly within the same batch.
        ids = list(dict.fromkeys(entity["id"] for entity in live))
        answer = self._client.history(self._kind, ids, self._names)
        self._stats.count_calls(answer.calls)
        for entity in live:
            found = answer.found.get(entity["id"])
            if found is not None:
                entity[HISTORY_FIELD] = found
        if answer.missing:
            self._stats.count_history_missing(len(answer.missing))
            log.warning("%d %s gone before their history was read; sent without it",
                        len(answer.missing), self._kind.name,
                        extra={"object_type": self._kind.name,
                               "ids": sorted(answer.missing, key=int)[:10]})
        return batch
