"""Reference data as Sesam entities: the data that gives the records their meaning.

- **Owners** (`hubspot_owner_id` is an owner's id): the active and the deactivated owners,
  the deactivated ones as ``_deleted`` entities that keep their fields. `_updated` is the
  token of ``(updatedAt, owner id)``, so `since` works as on the record exports.
- **Pipelines and their stages** (`dealstage` is a stage's id) and **property definitions**
  (an enumeration's value is one of its options): HubSpot has no modification filter for
  them and an archived pipeline may vanish from its list, so every request returns all of
  them, and their pipes run without `since` (Sesam's deletion tracking then marks what a run
  no longer returns as deleted). Their `_updated` is HubSpot's `updatedAt` (UTC, ms), ``_``
  and the entity's id, and a response comes in its order as every export does; it is no
  continuation token.

Owners and `since`. HubSpot's owners API has no filter on `updatedAt`, so each export reads
both lists whole (a portal has at most thousands of owners). Whether deactivating an owner
moves its `updatedAt` is not documented, so a deactivation cannot be placed by it: every
deactivated owner is sent again by every export, at the export's *horizon* (HubSpot's clock
when the export began, less HUBSPOT_SEARCH_SETTLE_SECONDS), which every later export's
horizon passes. An active owner is sent at its `updatedAt` once that is at or before the
horizon. So a pipe's offset never passes a moment whose changes an export could not see
yet, and no deactivation is lost whether or not it moves `updatedAt`: a deactivation after
an export is at the next export's horizon, after that export's offset. Repeats are harmless
to Sesam (an unchanged entity makes no new version). The export takes no `limit`: with
`page_size` the deactivated owners, re-sent on every request, would keep paging going.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..config import Settings
from ..hubspot import HubSpotClient
from ..hubspot.answers import Owner, Pipeline
from ..object_types import ObjectType
from ..timestamps import MIN_MS, format_ms
from .export import Entity, ExportStats
from .positions import ALL_IDS, Position, encode_key

OWNERS = "owners"


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    """HubSpot's fields of an object, without any that Sesam would take as its own (`_id`,
    `_updated`, `_deleted`): those are the export's."""
    return {key: value for key, value in data.items() if not key.startswith("_")}


def _stamp(ms: int | None, entity_id: str) -> str:
    """The `_updated` of an entity without continuation: its `updatedAt` (the epoch when
    HubSpot gives none, as for some of its own definitions), then ``_`` and its id, so that
    the entities of a response, sorted by it, come in strictly increasing `_updated` order
    as on every export."""
    return f"{format_ms(MIN_MS if ms is None else ms)}_{entity_id}"


def _in_order(entities: Iterable[Entity]) -> list[Entity]:
    return sorted(entities, key=lambda entity: str(entity["_updated"]))


def _entity(entity_id: str, updated: str, deleted: bool, data: dict[str, Any],
            **extra: Any) -> Entity:
    head: Entity = {"_id": entity_id, "_updated": updated}
    if deleted:
        head["_deleted"] = True
    return {**head, **_fields(data), **extra}


def _lazy(entities: Callable[[], Iterable[Entity]]) -> Iterator[Entity]:
    """The entities ``entities()`` makes, in `_updated` order; HubSpot is read at the first
    ``next``, inside the export (its failure is then the export's)."""
    yield from _in_order(entities())


def _counted(entities: Iterable[Entity], stats: ExportStats) -> Iterator[Entity]:
    for entity in entities:
        stats.count_entity(entity)
        yield entity


class Reference:
    """The reference exports. Thread-safe (it keeps no state between exports)."""

    def __init__(self, client: HubSpotClient, settings: Settings) -> None:
        self._client = client
        self._settle_ms = int(settings.settle_seconds * 1000)

    # -- owners ----------------------------------------------------------------------

    def owners(self, start: Position, stats: ExportStats) -> Iterator[Entity]:
        """The owners after ``start`` in `_updated` order: active ones by `updatedAt` up to
        the horizon, every deactivated one at the horizon (see the module's docstring)."""
        def entities() -> Iterator[Entity]:
            active, first_ms = self._owners(False, stats)
            deactivated, _ = self._owners(True, stats)
            horizon = max(MIN_MS, first_ms - self._settle_ms)
            gone = {owner.id for owner in deactivated}
            placed = [(Position(owner.updated_ms, owner.id, ALL_IDS), owner) for owner in active
                      if owner.id not in gone and owner.updated_ms <= horizon]
            placed += [(Position(horizon, owner.id, ALL_IDS), owner) for owner in deactivated]
            placed.sort(key=lambda item: item[0])
            for position, owner in placed:
                if position > start:
                    yield _entity(str(owner.id), encode_key((position.ms, position.id)),
                                  owner.id in gone, owner.data)
        return _counted(entities(), stats)

    def _owners(self, archived: bool, stats: ExportStats) -> tuple[list[Owner], int]:
        """(every owner of one list, each once; HubSpot's clock when its first page was
        answered)."""
        found: dict[int, Owner] = {}
        first_ms: int | None = None
        for page in self._client.owner_pages(archived):
            stats.count_calls(page.calls)
            first_ms = page.server_ms if first_ms is None else min(first_ms, page.server_ms)
            found.update((owner.id, owner) for owner in page.records)
        assert first_ms is not None  # owner_pages yields at least one page or raises
        return list(found.values()), first_ms

    # -- pipelines -------------------------------------------------------------------

    def _pipelines(self, kind: ObjectType, stats: ExportStats) -> list[Pipeline]:
        pipelines, calls = self._client.pipelines(kind)
        stats.count_calls(calls)
        return pipelines

    def pipelines(self, kind: ObjectType, stats: ExportStats) -> Iterator[Entity]:
        """Every pipeline of ``kind``, with its stages nested as HubSpot gives them;
        archived ones (if HubSpot lists them) as ``_deleted``."""
        def entities() -> Iterator[Entity]:
            for pipeline in self._pipelines(kind, stats):
                yield _entity(pipeline.id, _stamp(pipeline.updated_ms, pipeline.id),
                              pipeline.archived, pipeline.data)
        return _counted(_lazy(entities), stats)

    def stages(self, kind: ObjectType, stats: ExportStats) -> Iterator[Entity]:
        """Every stage of every pipeline of ``kind``, one entity each, with its pipeline's
        id and label (a stage of an archived pipeline is ``_deleted`` too)."""
        def entities() -> Iterator[Entity]:
            for pipeline in self._pipelines(kind, stats):
                for stage in pipeline.stages:
                    yield _entity(stage.id, _stamp(stage.updated_ms, stage.id),
                                  stage.archived or pipeline.archived, stage.data,
                                  pipelineId=pipeline.id, pipelineLabel=pipeline.label)
        return _counted(_lazy(entities), stats)

    # -- property definitions ----------------------------------------------------------

    def properties(self, kind: ObjectType, stats: ExportStats) -> Iterator[Entity]:
        """Every property definition of ``kind``, with its group's label (`groupLabel`);
        archived definitions as ``_deleted`` (a name both live and archived is live)."""
        def entities() -> Iterator[Entity]:
            live, calls = self._client.property_definitions(kind, archived=False)
            stats.count_calls(calls)
            archived, calls = self._client.property_definitions(kind, archived=True)
            stats.count_calls(calls)
            groups, calls = self._client.property_groups(kind)
            stats.count_calls(calls)
            sent: set[str] = set()
            for definition in (*live, *archived):
                if definition.name in sent:  # one entity per name, the live one first
                    continue
                sent.add(definition.name)
                label = groups.get(definition.group) if definition.group is not None else None
                yield _entity(definition.name, _stamp(definition.updated_ms, definition.name),
                              definition.archived, definition.data, groupLabel=label)
        return _counted(_lazy(entities), stats)
