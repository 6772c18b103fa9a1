"""Associations between records (HubSpot's v4 associations): which record belongs to which.

Associations are symmetric, as in HubSpot: one link between a deal and a contact reads as
deal -> contact with the deal-to-contact type ids and as contact -> deal with the inverse
ones.  Changing them never touches either record, so no modification time moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .objects import ObjectType, tie_hash

if TYPE_CHECKING:
    from .store import Store

# How many associated records one v4 batch result carries before it pages with `after`.
# HubSpot's published spec does not state it; 500 is the v4 API's page size elsewhere.
PAGE_SIZE = 500
# The seeded company with more contacts than a page links at most this many.
_BIG_RECORD = 1_250


@dataclass(frozen=True)
class _Kind:
    """One association type between two object types, seen from the first of them."""

    category: str  # HUBSPOT_DEFINED or USER_DEFINED
    forward: int  # typeId read from the first type to the second
    backward: int  # typeId read the other way
    label: str | None = None
    backward_label: str | None = None

    def spec(self, forward: bool) -> dict:
        return {"category": self.category, "typeId": self.forward if forward else self.backward,
                "label": self.label if forward else self.backward_label}


_UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class _Pair:
    """The association types between two object types and how a seeded portal links them."""

    first: str
    second: str
    kinds: dict[str, _Kind]  # by label ("unlabelled" for the default one)
    fan_out: int  # a seeded `first` record links to 1..fan_out `second` records
    seeded: tuple[str, ...] = (_UNLABELLED,)  # the kinds every seeded link has


def _activity(name: str, to_contact: int) -> _Pair:
    return _Pair(name, "contacts", {_UNLABELLED: _Kind("HUBSPOT_DEFINED", to_contact, to_contact - 1)}, 2)


# Type ids as HubSpot defines them; the USER_DEFINED labels are this portal's own.
_PAIRS = (
    _Pair("contacts", "companies", {
        _UNLABELLED: _Kind("HUBSPOT_DEFINED", 279, 280),
        "Primary": _Kind("HUBSPOT_DEFINED", 1, 2, "Primary", "Primary"),
        "Billing contact": _Kind("USER_DEFINED", 37, 38, "Billing contact", "Billing contact"),
    }, 1, (_UNLABELLED, "Primary")),
    _Pair("deals", "contacts", {
        _UNLABELLED: _Kind("HUBSPOT_DEFINED", 3, 4),
        "Decision maker": _Kind("USER_DEFINED", 41, 42, "Decision maker", "Decision maker"),
    }, 3),
    _Pair("deals", "companies", {
        _UNLABELLED: _Kind("HUBSPOT_DEFINED", 341, 342),
        "Primary": _Kind("HUBSPOT_DEFINED", 5, 6, "Primary", "Primary"),
    }, 1, (_UNLABELLED, "Primary")),
    _Pair("tickets", "contacts", {_UNLABELLED: _Kind("HUBSPOT_DEFINED", 16, 15)}, 1),
    _Pair("tickets", "companies", {_UNLABELLED: _Kind("HUBSPOT_DEFINED", 339, 340)}, 1),
    _Pair("line_items", "deals", {_UNLABELLED: _Kind("HUBSPOT_DEFINED", 20, 19)}, 1),
    _Pair("quotes", "deals", {_UNLABELLED: _Kind("HUBSPOT_DEFINED", 64, 63)}, 1),
    _activity("calls", 194), _activity("emails", 198), _activity("meetings", 200),
    _activity("notes", 202), _activity("tasks", 204),
    _Pair("cars", "contacts", {_UNLABELLED: _Kind("USER_DEFINED", 75, 76)}, 1),
    # Leads and invoices belong to contacts. HubSpot's descriptions do not list the type ids;
    # these are the commonly quoted ones, and the service passes them through as they come.
    _Pair("leads", "contacts", {_UNLABELLED: _Kind("HUBSPOT_DEFINED", 578, 579)}, 1),
    _Pair("invoices", "contacts", {_UNLABELLED: _Kind("HUBSPOT_DEFINED", 177, 178)}, 1),
)


def associated(to_id: int, types: list[dict]) -> dict:
    """One associated record of a v4 batch read's result. HubSpot sends ``toObjectId`` as a
    JSON number (its published v4 collection's example says ``<integer>``, though its OpenAPI
    schema says string): a client that only reads digit strings would pass the sandbox and
    fail on HubSpot."""
    return {"toObjectId": to_id, "associationTypes": types}


def none_found(from_id: str, source: ObjectType, target: ObjectType) -> dict[str, list[str]]:
    """The ``context`` of a v4 batch read's error for a record with no associations: the id
    asked for and both object types by their singular lower-case names, as HubSpot's
    answers carry them (``"fromObjectType": ["deal"], "toObjectType": ["company"]``, the
    words of its message "No company is associated with deal 1."; its published v4
    description only says each context value is a list of strings). A client must find the
    id among other values, not take every value for one."""
    return {"fromObjectId": [from_id], "fromObjectType": [source.singular], "toObjectType": [target.singular]}


class Associations:
    """Every association of the portal, seeded per pair of types on first use."""

    def __init__(self, store: Callable[[str], Store]) -> None:
        self._store = store
        self._pairs = {(pair.first, pair.second): pair for pair in _PAIRS}
        # (first, second) -> first id -> second id -> labels, and the mirror (second, first).
        self._links: dict[tuple[str, str], dict[int, dict[int, frozenset[str]]]] = {}
        # The few distinct label sets, shared by every link that has one: big portals stay small.
        self._label_sets: dict[frozenset[str], frozenset[str]] = {}

    def _pair(self, a: str, b: str) -> tuple[_Pair | None, bool]:
        """The pair of types (either way round) and whether a -> b is its forward direction."""
        if (a, b) in self._pairs:
            return self._pairs[(a, b)], True
        return self._pairs.get((b, a)), False

    def _table(self, pair: _Pair) -> tuple[dict[int, dict[int, frozenset[str]]], dict[int, dict[int, frozenset[str]]]]:
        key = (pair.first, pair.second)
        if key not in self._links:
            self._links[key], self._links[(pair.second, pair.first)] = {}, {}
            self._seed(pair)
        return self._links[key], self._links[(pair.second, pair.first)]

    def _seed(self, pair: _Pair) -> None:
        firsts, seconds = self._store(pair.first), self._store(pair.second)
        targets = seconds.seeded_ids
        if not targets:
            return
        for cid in firsts.seeded_ids:
            h = tie_hash(firsts.tie(cid), pair.second)
            if pair.first == "contacts" and h % 10 == 0:
                continue  # some contacts belong to no company
            for n in range(1 + (h >> 8) % pair.fan_out):
                labels = set(pair.seeded)
                if h % 7 == n and len(pair.kinds) > len(pair.seeded):
                    labels.add(next(label for label in pair.kinds if label not in pair.seeded))
                self._link(pair, cid, targets[(h >> (16 + 8 * n)) % len(targets)], labels)
        if pair.first == "contacts" and pair.second == "companies":
            # One company with more contacts than a v4 result page holds, so readers must page.
            big = targets[0]
            for cid in firsts.seeded_ids[::2][:_BIG_RECORD]:
                self._link(pair, cid, big, {_UNLABELLED})

    def _link(self, pair: _Pair, first: int, second: int, labels: set[str]) -> None:
        forward, backward = self._links[(pair.first, pair.second)], self._links[(pair.second, pair.first)]
        merged = forward.get(first, {}).get(second, frozenset()) | labels
        merged = self._label_sets.setdefault(merged, merged)
        forward.setdefault(first, {})[second] = backward.setdefault(second, {})[first] = merged

    def _unlink(self, pair: _Pair, first: int, second: int) -> None:
        forward, backward = self._links[(pair.first, pair.second)], self._links[(pair.second, pair.first)]
        forward.get(first, {}).pop(second, None)
        backward.get(second, {}).pop(first, None)

    def associated(self, a: str, a_id: int, b: str) -> list[tuple[int, list[dict]]]:
        """(id, association types) of every live `b` record linked to `a` record a_id, by id."""
        pair, forward = self._pair(a, b)
        if pair is None:
            return []
        table = self._table(pair)[0 if forward else 1]
        live = self._store(b).is_live
        return [(other, [pair.kinds[label].spec(forward) for label in sorted(labels, key=list(pair.kinds).index)])
                for other, labels in sorted(table.get(a_id, {}).items()) if labels and live(other)]

    def change(self, a: str, a_id: int, b: str, b_id: int, label: str | None, add: bool) -> None:
        """Add the association type `label` (None: the default one) between two records, or
        remove them all (add=False)."""
        pair, forward = self._pair(a, b)
        if pair is None:
            raise ValueError(f"HubSpot defines no association between {a} and {b} here")
        label = label or _UNLABELLED
        if label not in pair.kinds:
            raise ValueError(f"no association label {label!r} between {a} and {b}; "
                             f"there are {[name for name in pair.kinds if name != _UNLABELLED]}")
        first, second = (a_id, b_id) if forward else (b_id, a_id)
        self._table(pair)
        if add:
            self._link(pair, first, second, {label})
        else:
            self._unlink(pair, first, second)

    def merged(self, object_type: str, survivor: int, gone: int) -> None:
        """Move the merged-away record's associations to its survivor, as HubSpot does."""
        for pair in _PAIRS:
            if object_type not in (pair.first, pair.second):
                continue
            other = pair.second if object_type == pair.first else pair.first
            table = self._table(pair)[0 if object_type == pair.first else 1]
            for other_id, labels in list(table.get(gone, {}).items()):
                for label in labels:
                    self.change(object_type, survivor, other, other_id, label, add=True)
                self.change(object_type, gone, other, other_id, None, add=False)
