"""One object type's records: their versions, writes, archive, restore, merges and rendering."""

from __future__ import annotations

import dataclasses
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from .batch import History, Source
from .clock import Clock
from .common import APP_URL, DAY_MS, GOLDEN, MASK64, PORTAL_ID, Knobs, as_int, iso, mix, parse_iso_ms
from .objects import ObjectType, Property, Version, custom_value, generic_value
from .search import Searchable


def record_url(object_type: ObjectType, cid: int) -> str:
    """Where HubSpot's app shows the record: the ``url`` HubSpot's objects carry (its
    SimplePublicObject), so a client that passes records on keeps a field it did not ask for."""
    return f"{APP_URL}/contacts/{PORTAL_ID}/record/{object_type.type_id}/{cid}"


class Store(Searchable):
    """The records of one object type.  Every method expects the portal's lock (the clock's)
    to be held or takes it; the portal's clock and knobs apply, and `tie_salts` is the
    portal's sequence of tie orders (see search.tie_salts)."""

    def __init__(self, object_type: ObjectType, seed: int, rng: random.Random, clock: Clock, knobs: Knobs,
                 tie_salts: Iterator[int]) -> None:
        self.clock = clock
        self.knobs = knobs
        self.tie_salts = tie_salts
        self.object_type = object_type
        self._seed = seed
        self._rng = rng
        self.properties: dict[str, Property] = {p.name: p for p in object_type.properties}
        self._catalogue: list[dict] = []
        self._next_id = object_type.first_id
        self._records: dict[int, Version] = {}  # current version of every record, archived ones included
        self._merged_into: dict[int, int] = {}  # merged-away id -> the survivor it went into
        self._live_ids: list[int] = []  # sorted
        self._archived_ids: list[int] = []  # sorted
        self.unseeded: tuple[int, float] | None = None  # (count, archived fraction) still to seed
        self.seeded_ids: list[int] = []  # the records seeding made, in id order
        self.history = History()  # every value written, with its source (batch read's propertiesWithHistory)
        super().__init__()

    @property
    def catalogue(self) -> list[dict]:
        """GET /crm/v3/properties/{type}'s results, described once."""
        if not self._catalogue:
            self._catalogue = [p.describe(order, self.object_type) for order, p in enumerate(self.properties.values())]
        return self._catalogue

    # ----------------------------------------------------------------- seeding

    def tie(self, cid: int) -> int:
        """Record `cid`'s tie: the hash of (seed, id) its versions carry (see Version.tie)."""
        return mix(((self._seed * GOLDEN) ^ cid) & MASK64)

    def _allocate_id(self) -> int:
        cid = self._next_id
        self._next_id += self._rng.randint(1, 3)  # gaps, so ids are not dense
        return cid

    def _seed_modified_times(self, count: int) -> list[int]:
        rng = self._rng
        low = self.clock.start_ms - 90 * DAY_MS
        span = 90 * DAY_MS - 60_000  # ends a minute before start, leaving room for archivedAt

        def stamp() -> int:
            ms = low + int(rng.random() * span)
            return ms - ms % 1000 if rng.random() < 0.05 else ms

        times: list[int] = []
        if count >= 1000:
            # Larger than a 200-result search page, so a page boundary falls inside it.
            times += [stamp()] * rng.randint(250, 300)
        while len(times) < count // 8:
            size = min(2 + int(rng.expovariate(0.15)), 300, count - len(times))
            times += [stamp()] * size
        times += [stamp() for _ in range(count - len(times))]
        rng.shuffle(times)
        return times

    def seed(self, count: int, archived_fraction: float) -> None:
        rng = self._rng
        modified = self._seed_modified_times(count)
        first_created = self.clock.start_ms - 730 * DAY_MS
        # Created in id order, all before the 90-day modification window.
        created = sorted(first_created + int(rng.random() * 600 * DAY_MS) for _ in range(count))
        archived = set(rng.sample(range(count), round(count * archived_fraction)))
        live: list[Version] = []
        for i in range(count):
            cid = self._allocate_id()
            archived_at = None
            if i in archived:
                archived_at = rng.randint(modified[i] + 1, self.clock.start_ms - 1)
            version = Version(cid, self.tie(cid), created[i], modified[i], archived_at)
            self._records[cid] = version
            self.seeded_ids.append(cid)
            if archived_at is None:
                self._live_ids.append(cid)
                live.append(version)
            else:
                self._archived_ids.append(cid)
        self.index_seeded(live)

    # ----------------------------------------------------------------- writes

    def _coerce(self, properties: Mapping[str, Any] | None, raw: bool = False) -> Mapping[str, str | None]:
        """The values to store; ``raw``: as they are, unchecked against their type (a value
        a portal holds from an import or an older API that does not read as its type)."""
        values: dict[str, str | None] = {}
        for name, value in (properties or {}).items():
            prop = self.properties.get(name)
            if prop is None:
                raise ValueError(f"Property {name!r} does not exist")
            if name in self.object_type.read_only or prop.formula is not None:  # calculated: HubSpot's
                raise ValueError(f"Property {name!r} is read-only")
            values[name] = (None if value is None or value == "" else str(value) if raw
                            else self._stored_value(prop, value))
        return MappingProxyType(values)

    @staticmethod
    def _stored_value(prop: Property, value: Any) -> str:
        if prop.type == "number":
            float(value)  # raises ValueError like HubSpot's 400 for a non-number
        elif prop.type == "datetime":
            ms = as_int(value)
            return iso(ms if ms is not None else parse_iso_ms(str(value)))
        elif prop.options and str(value) not in prop.options:
            raise ValueError(f"{value!r} is not a valid option for {prop.name}")
        return str(value)

    def _write(self, new: Version, now: int) -> None:
        old = self._records.get(new.id)
        self._records[new.id] = new
        was_live = old is not None and old.archived_at is None
        is_live = new.archived_at is None
        if old is not None and was_live != is_live:
            source = self._live_ids if was_live else self._archived_ids
            del source[bisect_left(source, new.id)]
        if old is None or was_live != is_live:
            insort(self._live_ids if is_live else self._archived_ids, new.id)
        self.index_write(now, new.id, new if is_live else None)

    def _lookup(self, raw: str) -> Version | None:
        cid = as_int(raw)
        return self._records.get(cid) if cid is not None else None

    def existing(self, ids: Iterable[str], live: bool) -> list[Version]:
        """Current versions of `ids`, all checked before anything is written."""
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of id strings, not one string")
        versions = []
        for raw in ids:
            version = self._lookup(raw)
            if version is None or (version.archived_at is None) != live:
                raise KeyError(f"no {'live' if live else 'archived'} {self.object_type.singular} with id {raw!r}")
            versions.append(version)
        return versions

    def create(self, count: int = 1, properties: dict | None = None, source: Source | None = None) -> list[str]:
        """Create `count` records at the current ms (so they tie); unset properties are generated.
        `source` wrote the properties given (the API by default), for their history."""
        if count < 0:
            raise ValueError("count must be >= 0")
        overrides = self._coerce(properties)
        with self.clock.lock:
            now = self.clock.now_locked()
            ids = []
            for _ in range(count):
                cid = self._allocate_id()
                self._write(Version(cid, self.tie(cid), now, now, None, overrides), now)
                self.history.note(cid, overrides, now, source)
                ids.append(str(cid))
            return ids

    def modify(self, ids: Iterable[str], properties: dict | None = None, source: Source | None = None,
               raw: bool = False) -> None:
        """Set properties (None or "" clears one) and the modification time=now; KeyError for
        unknown or archived ids. `source` wrote them (the API by default), for their history.
        ``raw``: the values unchecked against their types."""
        changes = self._coerce(properties, raw)
        with self.clock.lock:
            now = self.clock.now_locked()
            for version in self.existing(ids, live=True):
                merged = MappingProxyType({**version.overrides, **changes})
                self._write(dataclasses.replace(version, modified=now, overrides=merged), now)
                self.history.note(version.id, changes, now, source)

    def archive(self, ids: Iterable[str]) -> None:
        """Archive (HubSpot's delete) live records at now; search drops them once the lag passes."""
        with self.clock.lock:
            now = self.clock.now_locked()
            for version in self.existing(ids, live=True):
                self._write(dataclasses.replace(version, archived_at=now), now)

    def modify_and_archive(self, ids: Iterable[str], properties: dict | None = None) -> None:
        """Modify live records and archive them on the same millisecond: their
        modification time and archivedAt are equal (HubSpot's bulk clean-ups do this)."""
        changes = self._coerce(properties)
        with self.clock.lock:
            now = self.clock.now_locked()
            for version in self.existing(ids, live=True):
                merged = MappingProxyType({**version.overrides, **changes})
                modified = dataclasses.replace(version, modified=now, overrides=merged)
                self._write(modified, now)
                self._write(dataclasses.replace(modified, archived_at=now), now)

    def restore(self, ids: Iterable[str]) -> None:
        """Un-archive records, setting the modification time=now."""
        with self.clock.lock:
            now = self.clock.now_locked()
            for version in self.existing(ids, live=False):
                self._write(dataclasses.replace(version, archived_at=None, modified=now), now)

    def merge(self, primary: str, secondary: str) -> None:
        """Merge live record `secondary` into live record `primary`, as HubSpot does: the
        secondary vanishes (not archived: it leaves search, the list API and the archived
        list), the primary's hs_merged_object_ids gains it (and what had been merged into
        it) and its modification time moves to now."""
        if not self.object_type.mergeable:
            raise ValueError(f"HubSpot merges contacts, companies, deals and tickets, not {self.object_type.name}")
        with self.clock.lock:
            now = self.clock.now_locked()
            survivor, gone = self.existing([primary, secondary], live=True)
            if survivor.id == gone.id:
                raise ValueError(f"a {self.object_type.singular} cannot be merged into itself")
            ids = [*self._merged_list(survivor), str(gone.id), *self._merged_list(gone)]
            del self._live_ids[bisect_left(self._live_ids, gone.id)]
            del self._records[gone.id]
            self._merged_into[gone.id] = survivor.id
            self.index_write(now, gone.id, None)
            overrides = MappingProxyType({**survivor.overrides,
                                          "hs_merged_object_ids": ";".join(dict.fromkeys(ids))})
            self._write(dataclasses.replace(survivor, modified=now, overrides=overrides), now)

    def _merged_list(self, version: Version) -> list[str]:
        return [part for part in (self.raw(version, "hs_merged_object_ids") or "").split(";") if part]

    # ----------------------------------------------------------------- truth

    def merged(self) -> dict[str, list[str]]:
        """Live record id -> the ids merged into it (hs_merged_object_ids), for those that have any."""
        with self.clock.lock:
            found = {str(cid): self._merged_list(self._records[cid]) for cid in self._live_ids}
        return {cid: ids for cid, ids in found.items() if ids}

    def live(self) -> dict[str, int]:
        """id -> modification time ms of every live record, as of now (no lag)."""
        with self.clock.lock:
            return {str(cid): self._records[cid].modified for cid in self._live_ids}

    def archived(self) -> dict[str, int]:
        """id -> archivedAt ms of every archived record."""
        with self.clock.lock:
            return {str(cid): self._records[cid].archived_at for cid in self._archived_ids}

    def counts(self) -> tuple[int, int]:
        """(live, archived) records, without seeding a type not seeded yet."""
        if self.unseeded is not None:
            count, archived_fraction = self.unseeded
            archived = round(count * archived_fraction)
            return count - archived, archived
        return len(self._live_ids), len(self._archived_ids)

    def is_live(self, cid: int) -> bool:
        version = self._records.get(cid)
        return version is not None and version.archived_at is None

    def current(self, id: str) -> Version | None:
        """The current version of record `id` (for a merged-away id, its survivor's), or None."""
        version = self._lookup(id)
        cid = as_int(id)
        if version is None and cid in self._merged_into:
            while cid in self._merged_into:
                cid = self._merged_into[cid]
            version = self._records.get(cid)
        return version

    def record(self, id: str) -> dict:
        """The current HubSpot-shaped object with every property, archived or not (for a
        merged-away id, its survivor, as HubSpot answers); KeyError if unknown."""
        with self.clock.lock:
            version = self.current(id)
            if version is None:
                raise KeyError(f"no {self.object_type.singular} with id {id!r}")
            return self.render(version, list(self.properties))

    # ----------------------------------------------------------------- rendering

    def raw(self, version: Version, name: str) -> str | None:
        """Property `name` of a version as HubSpot renders it; None when the record has no value."""
        if name == "hs_object_id":
            return str(version.id)
        if name in self.object_type.created:
            return iso(version.created)
        if name == self.object_type.modified:
            return str(version.modified) if self.knobs.epoch_ms_modified else iso(version.modified)
        if name in version.overrides:
            return version.overrides[name]
        generator = self.object_type.generators.get(name)
        if generator is not None:
            return generator(version.id, version.tie)
        prop = self.properties[name]
        if prop.unset(version.tie):
            return None
        if prop.hubspot_defined:
            return generic_value(prop, version.id, version.tie)
        return custom_value(prop, version.tie)

    def render(self, version: Version, names: Iterable[str]) -> dict:
        """A version as HubSpot's JSON object, with the properties `names`."""
        obj = {
            "id": str(version.id),
            # Known properties the record has no value for come back as null, as in HubSpot.
            "properties": {name: self.raw(version, name) for name in names},
            "createdAt": iso(version.created),
            "updatedAt": iso(version.modified),
            "archived": version.archived_at is not None,
            "url": record_url(self.object_type, version.id),
        }
        if version.archived_at is not None:
            obj["archivedAt"] = iso(version.modified if self.knobs.archived_at_is_modified else version.archived_at)
        return obj

    def requested(self, values: list[str] | None) -> list[str]:
        """The properties a request's `properties` values name (those the type has) and the ones
        every answer carries; the type's defaults when it names none."""
        if values is None:
            return list(self.object_type.default_properties)
        names = dict.fromkeys(name.strip() for value in values for name in value.split(","))
        names.update(dict.fromkeys(self.object_type.always))
        return [name for name in names if name in self.properties]

    # ----------------------------------------------------------------- list API

    def list_page(self, archived: bool, after: int, limit: int, names: list[str]) -> tuple[list[dict], int | None]:
        """One page of the list API after id `after`, and the id to continue after if there is more."""
        ids = self._archived_ids if archived else self._live_ids
        if archived and self.knobs.archived_list_lag_ms:
            ids = self._listed_archived_ids()
        start = bisect_right(ids, after)
        page = ids[start:start + limit]
        results = [self.render(self._records[cid], names) for cid in page]
        return results, page[-1] if start + limit < len(ids) else None

    def _listed_archived_ids(self) -> list[int]:
        """The archived ids the archived listing shows yet (see archived_list_lag_ms)."""
        shown_until = self.clock.now_locked() - self.knobs.archived_list_lag_ms
        return [cid for cid in self._archived_ids if self._records[cid].archived_at <= shown_until]
