"""HubSpot's v3 batch read (``POST /crm/v3/objects/{type}/batch/read``), with and without
``propertiesWithHistory``, and the property histories it serves.

Shapes follow HubSpot's published description of the objects API (BatchReadInputSimplePublicObjectId
in; BatchResponseSimplePublicObject, or ...WithErrors on a 207, out; each result a
SimplePublicObjectWithAssociations whose ``propertiesWithHistory`` maps a property to its
ValueWithTimestamp objects, newest first). A batch holds at most `MAX_INPUTS` records, and
`MAX_INPUTS_WITH_HISTORY` when history is asked for (HubSpot: asking for history "will reduce
the maximum number of objects"); more is HubSpot's 400. An id that is no live record is
in the 207's errors (OBJECT_NOT_FOUND). A name that is no property is ignored, as HubSpot
says it does.

Every write of a value is kept with its source (`Source`), at most `KEPT_PER_PROPERTY` per
property and record (HubSpot caps its histories too). A value a record had before any write
(seeded or generated at creation) is its oldest entry, stamped at its creation by an IMPORT.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .common import Reply, as_int, bad_request, error_body, iso

if TYPE_CHECKING:
    from .common import Request
    from .objects import Version
    from .store import Store

MAX_INPUTS = 100
MAX_INPUTS_WITH_HISTORY = 50
KEPT_PER_PROPERTY = 20  # values kept per property and record, newest
_SEED_SOURCE_ID = "sandbox-seed"


@dataclass(frozen=True)
class Source:
    """Who wrote a value: HubSpot's sourceType (CRM_UI, API, IMPORT, WORKFLOW, ...), its
    sourceId and label, and the user, when a user did."""

    type: str = "API"
    id: str | None = "sandbox-app"
    label: str | None = None
    user_id: int | None = None


API = Source()
_SEEDED = Source("IMPORT", _SEED_SOURCE_ID, None, None)


@dataclass(frozen=True)
class _Entry:
    value: str | None
    ms: int
    source: Source

    def render(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"value": self.value if self.value is not None else "",
                                 "timestamp": iso(self.ms), "sourceType": self.source.type}
        if self.source.id is not None:
            entry["sourceId"] = self.source.id
        if self.source.label is not None:
            entry["sourceLabel"] = self.source.label
        if self.source.user_id is not None:
            entry["updatedByUserId"] = self.source.user_id
        return entry


class History:
    """The written values of one type's records, by record and property, newest last."""

    def __init__(self) -> None:
        self._written: dict[int, dict[str, deque[_Entry]]] = {}

    def note(self, cid: int, changes: Mapping[str, str | None], ms: int, source: Source | None) -> None:
        """Record ``cid`` had ``changes`` written at ``ms`` by ``source`` (the API's by default)."""
        by_name = self._written.setdefault(cid, {})
        for name, value in changes.items():
            by_name.setdefault(name, deque(maxlen=KEPT_PER_PROPERTY)).append(_Entry(value, ms, source or API))

    def values(self, store: Store, version: Version, name: str) -> list[dict[str, Any]]:
        """Property ``name`` of ``version``'s record, newest first (none if it never had a value)."""
        written = self._written.get(version.id, {}).get(name, deque())
        entries = list(reversed(written))
        if name == store.object_type.modified:  # HubSpot's: moves with every write
            entries = [_Entry(store.raw(version, name), version.modified, Source("CALCULATED", None))]
        elif len(entries) < KEPT_PER_PROPERTY and not (written and written[0].ms == version.created):
            # (a value written when the record was created is its first: none came before)
            before = dataclasses.replace(version, overrides={})  # what it had before any write
            first = store.raw(before, name)
            if first is not None:
                entries.append(_Entry(first, version.created, _SEEDED))
        return [entry.render() for entry in entries]


def batch_read_reply(request: Request, store: Store) -> Reply:
    """POST /crm/v3/objects/{type}/batch/read: the live records asked for, with the history
    of ``propertiesWithHistory``; a 207 with an OBJECT_NOT_FOUND error for those not found."""
    payload = request.payload if isinstance(request.payload, dict) else None
    inputs = payload.get("inputs") if payload is not None else None
    if not request.valid_json or not isinstance(inputs, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) for item in inputs):
        raise bad_request('Invalid input JSON: expected {"inputs": [{"id": "…"}, …], "properties": [...], '
                          '"propertiesWithHistory": [...]}.')
    assert payload is not None
    if payload.get("idProperty") is not None:
        raise bad_request("The sandbox reads batches by record id only (no idProperty).")
    names, with_history = (_names(payload, key) for key in ("properties", "propertiesWithHistory"))
    most = MAX_INPUTS_WITH_HISTORY if with_history else MAX_INPUTS
    if len(inputs) > most:
        raise bad_request(f"Too many inputs: a batch read {'with propertiesWithHistory ' if with_history else ''}"
                          f"holds at most {most}, got {len(inputs)}.")
    started = iso(store.clock.now_ms())
    asked = store.requested(names or None)
    histories = [name for name in dict.fromkeys(with_history or []) if name in store.properties]
    results, missing = [], []
    with store.clock.lock:
        for item in inputs:
            cid = as_int(item["id"])
            if cid is None or not store.is_live(cid):
                missing.append(item["id"])
                continue
            version = store.existing([item["id"]], live=True)[0]
            result = store.render(version, asked)
            if with_history:
                found = {name: store.history.values(store, version, name) for name in histories}
                result["propertiesWithHistory"] = {name: values for name, values in found.items() if values}
            results.append(result)
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                            "completedAt": iso(store.clock.now_ms())}
    if missing:
        body.update(numErrors=1, errors=[error_body(
            f"Could not get some {store.object_type.name} objects, they may be deleted or not exist. "
            f"Check that ids are valid.", "OBJECT_NOT_FOUND", context={"ids": missing},
            errors=[], links={})])
    return Reply(207 if missing else 200, body)


def _names(payload: dict[str, Any], key: str) -> list[str] | None:
    """A list of property names of the request (None when it names none)."""
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise bad_request(f"Invalid input JSON: {key!r} must be a list of property names.")
    return value
