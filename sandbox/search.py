"""HubSpot's search for one object type: filters, sorts, the eventually consistent index that
sees writes only after a lag, the shuffled order of ties and the 10,000-result cap."""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .common import (
    DEFAULT_LIMIT,
    GOLDEN,
    MASK64,
    NEG_INF,
    POS_INF,
    Knobs,
    as_int,
    bad_request,
    int_param,
    mix,
    parse_iso_ms,
)
from .objects import ObjectType, Property, Version

_SEARCH_CAP = 10_000
_SEARCH_MAX_LIMIT = 200
_MAX_GROUPS, _MAX_GROUP_FILTERS, _MAX_FILTERS = 5, 6, 18
# Applying more index changes than this at once is cheaper as one sort than as insorts.
_REBUILD_THRESHOLD = 1_000
_CACHE_SIZE = 16


@dataclass(frozen=True)
class _Filter:
    prop: str
    test: Callable[[Version], bool]
    bound: tuple[int, int] | None  # inclusive integer range when an index on `prop` can answer it


@dataclass(frozen=True)
class _Search:
    groups: list[list[_Filter]]
    text: Callable[[Version], bool] | None
    sort_prop: str
    descending: bool
    properties: list[str]
    limit: int
    offset: int
    cache_key: str


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq, "LT": operator.lt, "LTE": operator.le, "GT": operator.gt, "GTE": operator.ge,
}
_OPERATORS = frozenset(_ORDERINGS) | {
    "NEQ", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
}
_TOKEN_SPLIT = re.compile(r"[\s,;]+")


def _tokens(text: str) -> set[str]:
    return {text, *_TOKEN_SPLIT.split(text)}


def _token_matcher(pattern: str) -> Callable[[str], bool]:
    """Case-insensitive whole-token match of a lower-cased text; `*` is a wildcard."""
    if "*" not in pattern:
        return lambda text: pattern in _tokens(text)
    regex = re.compile(".*".join(map(re.escape, pattern.split("*"))))
    return lambda text: any(regex.fullmatch(token) for token in _tokens(text))


def _integer_range(op: str, low: float, high: float) -> tuple[int, int]:
    """The integers satisfying `x op low` (or low <= x <= high for BETWEEN)."""
    match op:
        case "EQ":
            return math.ceil(low), math.floor(low)
        case "GT":
            return math.floor(low) + 1, POS_INF
        case "GTE":
            return math.ceil(low), POS_INF
        case "LT":
            return NEG_INF, math.ceil(low) - 1
        case "LTE":
            return NEG_INF, math.floor(low)
        case _:
            return math.ceil(low), math.floor(high)


def tie_salts(seed: int) -> Iterator[int]:
    """The salts of successive searches' orders of ties when the order changes per request
    (reorder_ties_per_request): one sequence per portal, drawn from by every type's search."""
    return (mix(seed ^ (count * GOLDEN & MASK64)) for count in itertools.count(1))


# --------------------------------------------------------------------------- search


class Searchable:
    """Search over one object type's records (a part of Store, split out as its own concern).

    The store hands it its records through index_seeded() and index_write(); search reads
    the store's object_type, properties, clock, knobs and tie_salts and calls its raw(),
    render(), requested() and tie()."""

    # What the store provides (set in Store.__init__).
    object_type: ObjectType
    properties: dict[str, Property]
    clock: Clock
    knobs: Knobs
    tie_salts: Iterator[int]

    def __init__(self) -> None:
        # The versions search sees, writes waiting for the lag, and sorted indexes.
        self._pending: deque[tuple[int, int, Version | None]] = deque()
        self._indexed: dict[int, Version] = {}
        self._mod_index: list[tuple[int, int, int]] = []  # (modification time, tie, id)
        self._mod_ids: list[int] = []  # the ids of _mod_index, so a range is one cheap slice
        self._id_index: list[int] = []
        self._search_cache: dict[str, list[int]] = {}

    def index_seeded(self, versions: Iterable[Version]) -> None:
        """Live records a seeding made: search sees them at once, as if long indexed."""
        for version in versions:
            self._indexed[version.id] = version
        self._rebuild_index()

    def index_write(self, written: int, cid: int, version: Version | None) -> None:
        """A write of record `cid` at sandbox ms `written`, which search sees once its lag has
        passed: the record's new version, or None when it leaves search."""
        self._pending.append((written, cid, version))

    def search(self, payload: Any) -> tuple[int, list[dict], int]:
        """(total, rendered page, end offset) of one search request; call under the lock."""
        search = self._parse_search(payload)
        self._sync_index()
        ids = self._matching_ids(search)
        if self.knobs.reorder_ties_per_request:
            ids = self._reorder_ties(ids, search)
        end = search.offset + search.limit
        results = [self.render(self._indexed[cid], search.properties) for cid in ids[search.offset:end]]
        return len(ids), results, end

    def _parse_search(self, payload: Any) -> _Search:
        payload = {} if payload is None else payload
        if not isinstance(payload, dict):
            raise bad_request("Invalid input JSON: the search request must be an object.")
        raw_groups = payload.get("filterGroups") or []
        if not isinstance(raw_groups, list) or not all(
            isinstance(group, dict) and isinstance(group.get("filters", []), list) for group in raw_groups
        ):
            raise bad_request("filterGroups must be a list of objects with a list of filters.")
        sizes = [len(group.get("filters", [])) for group in raw_groups]
        if (len(raw_groups) > _MAX_GROUPS or any(size > _MAX_GROUP_FILTERS for size in sizes)
                or sum(sizes) > _MAX_FILTERS):
            raise bad_request(
                f"Too many filters: at most {_MAX_GROUPS} filterGroups, {_MAX_GROUP_FILTERS} filters per group "
                f"and {_MAX_FILTERS} filters in total are allowed (got {len(raw_groups)} groups, {sum(sizes)} filters)."
            )
        groups = [[self._compile_filter(raw) for raw in group.get("filters", [])] for group in raw_groups]
        sort_prop, descending = self._parse_sorts(payload.get("sorts"))
        text = self._text_query(payload.get("query"))
        properties = payload.get("properties")
        if properties is not None and not (
                isinstance(properties, list) and all(isinstance(p, str) for p in properties)):
            raise bad_request("properties must be a list of property names.")
        limit = int_param(payload.get("limit"), "limit", DEFAULT_LIMIT, 1, _SEARCH_MAX_LIMIT)
        offset = int_param(payload.get("after"), "after", 0, 0, None)
        if offset + limit > _SEARCH_CAP:
            raise bad_request(
                f"Search results are limited to {_SEARCH_CAP} per query: after ({offset}) + limit ({limit}) "
                f"must not exceed {_SEARCH_CAP}. Narrow the filters to page further."
            )
        cache_key = json.dumps([raw_groups, sort_prop, descending, payload.get("query")], sort_keys=True, default=str)
        return _Search(groups, text, sort_prop, descending, self.requested(properties), limit, offset, cache_key)

    def _parse_sorts(self, raw: Any) -> tuple[str, bool]:
        if raw is None or raw == []:
            return "hs_object_id", False
        if not isinstance(raw, list):
            raise bad_request("sorts must be a list.")
        if len(raw) > 1:
            raise bad_request(f"Only one sort is allowed, got {len(raw)}.")
        (rule,) = raw
        if isinstance(rule, str):
            descending = rule.startswith("-")
            name = rule[1:] if descending else rule
        elif isinstance(rule, dict):
            name = rule.get("propertyName")
            direction = rule.get("direction", "ASCENDING")
            if direction not in ("ASCENDING", "DESCENDING"):
                raise bad_request(f"Invalid sort direction {direction!r}: must be ASCENDING or DESCENDING.")
            descending = direction == "DESCENDING"
        else:
            raise bad_request(f"Invalid sort {rule!r}.")
        if not isinstance(name, str) or name not in self.properties:
            raise bad_request(f"Cannot sort on unknown property {name!r}.")
        return name, descending

    def _typed_getter(self, prop: Property) -> Callable[[Version], Any]:
        """A record's value of `prop` as filters and sorts compare it; None when it has none."""
        special = {"hs_object_id": lambda v: v.id, self.object_type.modified: lambda v: v.modified,
                   **dict.fromkeys(self.object_type.created, lambda v: v.created)}
        if prop.name in special:
            return special[prop.name]
        parse = {"number": float, "datetime": parse_iso_ms}.get(prop.type, str.lower)
        name = prop.name

        def get(version: Version) -> Any:
            raw = self.raw(version, name)
            return None if raw is None else parse(raw)

        return get

    def _filter_value(self, prop: Property, value: Any) -> Any:
        if prop.type == "datetime":
            ms = as_int(value)
            if ms is None:
                raise bad_request(
                    f"Invalid value {value!r} for datetime property {prop.name}: "
                    "dates must be given as epoch milliseconds."
                )
            return ms
        if prop.type == "number":
            try:
                number = float(value) if not isinstance(value, bool) else math.nan
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                raise bad_request(f"Invalid value {value!r} for number property {prop.name}.")
            return number
        if isinstance(value, (dict, list)) or value is None:
            raise bad_request(f"Invalid value {value!r} for property {prop.name}.")
        return (json.dumps(value) if isinstance(value, bool) else str(value)).lower()

    def _compile_filter(self, raw: Any) -> _Filter:
        if not isinstance(raw, dict):
            raise bad_request(f"Invalid filter {raw!r}.")
        name, op = raw.get("propertyName"), raw.get("operator")
        prop = self.properties.get(name) if isinstance(name, str) else None
        if prop is None:
            raise bad_request(f"Unknown property {name!r} in filter.")
        if not isinstance(op, str) or op not in _OPERATORS:
            raise bad_request(f"Unknown operator {op!r}; expected one of {sorted(_OPERATORS)}.")

        def required(key: str) -> Any:
            if raw.get(key) is None:
                raise bad_request(f"Operator {op} on {prop.name} needs '{key}'.")
            return raw[key]

        get = self._typed_getter(prop)
        low = high = None
        test: Callable[[Version], bool]
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            present = op == "HAS_PROPERTY"
            test = lambda v: (get(v) is not None) == present  # noqa: E731
        elif op in ("IN", "NOT_IN"):
            values = required("values")
            if not isinstance(values, list) or not values:
                raise bad_request(f"Operator {op} on {prop.name} needs a non-empty list of 'values'.")
            allowed = {self._filter_value(prop, value) for value in values}
            inside = op == "IN"
            test = lambda v: (get(v) in allowed) == inside  # noqa: E731
        elif op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            matches = _token_matcher(str(required("value")).lower())
            wanted = op == "CONTAINS_TOKEN"
            # Negations also match records without a value.
            test = lambda v: ((raw_value := self.raw(v, name)) is not None and matches(raw_value.lower())) == wanted  # noqa: E731
        elif op == "NEQ":
            unwanted = self._filter_value(prop, required("value"))
            test = lambda v: get(v) != unwanted  # noqa: E731
        elif op == "BETWEEN":
            low = self._filter_value(prop, required("value"))
            high = self._filter_value(prop, required("highValue"))
            test = lambda v: (x := get(v)) is not None and low <= x <= high  # noqa: E731
        else:
            compare, low = _ORDERINGS[op], self._filter_value(prop, required("value"))
            test = lambda v: (x := get(v)) is not None and compare(x, low)  # noqa: E731
        bound = None
        if prop.name in self.object_type.indexed and low is not None:
            bound = _integer_range(op, low, high if high is not None else low)
        return _Filter(prop.name, test, bound)

    def _text_query(self, query: Any) -> Callable[[Version], bool] | None:
        """HubSpot's free-text `query`: a token prefix of a default searchable property."""
        if query is None or query == "":
            return None
        if not isinstance(query, str):
            raise bad_request("query must be a string.")
        needle = query.strip().lower()

        def test(version: Version) -> bool:
            for name in self.object_type.query_properties:
                value = self.raw(version, name)
                if value is not None and any(token.startswith(needle) for token in _tokens(value.lower())):
                    return True
            return False

        return test

    # ----------------------------------------------------------------- search index

    def _rebuild_index(self) -> None:
        self._mod_index = sorted((v.modified, v.tie, v.id) for v in self._indexed.values())
        self._mod_ids = [entry[2] for entry in self._mod_index]
        self._id_index = sorted(self._indexed)

    def _reindex(self, old: Version | None, new: Version | None) -> None:
        if old is not None:
            position = bisect_left(self._mod_index, (old.modified, old.tie, old.id))
            del self._mod_index[position], self._mod_ids[position]
            if new is None:
                del self._id_index[bisect_left(self._id_index, old.id)]
        if new is not None:
            key = (new.modified, new.tie, new.id)
            position = bisect_left(self._mod_index, key)
            self._mod_index.insert(position, key)
            self._mod_ids.insert(position, new.id)
            if old is None:
                insort(self._id_index, new.id)

    def _sync_index(self) -> None:
        """Let search see the writes whose lag has passed."""
        if self.knobs.search_lag_jitter_ms or self.knobs.search_drop_lag_ms:
            self._sync_index_unevenly()
            return
        horizon = self.clock.now_locked() - self.knobs.search_lag_ms
        pending = self._pending
        if not pending or pending[0][0] > horizon:
            return
        changes = []
        while pending and pending[0][0] <= horizon:
            changes.append(pending.popleft())
        self._apply_to_index(changes)

    def _apply_to_index(self, changes: list[tuple[int, int, Version | None]]) -> None:
        bulk = len(changes) > _REBUILD_THRESHOLD
        for _, cid, new in changes:
            old = self._indexed.pop(cid, None)
            if new is not None:
                self._indexed[cid] = new
            if not bulk:
                self._reindex(old, new)
        if bulk:
            self._rebuild_index()
        self._search_cache.clear()

    # ----------------------------------------------------------------- worst habits

    def _search_delay(self, written: int, cid: int, new: Version | None) -> int:
        """How long after it was written search shows one write (see search_lag_jitter_ms)."""
        delay = self.knobs.search_lag_ms
        if self.knobs.search_lag_jitter_ms:
            delay += mix(self.tie(cid) ^ written) % (self.knobs.search_lag_jitter_ms + 1)
        if new is None:
            delay += self.knobs.search_drop_lag_ms
        return delay

    def search_visible_at(self, id: str) -> int | None:
        """When search will show the latest write of record `id` (sandbox ms), or None if
        search shows it already."""
        cid = as_int(id)
        with self.clock.lock:
            self._sync_index()
            due = [written + self._search_delay(written, pending_id, new)
                   for written, pending_id, new in self._pending if pending_id == cid]
        return max(due) if due else None

    def _sync_index_unevenly(self) -> None:
        """Like _sync_index when each write has its own lag: a write that shows replaces
        the earlier writes of its record still waiting, so search never goes back."""
        now = self.clock.now_locked()
        entries = list(self._pending)
        last_due: dict[int, int] = {}
        for position, (written, cid, new) in enumerate(entries):
            if written + self._search_delay(written, cid, new) <= now:
                last_due[cid] = position
        if not last_due:
            return
        self._pending = deque(entry for position, entry in enumerate(entries)
                              if position > last_due.get(entry[1], -1))
        self._apply_to_index([entry for position, entry in enumerate(entries)
                              if position == last_due.get(entry[1])])

    def _reorder_ties(self, ids: list[int], search: _Search) -> list[int]:
        """`ids` with every run of equal sort values that touches the requested page in a
        new order, different for every request (see reorder_ties_per_request)."""
        salt = next(self.tie_salts)
        if search.sort_prop == "hs_object_id" or not ids:
            return ids
        get, indexed = self._typed_getter(self.properties[search.sort_prop]), self._indexed
        value = lambda position: get(indexed[ids[position]])  # noqa: E731
        low = min(search.offset, len(ids) - 1)
        high = min(search.offset + search.limit, len(ids)) - 1
        while low > 0 and value(low - 1) == value(low):
            low -= 1
        while high + 1 < len(ids) and value(high + 1) == value(high):
            high += 1
        segment = ids[low:high + 1]
        runs: list[list[int]] = []
        for cid in segment:
            if runs and get(indexed[runs[-1][0]]) == get(indexed[cid]):
                runs[-1].append(cid)
            else:
                runs.append([cid])
        reordered = [cid for run in runs for cid in sorted(run, key=lambda c: mix(indexed[c].tie ^ salt))]
        return [*ids[:low], *reordered, *ids[high + 1:]]

    def _range(self, prop: str, low: int, high: int) -> list[int]:
        if prop == "hs_object_id":
            return self._id_index[bisect_left(self._id_index, low):bisect_right(self._id_index, high)]
        entries = self._mod_index
        return self._mod_ids[bisect_left(entries, (low,)):bisect_left(entries, (high + 1,))]

    def _scan(self, group: list[_Filter], text: Callable[[Version], bool] | None) -> tuple[str, list[int]]:
        """Ids matching one filter group, and the property they are ordered by.

        Starts from the narrowest range an index can answer, then checks the rest per record.
        """
        ranges: dict[str, tuple[int, int]] = {}
        for prop in self.object_type.indexed:
            bounds = [f.bound for f in group if f.prop == prop and f.bound is not None]
            if bounds:
                ranges[prop] = (max(b[0] for b in bounds), min(b[1] for b in bounds))
        # Ranges come first so that they win ties with the full scan (min keeps the first).
        candidates = [(prop, self._range(prop, *bounds)) for prop, bounds in ranges.items()]
        prop, ids = min([*candidates, ("hs_object_id", self._id_index)], key=lambda candidate: len(candidate[1]))
        indexed = self._indexed
        for other, (low, high) in ranges.items():
            if other == prop:
                continue
            if other == "hs_object_id":
                ids = [cid for cid in ids if low <= cid <= high]
            else:
                ids = [cid for cid in ids if low <= indexed[cid].modified <= high]
        tests = [f.test for f in group if f.bound is None]
        if text is not None:
            tests.append(text)
        if tests:
            ids = [cid for cid in ids if all(test(indexed[cid]) for test in tests)]
        return prop, ids

    def _matching_ids(self, search: _Search) -> list[int]:
        """All ids matching `search` in result order, cached until the index changes."""
        cached = self._search_cache.get(search.cache_key)
        if cached is not None:
            return cached
        groups = search.groups or [[]]
        if len(groups) == 1:
            ordered_by, ids = self._scan(groups[0], search.text)
        else:
            matched: set[int] = set()
            for group in groups:
                matched.update(self._scan(group, search.text)[1])
            ordered_by, ids = None, list(matched)
        if ordered_by != search.sort_prop:
            ids = sorted(ids, key=self._sort_key(search.sort_prop))
        if search.descending:
            ids = ids[::-1]
        if len(self._search_cache) >= _CACHE_SIZE:
            self._search_cache.pop(next(iter(self._search_cache)))
        self._search_cache[search.cache_key] = ids
        return ids

    def _sort_key(self, name: str) -> Callable[[int], Any] | None:
        if name == "hs_object_id":
            return None  # ids are unique: no ties, and sorting plain ints is fastest
        get, indexed = self._typed_getter(self.properties[name]), self._indexed

        def key(cid: int) -> tuple:
            version = indexed[cid]
            value = get(version)
            # Equal values fall back to the shuffled tie hash, never to id order.
            return (value is None, 0 if value is None else value, version.tie, cid)

        return key
