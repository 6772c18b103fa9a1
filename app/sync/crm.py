"""The CRM as the service exports it: any object type the portal has, by the same engine,
with its associations if asked.

One `Exporter` per object type, made when a pipe first names the type, all sharing one
`HubSpotClient` and so one HubSpot budget (HubSpot's search limit is per account, whatever
the type), and one set of `Workers`. Associations are read for a batch of up to 1,000
records at a time, ahead of the body, while the walk reads the next search pages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from ..config import Settings
from ..hubspot import HubSpotClient
from ..object_types import CONTACTS, ObjectType, ObjectTypes, standard_types
from .associations import ASSOCIATION_BATCH, AssociationReader, batches
from .export import Entity, Exporter, ExportStats
from .history import HISTORY_READ_AHEAD, HistoryReader, checked_names
from .positions import Position
from .reference import Reference
from .values import TYPED, typed_entities
from .workers import Workers

ASSOCIATION_READ_AHEAD = 1  # batches of entities whose associations are read ahead of the body


def _flat(batches: Iterator[list[Entity]]) -> Iterator[Entity]:
    """The entities of ``batches``; closing this closes ``batches`` at once (its reader
    stops), which a `chain` would leave to the garbage collector."""
    try:
        for batch in batches:
            yield from batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


class Crm:
    """Resolves object types and exports them. Thread-safe."""

    def __init__(self, client: HubSpotClient, settings: Settings,
                 clock: Callable[[], float] = time.monotonic,
                 workers: Workers | None = None) -> None:
        properties = {**dict(settings.object_properties), CONTACTS: settings.properties}
        self.types = ObjectTypes(standard_types(settings.modified_property, properties),
                                 client.schemas, properties, settings.properties_cache_seconds)
        self.workers = workers or Workers()
        self._client = client
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._exporters: dict[str, Exporter] = {}
        self.reference = Reference(client, settings)  # owners, pipelines, property definitions
        self.values = settings.values  # how property values are written unless a request says

    def exporter(self, kind: ObjectType) -> Exporter:
        """The one exporter of a type (its archived snapshot is shared by all its exports)."""
        with self._lock:
            if kind.path not in self._exporters:
                self._exporters[kind.path] = Exporter(self._client, kind, self._settings,
                                                      self.workers, self._clock)
            return self._exporters[kind.path]

    def history_names(self, kind: ObjectType, names: str | None) -> tuple[str, ...]:
        """The properties a `history` parameter names (`history.checked_names`)."""
        return checked_names(self._client, kind, names)

    def entities(self, kind: ObjectType, start: Position, limit: int | None, stats: ExportStats,
                 associations: tuple[ObjectType, ...] = (),
                 history: tuple[str, ...] = (), values: str | None = None) -> Iterator[Entity]:
        """The export of one type after ``start``; each live record with its associations of
        the ``associations`` types and the history of the ``history`` properties; its
        property values typed if ``values`` (else the configured HUBSPOT_VALUES) says so, by
        the type's catalogue (cached). History and associations are added after the typing
        and stay as HubSpot gives them."""
        entities = self.exporter(kind).entities(start, limit, stats)
        if (values or self.values) == TYPED:
            entities = typed_entities(entities, lambda: self._client.property_types(kind),
                                      stats.count_unparsed)
        if history:
            read = HistoryReader(self._client, kind, history, stats).batches(entities)
            entities = _flat(self.workers.read_ahead(read, HISTORY_READ_AHEAD))
        if not associations:
            return entities
        reader = AssociationReader(self._client, kind, associations, stats)
        read = (reader.attach(batch) for batch in batches(entities, ASSOCIATION_BATCH))
        return _flat(self.workers.read_ahead(read, ASSOCIATION_READ_AHEAD))

    def set_up_for(self) -> list[str]:
        """The names of the types the service is configured for or was asked for since it
        started: contacts, those of HUBSPOT_OBJECT_PROPERTIES, those exported."""
        with self._lock:
            exported = [exporter.kind.name for exporter in self._exporters.values()]
        configured = [name for name, _ in self._settings.object_properties]
        return list(dict.fromkeys([CONTACTS, *configured, *exported]))

    def snapshot_ages(self) -> dict[str, float]:
        """The age in seconds of each type's archived snapshot, of the types read so far."""
        with self._lock:
            exporters = list(self._exporters.values())
        ages = {exporter.kind.name: exporter.snapshots.age() for exporter in exporters}
        return {name: age for name, age in ages.items() if age is not None}

    def close(self) -> None:
        """Stop the background work; the client's connections go too."""
        self.workers.close()
        self._client.close()
