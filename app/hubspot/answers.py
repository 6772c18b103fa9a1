"""HubSpot's answers, parsed once, at the boundary, into checked values.

Each parser takes HubSpot's decoded JSON and returns typed records, or raises a
`HubSpotError` ("HubSpot answer unusable", a 502) that names what was wrong. Past this
module the service works on checked values only: a record has an id, a modification time
and (for a type HubSpot merges) the ids merged into it; a page says whether more follows.
Error answers are read here too: the status HubSpot answered becomes the error the service
reports, with the scope a 403 names, HubSpot's `Retry-After` and its correlation id.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..object_types import MERGED_PROPERTY, ObjectType, Schema
from ..redact import quote
from ..timestamps import parse_timestamp
from .errors import HubSpotError, unusable

# HubSpot's ids are positive signed 64-bit integers. Every id the service takes (a record's,
# a merged one, an associated one) is in that range, so each `_updated` token it hands out
# keeps its fixed width (19 digits) and is accepted back as `since`, and HubSpot can be
# searched for it.
MAX_ID = 2**63 - 1
ID_DIGITS = len(str(MAX_ID))  # 19: a longer run of digits is out of range, unread
# Ids one record may name as merged into it. HubSpot keeps at most 250 merged identities per
# contact ("Contact and Form Limits"); 40 times that leaves room for other types and
# for HubSpot raising its limit, and keeps a record's deletions to a few MB. A record past it
# is refused before any id is read.
MAX_MERGED_IDS = 10_000
SHOWN = 80  # characters of one upstream value quoted in an "answer unusable" detail
PORTAL_EPOCH_MS = 1_136_073_600_000  # 2006-01-01, HubSpot's founding: no portal data before
# HubSpot's documented 477 "Migration in Progress": the account moves between data hosting
# locations; its Retry-After says when to ask again. Passing, so retried.
MIGRATION_STATUS = 477
# What HubSpot says is passing: a lock, its rate limit, a migration, and every 5xx, the
# Cloudflare in front of it included (520-524, with an HTML page for a body). Only these
# 4xx are retried; every 5xx is, whatever its number.
RETRYABLE_STATUS = frozenset({423, 429, MIGRATION_STATUS})
SERVER_ERRORS = range(500, 600)
MAX_RETRY_AFTER = 3600.0  # s: HubSpot's longest window is a day, its advice at most this
NOT_JSON = "its answer was no JSON error (an error page)"
RATE_LIMIT_DIGITS = 12  # a remaining-calls header longer than this is no count HubSpot sends

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """A live record from a search answer."""

    id: int
    modified_ms: int
    merged_ids: list[int]  # ids merged into it, ascending, without its own (merging types)
    data: Json  # HubSpot's object as it came: what Sesam gets

    @property
    def key(self) -> tuple[int, int]:
        """Its place in HubSpot's search order."""
        return self.modified_ms, self.id


@dataclass(frozen=True)
class SearchPage:
    """One page of a search, and HubSpot's clock when it answered (epoch ms)."""

    records: list[Record]
    has_more: bool
    total: int | None
    server_ms: int
    calls: int = 1  # HubSpot requests it took, retries included


@dataclass(frozen=True, slots=True)
class ArchivedRecord:
    """A deleted (archived) record from HubSpot's listing; its times when they are readable."""

    id: int
    archived_ms: int | None
    modified_ms: int | None


Listed = TypeVar("Listed")


@dataclass(frozen=True)
class CursorPage(Generic[Listed]):
    """One page of a list HubSpot pages by cursor (the archived listing, the owners), and
    where the next one begins (None: the last)."""

    records: list[Listed]
    after: str | None
    server_ms: int
    calls: int = 1


ArchivedPage = CursorPage[ArchivedRecord]


@dataclass(frozen=True, slots=True)
class Association:
    """One record that a record is associated with, and HubSpot's association types."""

    id: int
    types: Any  # HubSpot's associationTypes, passed on as they came

    def entity(self) -> Json:
        return {"id": str(self.id), "types": self.types}


@dataclass(frozen=True)
class Histories:
    """A batch read's answer with property history: per record asked and answered, each
    property asked with its values newest first (HubSpot's ValueWithTimestamp objects, the
    fields it documents only); the ids asked that it did not answer (gone since, or in a
    207's errors)."""

    found: dict[str, dict[str, list[Json]]]
    missing: set[str]
    calls: int = 1


@dataclass(frozen=True)
class Associations:
    """A v4 batch read's answer: per record asked, its associations on this page and where
    its next page begins; and the records HubSpot says have none (a 207's errors)."""

    found: list[tuple[str, list[Association], str | None]]
    without: set[str]
    calls: int = 1


# -- records ---------------------------------------------------------------------------


def _results(data: Json, what: str) -> list[Any]:
    results = data.get("results")
    if results is None:
        return []
    if not isinstance(results, list):
        raise unusable(what, f"'results' is {type(results).__name__}, not a list")
    return results


def _next(data: Json, what: str) -> Json:
    """The ``paging.next`` object of an answer ({} on the last page)."""
    paging = data.get("paging") or {}
    following = paging.get("next") if isinstance(paging, dict) else None
    if not isinstance(paging, dict) or not isinstance(following or {}, dict):
        raise unusable(what, f"'paging' is not HubSpot's paging object: {quote(paging, SHOWN)}")
    return following or {}


def _after(following: Json, what: str) -> str | None:
    """Where the next page begins: ``paging.next.after``, text or a number (None: none)."""
    after = following.get("after")
    if after is None:
        return None
    if isinstance(after, str):
        return after
    if isinstance(after, int) and not isinstance(after, bool) and 0 <= after <= MAX_ID:
        return str(after)
    raise unusable(what, f"'paging.next.after' is not a cursor: {quote(after, SHOWN)}")


def as_id(value: Any) -> int | None:
    """``value`` as a HubSpot id (digits, or a number, in 0 < id <= MAX_ID); None if it is
    not one. The digits are counted before they are read: a long run is no id."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= ID_DIGITS):
            return None
        value = int(value)
    elif not isinstance(value, int) or isinstance(value, bool):
        return None
    return value if 0 < value <= MAX_ID else None


def _record_id(item: Any, kind: ObjectType, what: str) -> int:
    raw = item.get("id") if isinstance(item, dict) else None
    record_id = as_id(raw) if isinstance(raw, str) else None
    if record_id is None:
        shown = raw if isinstance(item, dict) else item
        raise unusable(what, f"{kind.name} record {quote(shown, SHOWN)!r} has no usable id "
                             f"(HubSpot's ids are digits, 1 to {MAX_ID})")
    return record_id


def _time(properties: Any, name: str) -> int:
    """The epoch ms of a datetime property; ValueError saying why not."""
    value = properties.get(name) if isinstance(properties, dict) else None
    if not isinstance(value, str):
        raise ValueError("it is missing" if value is None else f"it is {type(value).__name__}")
    return parse_timestamp(value)


def merged_ids(raw: str | None, own: int) -> list[int]:
    """The ids in ``hs_merged_object_ids`` (';'-separated), ascending, without ``own``;
    what is not digits is ignored. ValueError if it names more than MAX_MERGED_IDS (counted
    before any is read) or digits that are no HubSpot id: their deletions' tokens would not
    be accepted back as `since`."""
    text = raw or ""
    if text.count(";") >= MAX_MERGED_IDS:
        raise ValueError(f"it names more than {MAX_MERGED_IDS} ids")
    found = set()
    for part in text.split(";"):
        part = part.strip()
        if part.isascii() and part.isdigit():
            merged = as_id(part)
            if merged is None:
                raise ValueError(f"{quote(part, SHOWN)!r} is not a HubSpot id (1 to {MAX_ID})")
            found.add(merged)
    return sorted(found - {own})


def record(item: Any, kind: ObjectType, what: str = "search") -> Record:
    """A live record of ``kind`` from a search result."""
    record_id = _record_id(item, kind, what)
    properties = item.get("properties")
    try:
        modified_ms = _time(properties, kind.modified_property)
    except ValueError as exc:
        raise unusable(what, f"{kind.name} record '{record_id}' has no usable "
                             f"{kind.modified_property!r}: {exc}") from None
    merged: list[int] = []
    if kind.merges:
        raw = properties.get(MERGED_PROPERTY)
        if raw is not None and not isinstance(raw, str):
            raise unusable(what, f"{kind.name} record '{record_id}' has an unusable "
                                 f"{MERGED_PROPERTY!r}: {type(raw).__name__}")
        try:
            merged = merged_ids(raw, record_id)
        except ValueError as exc:
            raise unusable(what, f"{kind.name} record '{record_id}' has an unusable "
                                 f"{MERGED_PROPERTY!r}: {exc}") from None
    return Record(record_id, modified_ms, merged, item)


def search_page(data: Json, kind: ObjectType, server_ms: int, calls: int) -> SearchPage:
    """One search answer."""
    records = [record(item, kind) for item in _results(data, "search")]
    has_more = bool(_next(data, "search"))
    total = data.get("total")
    usable = isinstance(total, int) and not isinstance(total, bool) and 0 <= total <= MAX_ID
    return SearchPage(records, has_more, total if usable else None, server_ms, calls)


def archived_record(item: Any, kind: ObjectType, what: str = "list of archived") -> ArchivedRecord:
    """A deleted record from the archived listing. Its times may be missing or unreadable:
    where its deletion sits does not depend on them alone (see `sync.deletions`)."""
    record_id = _record_id(item, kind, what)
    times: list[int | None] = []
    for source, name in ((item, "archivedAt"), (item.get("properties"), kind.modified_property)):
        try:
            times.append(_time(source, name))
        except ValueError:
            times.append(None)
    return ArchivedRecord(record_id, *times)


def archived_page(data: Json, kind: ObjectType, server_ms: int, calls: int) -> ArchivedPage:
    """One page of the archived listing (``archived=true``)."""
    what = f"list of archived {kind.name}"
    records = [archived_record(item, kind, what) for item in _results(data, what)]
    return ArchivedPage(records, _after(_next(data, what), what), server_ms, calls)


# The types of HubSpot's property catalogue ("type", beside the UI's "fieldType"): those its
# properties API documents, and the two real portals also show. Any other is taken as text.
PROPERTY_TYPES = frozenset({"string", "number", "bool", "enumeration", "date", "datetime",
                            "phone_number", "json", "object_coordinates"})
TEXT_TYPE = "string"


def catalogue(data: Json) -> list[str]:
    """The property names of a property catalogue, in HubSpot's order."""
    return list(property_types(data))


def property_types(data: Json) -> dict[str, str]:
    """Each property of a property catalogue by name, in HubSpot's order, with its type: one
    of PROPERTY_TYPES, or "string" when HubSpot's is missing or unknown (its value is then
    passed on as text). Entries without a name are skipped."""
    found: dict[str, str] = {}
    for item in _results(data, "property catalogue"):
        if isinstance(item, dict) and isinstance(name := item.get("name"), str):
            declared = item.get("type")
            found.setdefault(name, declared if isinstance(declared, str)
                             and declared in PROPERTY_TYPES else TEXT_TYPE)
    return found


def schemas(data: Json) -> list[Schema]:
    """The custom objects of the schemas API (entries that name none are skipped)."""
    found = []
    for item in _results(data, "schemas"):
        if not isinstance(item, dict):
            continue
        type_id, name, qualified = (item.get(k) for k in ("objectTypeId", "name", "fullyQualifiedName"))
        if isinstance(type_id, str) and isinstance(name, str):
            found.append(Schema(type_id, name, qualified if isinstance(qualified, str) else None))
    return found


def associations(data: Json, what: str, calls: int) -> Associations:
    """A v4 association batch read's answer. An id without associations is in HubSpot's
    ``errors`` (a 207): not a failure."""
    found = []
    for result in _results(data, what):
        source = result.get("from") if isinstance(result, dict) else None
        source_id = as_id(source.get("id")) if isinstance(source, dict) else None
        if source_id is None:
            raise unusable(what, f"a result has no usable 'from' id: {quote(result, SHOWN)}")
        to = result.get("to") or []
        if not isinstance(to, list) or not all(isinstance(item, dict) for item in to):
            raise unusable(what, f"record '{source_id}': 'to' is not a list of objects")
        linked = [Association(_associated_id(item, what), item.get("associationTypes", []))
                  for item in to]
        found.append((str(source_id), linked, _after(_next(result, what), what)))
    without = {str(named) for _, values in error_context(data) for value in values
               if (named := as_id(value)) is not None}
    return Associations(found, without, calls)


# Values of one property's history HubSpot may send for one record. HubSpot keeps and caps
# the history itself and documents no figure the service could hold it to; this bound only
# refuses an answer no real history makes (the answer's size, HUBSPOT_MAX_ANSWER_MB, bounds
# the whole batch as well).
MAX_HISTORY_VALUES = 10_000
# A ValueWithTimestamp's fields (HubSpot's published description) and the types they hold;
# timestamp and sourceType are required there, value too (None when cleared is accepted).
_HISTORY_FIELDS: dict[str, tuple[type, ...]] = {
    "value": (str, type(None)), "timestamp": (str,), "sourceType": (str,),
    "sourceId": (str, type(None)), "sourceLabel": (str, type(None)),
    "updatedByUserId": (int, type(None))}
_HISTORY_REQUIRED = ("timestamp", "sourceType")


def histories(data: Json, asked: list[str], names: tuple[str, ...], what: str,
              calls: int) -> Histories:
    """A batch read's answer with ``propertiesWithHistory`` for the ids ``asked`` and the
    properties ``names``. A result for an id not asked, or twice, is unusable; an id asked
    and not answered is missing (the record went between the walk and this read)."""
    wanted = set(asked)
    found: dict[str, dict[str, list[Json]]] = {}
    for result in _results(data, what):
        record_id = as_id(result.get("id")) if isinstance(result, dict) else None
        if record_id is None:
            raise unusable(what, f"a result has no usable id: {quote(result, SHOWN)}")
        key = str(record_id)
        if key not in wanted or key in found:
            why = "twice" if key in found else "though it was not asked for"
            raise unusable(what, f"record '{key}' is answered {why}")
        given = result.get("propertiesWithHistory") or {}
        if not isinstance(given, dict):
            raise unusable(what, f"record '{key}': 'propertiesWithHistory' is not an object")
        found[key] = {name: _history(given.get(name), f"record '{key}' property {name!r}", what)
                      for name in names}
    return Histories(found, wanted - set(found), calls)


def _history(values: Any, where: str, what: str) -> list[Json]:
    """One property's values, newest first (sorted by time, in HubSpot's order on a tie);
    none when HubSpot names none (the record never had a value)."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise unusable(what, f"{where}: the history is not a list")
    if len(values) > MAX_HISTORY_VALUES:
        raise unusable(what, f"{where}: more than {MAX_HISTORY_VALUES} values")
    timed = []
    for value in values:
        if not isinstance(value, dict):
            raise unusable(what, f"{where}: a value is not an object: {quote(value, SHOWN)}")
        kept: Json = {}
        for field, types in _HISTORY_FIELDS.items():
            given = value.get(field)
            if not isinstance(given, types) or isinstance(given, bool) or (
                    given is None and field in _HISTORY_REQUIRED) or (
                    isinstance(given, int) and not 0 <= given <= MAX_ID):
                raise unusable(what, f"{where}: {field!r} is unusable: {quote(given, SHOWN)}")
            if given is not None:
                kept[field] = given
        try:
            ms = parse_timestamp(str(kept["timestamp"]))
        except ValueError as exc:
            raise unusable(what, f"{where}: {exc}") from None
        timed.append((ms, kept))
    return [kept for _, kept in sorted(timed, key=lambda pair: -pair[0])]


def _associated_id(item: Json, what: str) -> int:
    value = as_id(item.get("toObjectId"))
    if value is None:
        raise unusable(what, f"'toObjectId' {quote(item.get('toObjectId'), SHOWN)!r} is not an id "
                             f"(HubSpot's ids are 1 to {MAX_ID})")
    return value


# -- HubSpot's clock and its errors ----------------------------------------------------


def server_ms(date: str | None, now: Callable[[], float] = time.time) -> int:
    """HubSpot's clock from its Date header (whole seconds, so never ahead of HubSpot); the
    service's own when there is none.

    A clock before HubSpot existed would put the export's horizon before any record's
    modification time: an empty answer that looks complete. It is HubSpot's failure."""
    if date is None:
        return int(now() * 1000)
    try:
        ms = int(email.utils.parsedate_to_datetime(date).timestamp()) * 1000
    except (TypeError, ValueError, OverflowError, IndexError):  # no date email.utils can read
        return int(now() * 1000)
    if ms < PORTAL_EPOCH_MS:
        raise HubSpotError(502, "HubSpot's clock unusable",
                           f"HubSpot's Date header says {quote(date, 60)}, before any HubSpot "
                           "portal held data: the export would be empty.")
    return ms


RATE_LIMIT_HEADERS = {"secondly": "X-HubSpot-RateLimit-Secondly-Remaining",
                      "ten_seconds": "X-HubSpot-RateLimit-Remaining",
                      "daily": "X-HubSpot-RateLimit-Daily-Remaining"}


def rate_limits(headers: Mapping[str, str]) -> dict[str, int]:
    """The calls HubSpot says are left in each of its windows, of those its answer names."""
    left = {}
    for window, name in RATE_LIMIT_HEADERS.items():
        value = headers.get(name)
        count = value.strip() if isinstance(value, str) else ""
        if _is_count(count):
            left[window] = int(count)
    return left


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= RATE_LIMIT_DIGITS


def retry_after(value: str | None) -> float | None:
    """HubSpot's ``Retry-After`` in seconds (a number or an HTTP date), if it sent one,
    within 0 .. MAX_RETRY_AFTER: ``inf`` or ``1e999`` is no advice to wait forever (nor a
    number a `Retry-After` header can be written with); ``nan`` is none."""
    if not isinstance(value, str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
            seconds = moment.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):  # no date email.utils can read
            return None
    return None if math.isnan(seconds) else min(max(0.0, seconds), MAX_RETRY_AFTER)


def error_context(body: Mapping[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """The (key, values) pairs of every ``errors[].context`` of a HubSpot answer: where it
    names the scopes a 403 wants, or the ids a batch's 207 had nothing for."""
    errors = body.get("errors") or []
    for error in errors if isinstance(errors, list) else []:
        context = error.get("context") if isinstance(error, dict) else None
        if isinstance(context, dict):
            yield from ((key, values) for key, values in context.items() if isinstance(values, list))


def required_scopes(body: Mapping[str, Any]) -> list[str]:
    """The scopes a MISSING_SCOPES answer names (under a key such as
    ``requiredGranularScopes``)."""
    found = [value for key, values in error_context(body) if "scope" in key.lower()
             for value in values if isinstance(value, str)]
    return list(dict.fromkeys(found))[:5]


def failure(status: int, body: Any, reason: str, wait: float | None, scope: str,
            safe: Callable[[object], str], correlation_id: str | None = None) -> HubSpotError:
    """The error an answer with a status other than success means. ``body`` is its decoded
    JSON (anything else is no body), ``wait`` its `Retry-After`, ``scope`` the one the call
    needs, ``safe`` how HubSpot's text is made safe to repeat, ``correlation_id`` the one of
    its `X-HubSpot-Correlation-Id` header (the body's, when it has one, is the same).

    Every 5xx is HubSpot's passing failure and retryable, not only the four HTTP names:
    HubSpot sits behind Cloudflare, whose 520-524 (524: its timeout) come with an HTML page,
    and one of them must not fail a run that a retry would finish. HubSpot's 477 (a portal
    migrating between data centres) is passing too, for as long as its Retry-After says."""
    # No JSON object: an error page (Cloudflare's HTML for a 52x), said to be one when
    # HubSpot gave no reason phrase either (HTTP/2 has none).
    fallback = reason or ("" if isinstance(body, dict) else NOT_JSON)
    body = body if isinstance(body, dict) else {}
    said = body.get("message")
    # HubSpot's message is text; anything else is described, never rendered (a structure
    # nested deep enough would exhaust Python's recursion limit in str()).
    message = safe(said if isinstance(said, str) and said else quote(said) if said else fallback)
    common: dict[str, Any] = {"correlation_id": body.get("correlationId") or correlation_id,
                              "upstream_status": status}
    if status == 401:
        return HubSpotError(502, "HubSpot refused the access token",
                            "HubSpot answered 401: the access token (HUBSPOT_ACCESS_TOKEN) is "
                            f"invalid, expired or revoked. HubSpot said: {message}", **common)
    if status == 403:
        needed = safe(" or ".join(required_scopes(body)) or scope)
        return HubSpotError(502, "HubSpot access token lacks a scope",
                            f"HubSpot answered 403: the token needs the {needed} scope. "
                            f"HubSpot said: {message}", **common)
    if status == 429 and body.get("policyName") == "DAILY":
        return HubSpotError(503, "HubSpot daily limit reached",
                            "The portal has used its daily API allowance; it resets at midnight "
                            f"in the portal's time zone. HubSpot said: {message}",
                            retry_after=wait or 3600, **common)
    if status == 429:
        return HubSpotError(503, "HubSpot rate limit", f"HubSpot kept answering 429: {message}",
                            retryable=True, retry_after=wait, **common)
    if status == MIGRATION_STATUS:
        return HubSpotError(503, "HubSpot migration in progress",
                            f"HubSpot answered {status}: the portal is being moved between "
                            f"HubSpot's data hosting locations. HubSpot said: {message}",
                            retryable=True, retry_after=wait, **common)
    if status in RETRYABLE_STATUS or status in SERVER_ERRORS:
        ours, title = {503: (503, "HubSpot unavailable"), 504: (504, "HubSpot timed out")
                       }.get(status, (502, "HubSpot failed"))
        return HubSpotError(ours, title, f"HubSpot answered {status}: {message}",
                            retryable=True, retry_after=wait, **common)
    return HubSpotError(502, "HubSpot rejected the request",
                        f"HubSpot answered {status}: {message}", **common)


# -- reference data: owners, pipelines, property definitions ---------------------------

MAX_KEY_CHARS = 200  # a pipeline's, a stage's, a property's or a group's id: HubSpot's are short


@dataclass(frozen=True, slots=True)
class Owner:
    """An owner (a user who can own records) from the owners API, active or deactivated."""

    id: int
    updated_ms: int
    archived: bool
    data: Json  # HubSpot's owner as it came (names, e-mail, teams): what Sesam gets


OwnerPage = CursorPage[Owner]  # a page of the owners API


@dataclass(frozen=True, slots=True)
class Stage:
    """A pipeline stage."""

    id: str
    archived: bool
    updated_ms: int | None
    data: Json


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A pipeline of an object type, with its stages."""

    id: str
    label: str | None
    archived: bool
    updated_ms: int | None
    stages: list[Stage]
    data: Json


@dataclass(frozen=True, slots=True)
class PropertyDefinition:
    """A property's definition from the properties API."""

    name: str
    group: str | None
    archived: bool
    updated_ms: int | None
    data: Json


def _key(item: Any, name: str, what: str) -> str:
    """A short, non-empty text field that names something (an id, a property's name)."""
    value = item.get(name) if isinstance(item, dict) else None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_CHARS:
        shown = value if isinstance(item, dict) else item
        raise unusable(what, f"an entry has no usable {name!r} (text of 1 to {MAX_KEY_CHARS} "
                             f"characters): {quote(shown, SHOWN)}")
    return value


def _flag(item: Json, name: str, what: str) -> bool:
    """A boolean field; absent is False."""
    value = item.get(name, False)
    if not isinstance(value, bool):
        raise unusable(what, f"{name!r} of {quote(item.get('id') or item.get('name'), SHOWN)!r} is "
                             f"{type(value).__name__}, not a boolean")
    return value


def _optional_time(item: Json, name: str) -> int | None:
    """An optional timestamp field: None if absent or unreadable (it only labels the entity)."""
    try:
        return _time(item, name)
    except ValueError:
        return None


def _objects(items: Any, what: str, name: str) -> list[Json]:
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise unusable(what, f"{name!r} is not a list of objects: {quote(items, SHOWN)}")
    return items


def owner(item: Any, what: str = "owners") -> Owner:
    """An owner: an id (digits), an updatedAt, its archived flag and, if any, its teams."""
    owner_id = as_id(item.get("id")) if isinstance(item, dict) else None
    if owner_id is None or not isinstance(item.get("id"), str):
        shown = item.get("id") if isinstance(item, dict) else item
        raise unusable(what, f"owner {quote(shown, SHOWN)!r} has no usable id (HubSpot's ids are "
                             f"digits, 1 to {MAX_ID})")
    try:
        updated_ms = _time(item, "updatedAt")
    except ValueError as exc:
        raise unusable(what, f"owner '{owner_id}' has no usable 'updatedAt': {exc}") from None
    if "teams" in item:
        _objects(item["teams"], what, "teams")
    return Owner(owner_id, updated_ms, _flag(item, "archived", what), item)


def owner_page(data: Json, server_ms: int, calls: int, archived: bool) -> OwnerPage:
    """One page of ``GET /crm/v3/owners`` (``archived`` says which list was asked for)."""
    what = "list of deactivated owners" if archived else "list of owners"
    owners = [owner(item, what) for item in _results(data, what)]
    return OwnerPage(owners, _after(_next(data, what), what), server_ms, calls)


def pipelines(data: Json, kind: ObjectType) -> list[Pipeline]:
    """Every pipeline of ``GET /crm/v3/pipelines/{objectType}``, with its stages."""
    what = f"{kind.name} pipelines"
    found = []
    for item in _results(data, what):
        pipeline_id = _key(item, "id", what)
        stages = [Stage(_key(stage, "id", what), _flag(stage, "archived", what),
                        _optional_time(stage, "updatedAt"), stage)
                  for stage in _objects(item.get("stages", []), what, "stages")]
        label = item.get("label")
        found.append(Pipeline(pipeline_id, label if isinstance(label, str) else None,
                              _flag(item, "archived", what), _optional_time(item, "updatedAt"),
                              stages, item))
    return found


def property_definitions(data: Json, kind: ObjectType, archived: bool) -> list[PropertyDefinition]:
    """Every definition of ``GET /crm/v3/properties/{objectType}`` (``archived``: of the
    archived ones)."""
    what = f"{kind.name} {'archived ' if archived else ''}property definitions"
    found = []
    for item in _results(data, what):
        name = _key(item, "name", what)
        group = item.get("groupName")
        found.append(PropertyDefinition(
            name, group if isinstance(group, str) else None, archived or _flag(item, "archived", what),
            _optional_time(item, "updatedAt") or _optional_time(item, "createdAt"), item))
    return found


def property_groups(data: Json, kind: ObjectType) -> dict[str, str]:
    """The label of each property group of ``GET /crm/v3/properties/{objectType}/groups``."""
    what = f"{kind.name} property groups"
    groups = {}
    for item in _results(data, what):
        name = _key(item, "name", what)
        label = item.get("label")
        if not isinstance(label, str):
            raise unusable(what, f"group {quote(name, SHOWN)!r} has no text 'label'")
        groups[name] = label
    return groups
