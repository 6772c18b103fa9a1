"""An in-process fake HubSpot portal ("the sandbox") for tests, the offline demo and benchmarks.

It speaks the three CRM v3 contact endpoints the exporter uses (list, search and the
property catalogue) and reproduces what makes a naive exporter lose or repeat contacts
against real HubSpot:

* search reads an eventually consistent index that sees writes only after a lag,
  pages by integer offset and refuses to page past 10,000 results;
* contacts that share a sort value come back in a shuffled (but stable) order;
* many contacts share one millisecond, and timestamps are rendered with and without
  milliseconds;
* rate limits, hangs, error statuses and connections cut mid-body can be switched on.

Everything is deterministic from a seed, so a failing test reproduces.  `Sandbox` holds
the state (and the truth tests compare against); `SandboxServer` serves it over HTTP
on 127.0.0.1; `python -m app.sandbox` runs one on its own.  Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import json
import math
import operator
import random
import re
import socket
import sys
import threading
import time
import unicodedata
import uuid
import zlib
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = ["Fault", "Sandbox", "SandboxServer", "main"]

_DAY_MS = 86_400_000
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NEG_INF, _POS_INF = -(1 << 63), 1 << 63

_SEARCH_CAP = 10_000
_SEARCH_MAX_LIMIT = 200
_LIST_MAX_LIMIT = 100
_DEFAULT_LIMIT = 10
_MAX_GROUPS, _MAX_GROUP_FILTERS, _MAX_FILTERS = 5, 6, 18
_MAX_TARGET = 16_000
_LOG_LIMIT = 100_000
# Applying more index changes than this at once is cheaper as one sort than as insorts.
_REBUILD_THRESHOLD = 1_000
_CACHE_SIZE = 16

_DEFAULT_PROPERTIES = ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id")
_ALWAYS_PROPERTIES = ("createdate", "lastmodifieddate", "hs_object_id")
_READ_ONLY = frozenset(_ALWAYS_PROPERTIES)
_QUERY_PROPERTIES = ("firstname", "lastname", "email", "phone", "company")
_INDEXED = ("lastmodifieddate", "hs_object_id")

_ROUTES = {
    ("GET", "/crm/v3/properties/contacts"): "properties",
    ("GET", "/crm/v3/objects/contacts"): "list",
    ("POST", "/crm/v3/objects/contacts/search"): "search",
}
_ENDPOINTS = frozenset(_ROUTES.values()) | {"any"}
_FAULT_KINDS = frozenset({"status", "hang", "close", "rate_limit", "daily"})
_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
    414: "VALIDATION_ERROR",
    423: "LOCKED",
    429: "RATE_LIMITS",
}
_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

# --------------------------------------------------------------------------- helpers


def _mix(x: int) -> int:
    """splitmix64's finaliser: well spread and, unlike hash(), the same in every run."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    # Real HubSpot drops the fraction on whole seconds; consumers must normalise both forms.
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def _parse_iso_ms(text: str) -> int:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def _as_int(value: Any) -> int | None:
    """An integer given as JSON number or decimal string, else None (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def _decode_json(raw: bytes) -> tuple[Any, bool]:
    """(payload, valid): an empty body is a valid None."""
    if not raw:
        return None, True
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


# --------------------------------------------------------------------------- replies and errors


@dataclass
class _Reply:
    status: int
    body: dict | None
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    """Ends a request early with `reply`."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _error_body(message: str, category: str, **extra: Any) -> dict:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> _ApiError:
    category = _CATEGORIES.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
    return _ApiError(_Reply(status, _error_body(message, category, **extra), dict(headers or {})))


def _bad_request(message: str) -> _ApiError:
    return _error(400, message)


def _rate_limited(policy: str, message: str, headers: dict[str, str] | None = None) -> _ApiError:
    return _error(429, message, headers, errorType="RATE_LIMIT", policyName=policy)


def _int_param(value: Any, name: str, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    number = _as_int(value)
    if number is None or number < low or (high is not None and number > high):
        upper = f" and at most {high}" if high is not None else ""
        raise _bad_request(f"Invalid value {value!r} for '{name}': must be an integer of at least {low}{upper}.")
    return number


# --------------------------------------------------------------------------- property catalogue


@dataclass(frozen=True)
class _Property:
    name: str
    label: str
    type: str
    field_type: str
    group: str = "contactinformation"
    options: tuple[str, ...] = ()
    hubspot_defined: bool = True

    def describe(self, order: int) -> dict:
        stamp = "2019-08-06T02:43:14.491Z" if self.hubspot_defined else "2023-05-02T08:00:00Z"
        read_only = self.name in _READ_ONLY
        entry = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group,
            "description": f"The contact's {self.label.lower()}.",
            "hidden": False,
            "calculated": False,
            "hasUniqueValue": False,
            "formField": not read_only,
            "displayOrder": order,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "options": [
                {"label": value.replace("_", " ").title(), "value": value, "displayOrder": position, "hidden": False}
                for position, value in enumerate(self.options)
            ],
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": read_only,
            },
        }
        if self.hubspot_defined:
            entry["hubspotDefined"] = True
        return entry


_STAGES = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
    "opportunity", "customer", "evangelist", "other",
)
_HUBSPOT_PROPERTIES = (
    _Property("email", "Email", "string", "text"),
    _Property("firstname", "First Name", "string", "text"),
    _Property("lastname", "Last Name", "string", "text"),
    _Property("phone", "Phone Number", "string", "phonenumber"),
    _Property("company", "Company Name", "string", "text"),
    _Property("website", "Website URL", "string", "text"),
    _Property("city", "City", "string", "text"),
    _Property("country", "Country/Region", "string", "text"),
    _Property("jobtitle", "Job Title", "string", "text"),
    _Property("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=_STAGES),
    _Property("createdate", "Create Date", "datetime", "date"),
    _Property("lastmodifieddate", "Last Modified Date", "datetime", "date"),
    _Property("hs_object_id", "Record ID", "number", "number"),
    _Property("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox"),
)
_CUSTOM_TYPES = (("string", "text"), ("number", "number"), ("enumeration", "select"), ("datetime", "date"))
_CUSTOM_OPTIONS = tuple(f"option_{n}" for n in range(1, 6))


def _custom_property(number: int) -> _Property:
    kind, field_type = _CUSTOM_TYPES[(number - 1) % len(_CUSTOM_TYPES)]
    return _Property(
        f"custom_field_{number:02d}", f"Custom Field {number:02d}", kind, field_type,
        group="custom_fields", options=_CUSTOM_OPTIONS if kind == "enumeration" else (), hubspot_defined=False,
    )


# --------------------------------------------------------------------------- generated values

_FIRST = ("Ada", "Bjørn", "Chloé", "Dmitri", "Emeka", "Fatima", "Giulia", "Hiro", "Ingrid", "José",
          "Kari", "Liam", "Mei", "Nora", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq")
_LAST = ("Andersen", "Berg", "Costa", "Dahl", "Eze", "Fischer", "García", "Haugen", "Ivanova", "Johansen",
         "Kim", "Larsen", "Müller", "Nakamura", "O'Brien", "Pettersen", "Quist", "Rossi", "Singh", "Tanaka")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
_COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay Industries",
              "Stark Industries", "Wayne Enterprises", "Nordic Fjord AS", "Tyrell")
_CITIES = (("Oslo", "Norway"), ("Bergen", "Norway"), ("Stockholm", "Sweden"), ("Copenhagen", "Denmark"),
           ("Berlin", "Germany"), ("Lagos", "Nigeria"), ("Tokyo", "Japan"), ("Boston", "United States"),
           ("São Paulo", "Brazil"), ("Pune", "India"))
_TITLES = ("CEO", "CTO", "Data Engineer", "Sales Manager", "Marketing Lead", "Accountant", "Consultant")
# Weighted towards the stages most contacts sit in.
_STAGE_WEIGHTS = ("subscriber", "lead", "lead", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                  "opportunity", "customer", "customer", "evangelist", "other")
_CUSTOM_DATE_BASE = 1_577_836_800_000  # 2020-01-01
_CUSTOM_DATE_SPAN = 4 * 365 * _DAY_MS


def _hash(tie: int, name: str) -> int:
    return _mix(tie ^ zlib.crc32(name.encode()))


def _pick(tie: int, name: str, choices: Sequence[Any]) -> Any:
    return choices[(_hash(tie, name) >> 8) % len(choices)]


def _company(tie: int) -> str | None:
    return None if _hash(tie, "company") % 10 == 0 else _pick(tie, "company", _COMPANIES)


def _city(tie: int) -> tuple[str, str] | None:
    return None if _hash(tie, "city") % 12 == 0 else _pick(tie, "city", _CITIES)


def _email(cid: int, tie: int) -> str:
    first, last = (
        re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", name.lower()))
        for name in (_pick(tie, "firstname", _FIRST), _pick(tie, "lastname", _LAST))
    )
    # The id keeps generated addresses unique, as HubSpot requires of emails.
    return f"{first}.{last}.{cid}@{_pick(tie, 'email', _DOMAINS)}"


def _phone(tie: int) -> str | None:
    h = _hash(tie, "phone")
    return None if h % 6 == 0 else f"+1 555 {h % 10_000_000:07d}"


def _website(tie: int) -> str | None:
    company = _company(tie)
    if company is None or _hash(tie, "website") % 5 == 0:
        return None
    return f"https://www.{re.sub(r'[^a-z]', '', company.lower())}.example"


def _merged_ids(tie: int) -> str | None:
    h = _hash(tie, "hs_merged_object_ids")
    # Ids far beyond the live range: merged-away contacts no longer exist.
    return None if h % 100 else f"{900_000_000 + h % 50_000};{950_000_000 + (h >> 20) % 50_000}"


def _optional(name: str, choices: Sequence[str], every: int) -> Callable[[int, int], str | None]:
    """A picker that leaves one contact in `every` without a value."""
    return lambda cid, tie: None if _hash(tie, name) % every == 0 else _pick(tie, name, choices)


def _city_part(part: int) -> Callable[[int, int], str | None]:
    return lambda cid, tie: None if (city := _city(tie)) is None else city[part]


_GENERATORS: dict[str, Callable[[int, int], str | None]] = {
    "email": _email,
    "firstname": lambda cid, tie: _pick(tie, "firstname", _FIRST),
    "lastname": lambda cid, tie: _pick(tie, "lastname", _LAST),
    "phone": lambda cid, tie: _phone(tie),
    "company": lambda cid, tie: _company(tie),
    "website": lambda cid, tie: _website(tie),
    "city": _city_part(0),
    "country": _city_part(1),
    "jobtitle": _optional("jobtitle", _TITLES, 4),
    "lifecyclestage": _optional("lifecyclestage", _STAGE_WEIGHTS, 50),
    "hs_merged_object_ids": lambda cid, tie: _merged_ids(tie),
}


def _custom_value(prop: _Property, tie: int) -> str | None:
    h = _hash(tie, prop.name)
    if h % 5 == 0:
        return None
    h >>= 8
    if prop.type == "number":
        return str(h % 100_000)
    if prop.type == "enumeration":
        return prop.options[h % len(prop.options)]
    if prop.type == "datetime":
        return _iso(_CUSTOM_DATE_BASE + h % _CUSTOM_DATE_SPAN)
    return f"value {h % 10_000}"


# --------------------------------------------------------------------------- contacts and faults


_NO_OVERRIDES: Mapping[str, str | None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Version:
    """One state of a contact.  Immutable, so the search index can keep an old one until the lag passes."""

    id: int
    tie: int  # hash of (seed, id): the shuffled order of equal sort values
    created: int
    modified: int
    archived_at: int | None = None
    # Values written explicitly (None = cleared); the rest are generated from the id.  Shared and read-only.
    overrides: Mapping[str, str | None] = field(default_factory=lambda: _NO_OVERRIDES)


@dataclass
class Fault:
    """A scripted misbehaviour for API requests to `endpoint` ("search", "list", "properties" or "any").

    kind "status" answers status/body/headers instead of the real answer; "hang" sleeps
    `seconds` of real time and then answers normally; "close" sends 200 headers with the real
    body's Content-Length, writes about half of the body and closes the socket; "rate_limit"
    answers 429 with HubSpot's SECONDLY body; "daily" 429 with the DAILY policy.  The first
    `skip` matching requests pass untouched; then `times` of them are hit (None: all).
    """

    endpoint: str
    kind: str = "status"
    status: int = 500
    body: dict | None = None
    headers: dict | None = None
    seconds: float = 0.0
    skip: int = 0
    times: int | None = 1

    def __post_init__(self) -> None:
        if self.endpoint not in _ENDPOINTS:
            raise ValueError(f"fault endpoint must be one of {sorted(_ENDPOINTS)}, not {self.endpoint!r}")
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(_FAULT_KINDS)}, not {self.kind!r}")
        if self.skip < 0 or (self.times is not None and self.times < 1) or self.seconds < 0:
            raise ValueError("fault skip and seconds must be >= 0 and times >= 1 or None")
        HTTPStatus(self.status)  # raises ValueError for a status HTTP does not define

    def _reply(self) -> _Reply:
        if self.kind == "rate_limit":
            return _rate_limited("SECONDLY", "You have reached your secondly limit.", self.headers).reply
        if self.kind == "daily":
            return _rate_limited("DAILY", "You have reached your daily limit.", self.headers).reply
        reply = _error(self.status, HTTPStatus(self.status).phrase, self.headers).reply
        if self.body is not None:
            reply.body = self.body
        return reply


@dataclass(frozen=True)
class _Request:
    method: str
    target: str  # path and query as sent
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    payload: Any
    valid_json: bool
    base_url: str


@dataclass(frozen=True)
class _Filter:
    prop: str
    test: Callable[[_Version], bool]
    bound: tuple[int, int] | None  # inclusive integer range when an index on `prop` can answer it


@dataclass(frozen=True)
class _Search:
    groups: list[list[_Filter]]
    text: Callable[[_Version], bool] | None
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
            return math.floor(low) + 1, _POS_INF
        case "GTE":
            return math.ceil(low), _POS_INF
        case "LT":
            return _NEG_INF, math.ceil(low) - 1
        case "LTE":
            return _NEG_INF, math.floor(low)
        case _:
            return math.ceil(low), math.floor(high)


# --------------------------------------------------------------------------- the sandbox


class Sandbox:
    """State and behaviour of a fake HubSpot portal.  Thread-safe: one lock guards all state.

    The clock is frozen at `now_ms` when given (it moves only by advance()/set_now()), else it
    follows the wall clock plus what advance() added.  Writes take effect at the current
    sandbox ms.  The knobs below are plain attributes, settable at any time (also over HTTP at
    /_sandbox/config):

    * search_lag_ms: a write becomes visible to search this long (sandbox clock) after it happened;
    * search_rate_per_second: searches admitted per rolling real second (None: unlimited), beyond -> 429;
    * general_rate_per_10s: the same for list and properties per rolling 10 s, with X-HubSpot-RateLimit headers;
    * latency_ms: a real sleep before every API response, for benchmarks;
    * archived_at_is_modified: archivedAt shows the record's last-modified time instead of
      its deletion time, as HubSpot's changelog says it did for contacts.

    HubSpot's worst habits, each off by default (the quick start and most tests keep the
    kinder portal) and switched on by the tests that need them:

    * reorder_ties_per_request: contacts that share a sort value come back in a different
      order on every request (by default the order is shuffled but the same every time);
    * archived_list_lag_ms: an archived contact shows in the archived listing only this long
      after its archivedAt;
    * search_lag_jitter_ms: each write reaches search after search_lag_ms plus its own extra
      lag of 0..jitter (a deterministic draw per contact and write), so writes show out of
      order; see search_visible_at();
    * search_drop_lag_ms: an archived contact stays in search this much longer than other
      writes take to show (so a search can list a contact the archived listing already has);
    * date_skew_ms: the Date header runs this far ahead (negative: behind) of the clock that
      stamps the records.

    request_log holds one {"method", "path", "query" (parse_qs lists), "body", "status"} per API
    request, the last 100,000 of them.
    """

    def __init__(
        self,
        *,
        contacts: int = 3000,
        seed: int = 1,
        token: str = "sandbox-token",
        now_ms: int | None = None,
        archived_fraction: float = 0.02,
        custom_properties: int = 20,
    ) -> None:
        if contacts < 0 or custom_properties < 0 or not 0 <= archived_fraction <= 1:
            raise ValueError("contacts and custom_properties must be >= 0 and archived_fraction within [0, 1]")
        self.token = token
        self.search_lag_ms: int = 0
        self.search_rate_per_second: int | None = None
        self.general_rate_per_10s: int | None = None
        self.latency_ms: float = 0
        self.reorder_ties_per_request: bool = False
        self.archived_list_lag_ms: int = 0
        self.search_lag_jitter_ms: int = 0
        self.search_drop_lag_ms: int = 0
        self.date_skew_ms: int = 0
        self.archived_at_is_modified: bool = False
        self.request_log: list[dict] = []
        self._searches_answered = 0  # salts the tie order when it changes per request

        self._lock = threading.RLock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._frozen_at = now_ms
        self._offset = 0
        self._last_now = 0
        self._start_ms = self._now_locked()

        self._properties = {p.name: p for p in _HUBSPOT_PROPERTIES}
        self._properties.update((p.name, p) for p in map(_custom_property, range(1, custom_properties + 1)))
        self._catalogue = [p.describe(order) for order, p in enumerate(self._properties.values())]

        self._next_id = 101
        self._contacts: dict[int, _Version] = {}  # current version of every contact, archived ones included
        self._merged_into: dict[int, int] = {}  # merged-away id -> the survivor it went into
        self._live_ids: list[int] = []  # sorted
        self._archived_ids: list[int] = []  # sorted
        # Search side: the versions search sees, writes waiting for the lag, and sorted indexes.
        self._pending: deque[tuple[int, int, _Version | None]] = deque()
        self._indexed: dict[int, _Version] = {}
        self._mod_index: list[tuple[int, int, int]] = []  # (lastmodifieddate, tie, id)
        self._mod_ids: list[int] = []  # the ids of _mod_index, so a range is one cheap slice
        self._id_index: list[int] = []
        self._search_cache: dict[str, list[int]] = {}

        self._faults: list[Fault] = []
        self._hook: Callable[[int], None] | None = None
        self._hook_count = 0
        self._counts: dict[str, int] = dict.fromkeys(("search", "list", "properties"), 0)
        # Monotonic times of the requests admitted in the current rate-limit windows.
        self._admitted: dict[str, deque[float]] = {"search": deque(), "general": deque()}

        self._seed_contacts(contacts, archived_fraction)

    # ----------------------------------------------------------------- clock

    def _now_locked(self) -> int:
        base = self._frozen_at if self._frozen_at is not None else time.time_ns() // 1_000_000
        # Never backwards, even if the wall clock steps back: search lag relies on it.
        self._last_now = max(base + self._offset, self._last_now)
        return self._last_now

    def now_ms(self) -> int:
        """The sandbox's current time in epoch ms (frozen, or the wall clock plus advances)."""
        with self._lock:
            return self._now_locked()

    def date_ms(self) -> int:
        """HubSpot's clock as its Date header tells it: now, skewed by date_skew_ms."""
        return self.now_ms() + self.date_skew_ms

    def advance(self, ms: int) -> None:
        """Move the clock forward by `ms`."""
        if ms < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset += ms

    def set_now(self, ms: int) -> None:
        """Move the clock forward to `ms`; ValueError if that is in the past."""
        with self._lock:
            current = self._now_locked()
            if ms < current:
                raise ValueError(f"cannot set the sandbox clock back from {current} to {ms}")
            self._offset += ms - current

    # ----------------------------------------------------------------- seeding

    def _tie(self, cid: int) -> int:
        return _mix(((self._seed * _GOLDEN) ^ cid) & _MASK64)

    def _allocate_id(self) -> int:
        cid = self._next_id
        self._next_id += self._rng.randint(1, 3)  # gaps, so ids are not dense
        return cid

    def _seed_modified_times(self, count: int) -> list[int]:
        rng = self._rng
        low = self._start_ms - 90 * _DAY_MS
        span = 90 * _DAY_MS - 60_000  # ends a minute before start, leaving room for archivedAt

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

    def _seed_contacts(self, count: int, archived_fraction: float) -> None:
        rng = self._rng
        modified = self._seed_modified_times(count)
        first_created = self._start_ms - 730 * _DAY_MS
        # Created in id order, all before the 90-day modification window.
        created = sorted(first_created + int(rng.random() * 600 * _DAY_MS) for _ in range(count))
        archived = set(rng.sample(range(count), round(count * archived_fraction)))
        for i in range(count):
            cid = self._allocate_id()
            archived_at = None
            if i in archived:
                archived_at = rng.randint(modified[i] + 1, self._start_ms - 1)
            version = _Version(cid, self._tie(cid), created[i], modified[i], archived_at)
            self._contacts[cid] = version
            if archived_at is None:
                self._live_ids.append(cid)
                self._indexed[cid] = version
            else:
                self._archived_ids.append(cid)
        self._rebuild_index()

    # ----------------------------------------------------------------- writes

    def _coerce(self, properties: Mapping[str, Any] | None) -> Mapping[str, str | None]:
        values: dict[str, str | None] = {}
        for name, value in (properties or {}).items():
            prop = self._properties.get(name)
            if prop is None:
                raise ValueError(f"Property {name!r} does not exist")
            if name in _READ_ONLY:
                raise ValueError(f"Property {name!r} is read-only")
            values[name] = None if value is None or value == "" else self._stored_value(prop, value)
        return MappingProxyType(values)

    @staticmethod
    def _stored_value(prop: _Property, value: Any) -> str:
        if prop.type == "number":
            float(value)  # raises ValueError like HubSpot's 400 for a non-number
        elif prop.type == "datetime":
            ms = _as_int(value)
            return _iso(ms if ms is not None else _parse_iso_ms(str(value)))
        elif prop.options and str(value) not in prop.options:
            raise ValueError(f"{value!r} is not a valid option for {prop.name}")
        return str(value)

    def _write(self, new: _Version, now: int) -> None:
        old = self._contacts.get(new.id)
        self._contacts[new.id] = new
        was_live = old is not None and old.archived_at is None
        is_live = new.archived_at is None
        if old is not None and was_live != is_live:
            source = self._live_ids if was_live else self._archived_ids
            del source[bisect_left(source, new.id)]
        if old is None or was_live != is_live:
            insort(self._live_ids if is_live else self._archived_ids, new.id)
        self._pending.append((now, new.id, new if is_live else None))

    def _lookup(self, raw: str) -> _Version | None:
        cid = _as_int(raw)
        return self._contacts.get(cid) if cid is not None else None

    def _existing(self, ids: Iterable[str], live: bool) -> list[_Version]:
        """Current versions of `ids`, all checked before anything is written."""
        if isinstance(ids, str):
            raise TypeError("ids must be an iterable of id strings, not one string")
        versions = []
        for raw in ids:
            version = self._lookup(raw)
            if version is None or (version.archived_at is None) != live:
                raise KeyError(f"no {'live' if live else 'archived'} contact with id {raw!r}")
            versions.append(version)
        return versions

    def create(self, count: int = 1, properties: dict | None = None) -> list[str]:
        """Create `count` contacts at the current ms (so they tie); unset properties are generated."""
        if count < 0:
            raise ValueError("count must be >= 0")
        overrides = self._coerce(properties)
        with self._lock:
            now = self._now_locked()
            ids = []
            for _ in range(count):
                cid = self._allocate_id()
                self._write(_Version(cid, self._tie(cid), now, now, None, overrides), now)
                ids.append(str(cid))
            return ids

    def modify(self, ids: Iterable[str], properties: dict | None = None) -> None:
        """Set properties (None or "" clears one) and lastmodifieddate=now; KeyError for unknown or archived ids."""
        changes = self._coerce(properties)
        with self._lock:
            now = self._now_locked()
            for version in self._existing(ids, live=True):
                merged = MappingProxyType({**version.overrides, **changes})
                self._write(dataclasses.replace(version, modified=now, overrides=merged), now)

    def archive(self, ids: Iterable[str]) -> None:
        """Archive (HubSpot's delete) live contacts at now; search drops them once the lag passes."""
        with self._lock:
            now = self._now_locked()
            for version in self._existing(ids, live=True):
                self._write(dataclasses.replace(version, archived_at=now), now)

    def modify_and_archive(self, ids: Iterable[str], properties: dict | None = None) -> None:
        """Modify live contacts and archive them on the same millisecond: their
        lastmodifieddate and archivedAt are equal (HubSpot's bulk clean-ups do this)."""
        changes = self._coerce(properties)
        with self._lock:
            now = self._now_locked()
            for version in self._existing(ids, live=True):
                merged = MappingProxyType({**version.overrides, **changes})
                modified = dataclasses.replace(version, modified=now, overrides=merged)
                self._write(modified, now)
                self._write(dataclasses.replace(modified, archived_at=now), now)

    def restore(self, ids: Iterable[str]) -> None:
        """Un-archive contacts, setting lastmodifieddate=now."""
        with self._lock:
            now = self._now_locked()
            for version in self._existing(ids, live=False):
                self._write(dataclasses.replace(version, archived_at=None, modified=now), now)

    def merge(self, primary: str, secondary: str) -> None:
        """Merge live contact `secondary` into live contact `primary`, as HubSpot does: the
        secondary vanishes (not archived: it leaves search, the list API and the archived
        list), the primary's hs_merged_object_ids gains it (and what had been merged into
        it) and its lastmodifieddate moves to now."""
        with self._lock:
            now = self._now_locked()
            survivor, gone = self._existing([primary, secondary], live=True)
            if survivor.id == gone.id:
                raise ValueError("a contact cannot be merged into itself")
            ids = [*self._merged_list(survivor), str(gone.id), *self._merged_list(gone)]
            del self._live_ids[bisect_left(self._live_ids, gone.id)]
            del self._contacts[gone.id]
            self._merged_into[gone.id] = survivor.id
            self._pending.append((now, gone.id, None))
            overrides = MappingProxyType({**survivor.overrides,
                                          "hs_merged_object_ids": ";".join(dict.fromkeys(ids))})
            self._write(dataclasses.replace(survivor, modified=now, overrides=overrides), now)

    def _merged_list(self, version: _Version) -> list[str]:
        return [part for part in (self._raw(version, "hs_merged_object_ids") or "").split(";") if part]

    # ----------------------------------------------------------------- truth

    def merged(self) -> dict[str, list[str]]:
        """Live contact id -> the ids merged into it (hs_merged_object_ids), for those that have any."""
        with self._lock:
            found = {str(cid): self._merged_list(self._contacts[cid]) for cid in self._live_ids}
        return {cid: ids for cid, ids in found.items() if ids}

    def live(self) -> dict[str, int]:
        """id -> lastmodifieddate ms of every live contact, as of now (no lag)."""
        with self._lock:
            return {str(cid): self._contacts[cid].modified for cid in self._live_ids}

    def archived(self) -> dict[str, int]:
        """id -> archivedAt ms of every archived contact."""
        with self._lock:
            return {str(cid): self._contacts[cid].archived_at for cid in self._archived_ids}

    def contact(self, id: str) -> dict:
        """The current HubSpot-shaped object with every property, archived or not (for a
        merged-away id, its survivor, as HubSpot answers); KeyError if unknown."""
        with self._lock:
            version = self._lookup(id)
            cid = _as_int(id)
            if version is None and cid in self._merged_into:
                while cid in self._merged_into:
                    cid = self._merged_into[cid]
                version = self._contacts.get(cid)
            if version is None:
                raise KeyError(f"no contact with id {id!r}")
            return self._render(version, list(self._properties))

    # ----------------------------------------------------------------- hooks, faults, log

    def on_search_page(self, callback: Callable[[int], None] | None) -> None:
        """Call callback(n) after the n-th successful search page since now is computed, before it is sent."""
        with self._lock:
            self._hook = callback
            self._hook_count = 0

    def inject(self, fault: Fault) -> None:
        """Arm a fault; several are tried in injection order and at most one hits a request."""
        with self._lock:
            # A copy: its skip/times count down as requests hit it.
            self._faults.append(dataclasses.replace(fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_counters(self) -> None:
        """Clear request_log and the per-endpoint request counts."""
        with self._lock:
            self.request_log.clear()
            self._counts = dict.fromkeys(self._counts, 0)

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint not in (endpoint, "any"):
                    continue
                if fault.skip:
                    fault.skip -= 1
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _admit(self, endpoint: str) -> dict[str, str]:
        """Rate limiting on real time; returns the rate-limit headers of the response."""
        search = endpoint == "search"
        limit = self.search_rate_per_second if search else self.general_rate_per_10s
        if limit is None:
            return {}
        window = 1.0 if search else 10.0
        with self._lock:
            admitted = self._admitted["search" if search else "general"]
            now = time.monotonic()
            while admitted and admitted[0] <= now - window:
                admitted.popleft()
            allowed = len(admitted) < limit
            if allowed:
                admitted.append(now)
            remaining = limit - len(admitted)
        if search:
            # Real search sends no rate-limit headers and no Retry-After.
            if not allowed:
                raise _rate_limited("SECONDLY", "You have reached your secondly limit.")
            return {}
        headers = {
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
        if not allowed:
            raise _rate_limited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.", headers)
        return headers

    def _record(self, request: _Request, endpoint: str | None, status: int) -> None:
        entry = {"method": request.method, "path": request.path, "query": request.query,
                 "body": request.payload, "status": status}
        with self._lock:
            self.request_log.append(entry)
            if len(self.request_log) > _LOG_LIMIT:
                del self.request_log[0]
            if endpoint is not None:
                self._counts[endpoint] += 1

    def _search_answered(self) -> None:
        with self._lock:
            callback = self._hook
            self._hook_count += 1
            count = self._hook_count
        if callback is not None:
            callback(count)

    # ----------------------------------------------------------------- rendering

    def _raw(self, version: _Version, name: str) -> str | None:
        if name == "hs_object_id":
            return str(version.id)
        if name == "createdate":
            return _iso(version.created)
        if name == "lastmodifieddate":
            return _iso(version.modified)
        if name in version.overrides:
            return version.overrides[name]
        generator = _GENERATORS.get(name)
        if generator is not None:
            return generator(version.id, version.tie)
        return _custom_value(self._properties[name], version.tie)

    def _render(self, version: _Version, names: Iterable[str]) -> dict:
        obj = {
            "id": str(version.id),
            # Known properties the contact has no value for come back as null, as in HubSpot.
            "properties": {name: self._raw(version, name) for name in names},
            "createdAt": _iso(version.created),
            "updatedAt": _iso(version.modified),
            "archived": version.archived_at is not None,
        }
        if version.archived_at is not None:
            obj["archivedAt"] = _iso(version.modified if self.archived_at_is_modified else version.archived_at)
        return obj

    def _requested(self, values: list[str] | None) -> list[str]:
        if values is None:
            return list(_DEFAULT_PROPERTIES)
        names = dict.fromkeys(name.strip() for value in values for name in value.split(","))
        names.update(dict.fromkeys(_ALWAYS_PROPERTIES))
        return [name for name in names if name in self._properties]

    # ----------------------------------------------------------------- API entry point

    def _handle_api(self, request: _Request) -> tuple[_Reply, bool]:
        """The reply to one API request and whether to cut its body short."""
        endpoint = _ROUTES.get((request.method, request.path))
        truncate = False
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
        try:
            if len(request.target) > _MAX_TARGET:
                raise _error(414, f"URI Too Long: the request line is {len(request.target)} characters; "
                                  f"the limit is {_MAX_TARGET}.")
            if endpoint is None:
                raise _error(404, f"No route for {request.method} {request.path}")
            self._authenticate(request)
            fault = self._take_fault(endpoint)
            if fault is not None:
                if fault.kind == "hang":
                    time.sleep(fault.seconds)
                elif fault.kind == "close":
                    truncate = True
                else:
                    raise _ApiError(fault._reply())
            headers = self._admit(endpoint)
            reply = {"search": self._search_reply, "list": self._list_reply,
                     "properties": self._properties_reply}[endpoint](request)
            reply.headers.update(headers)
        except _ApiError as stop:
            reply = stop.reply
        answered = reply.status == 200
        if truncate:
            reply.status = 200
        self._record(request, endpoint, reply.status)
        if endpoint == "search" and answered and not truncate:
            self._search_answered()
        return reply, truncate

    def _authenticate(self, request: _Request) -> None:
        if "hapikey" in request.query:
            raise _error(401, "API keys were retired on November 30, 2022 and are no longer accepted; "
                              "use a private app access token: Authorization: Bearer <token>.")
        scheme, _, credentials = (request.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.token:
            raise _error(401, _AUTH_MESSAGE)

    def _properties_reply(self, request: _Request) -> _Reply:
        return _Reply(200, {"results": self._catalogue})

    # ----------------------------------------------------------------- list API

    def _list_reply(self, request: _Request) -> _Reply:
        query = request.query
        limit = _int_param(query.get("limit", [None])[-1], "limit", _DEFAULT_LIMIT, 1, _LIST_MAX_LIMIT)
        archived = query.get("archived", ["false"])[-1].lower()
        if archived not in ("true", "false"):
            raise _bad_request(f"Invalid value {archived!r} for 'archived': must be true or false.")
        after = self._decode_after(query.get("after", [None])[-1])
        names = self._requested(query.get("properties"))
        with self._lock:
            ids = self._archived_ids if archived == "true" else self._live_ids
            if archived == "true" and self.archived_list_lag_ms:
                ids = self._listed_archived_ids()
            start = bisect_right(ids, after)
            page = ids[start:start + limit]
            body: dict[str, Any] = {"results": [self._render(self._contacts[cid], names) for cid in page]}
            more = start + limit < len(ids)
        if more:
            token = base64.urlsafe_b64encode(str(page[-1]).encode()).decode().rstrip("=")
            link_query = {**query, "after": [token]}
            link = f"{request.base_url}{request.path}?{urlencode(link_query, doseq=True)}"
            body["paging"] = {"next": {"after": token, "link": link}}
        return _Reply(200, body)

    @staticmethod
    def _decode_after(token: str | None) -> int:
        if token is None:
            return _NEG_INF
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            text = ""
        if not text.isdigit():
            raise _bad_request(f"Invalid paging cursor 'after': {token!r}")
        return int(text)

    # ----------------------------------------------------------------- search API

    def _search_reply(self, request: _Request) -> _Reply:
        if not request.valid_json:
            raise _bad_request("Invalid input JSON: the request body is not valid JSON.")
        search = self._parse_search(request.payload)
        with self._lock:
            self._sync_index()
            ids = self._matching_ids(search)
            if self.reorder_ties_per_request:
                ids = self._reorder_ties(ids, search)
            end = search.offset + search.limit
            results = [self._render(self._indexed[cid], search.properties) for cid in ids[search.offset:end]]
        body: dict[str, Any] = {"total": len(ids), "results": results}
        if end < len(ids):
            body["paging"] = {"next": {"after": str(end)}}
        return _Reply(200, body)

    def _parse_search(self, payload: Any) -> _Search:
        payload = {} if payload is None else payload
        if not isinstance(payload, dict):
            raise _bad_request("Invalid input JSON: the search request must be an object.")
        raw_groups = payload.get("filterGroups") or []
        if not isinstance(raw_groups, list) or not all(
            isinstance(group, dict) and isinstance(group.get("filters", []), list) for group in raw_groups
        ):
            raise _bad_request("filterGroups must be a list of objects with a list of filters.")
        sizes = [len(group.get("filters", [])) for group in raw_groups]
        if len(raw_groups) > _MAX_GROUPS or any(size > _MAX_GROUP_FILTERS for size in sizes) or sum(sizes) > _MAX_FILTERS:
            raise _bad_request(
                f"Too many filters: at most {_MAX_GROUPS} filterGroups, {_MAX_GROUP_FILTERS} filters per group "
                f"and {_MAX_FILTERS} filters in total are allowed (got {len(raw_groups)} groups, {sum(sizes)} filters)."
            )
        groups = [[self._compile_filter(raw) for raw in group.get("filters", [])] for group in raw_groups]
        sort_prop, descending = self._parse_sorts(payload.get("sorts"))
        text = self._text_query(payload.get("query"))
        properties = payload.get("properties")
        if properties is not None and not (isinstance(properties, list) and all(isinstance(p, str) for p in properties)):
            raise _bad_request("properties must be a list of property names.")
        limit = _int_param(payload.get("limit"), "limit", _DEFAULT_LIMIT, 1, _SEARCH_MAX_LIMIT)
        offset = _int_param(payload.get("after"), "after", 0, 0, None)
        if offset + limit > _SEARCH_CAP:
            raise _bad_request(
                f"Search results are limited to {_SEARCH_CAP} per query: after ({offset}) + limit ({limit}) "
                f"must not exceed {_SEARCH_CAP}. Narrow the filters to page further."
            )
        cache_key = json.dumps([raw_groups, sort_prop, descending, payload.get("query")], sort_keys=True, default=str)
        return _Search(groups, text, sort_prop, descending, self._requested(properties), limit, offset, cache_key)

    def _parse_sorts(self, raw: Any) -> tuple[str, bool]:
        if raw is None or raw == []:
            return "hs_object_id", False
        if not isinstance(raw, list):
            raise _bad_request("sorts must be a list.")
        if len(raw) > 1:
            raise _bad_request(f"Only one sort is allowed, got {len(raw)}.")
        (rule,) = raw
        if isinstance(rule, str):
            descending = rule.startswith("-")
            name = rule[1:] if descending else rule
        elif isinstance(rule, dict):
            name = rule.get("propertyName")
            direction = rule.get("direction", "ASCENDING")
            if direction not in ("ASCENDING", "DESCENDING"):
                raise _bad_request(f"Invalid sort direction {direction!r}: must be ASCENDING or DESCENDING.")
            descending = direction == "DESCENDING"
        else:
            raise _bad_request(f"Invalid sort {rule!r}.")
        if not isinstance(name, str) or name not in self._properties:
            raise _bad_request(f"Cannot sort on unknown property {name!r}.")
        return name, descending

    def _typed_getter(self, prop: _Property) -> Callable[[_Version], Any]:
        """A contact's value of `prop` as filters and sorts compare it; None when it has none."""
        special = {"hs_object_id": lambda v: v.id, "createdate": lambda v: v.created,
                   "lastmodifieddate": lambda v: v.modified}
        if prop.name in special:
            return special[prop.name]
        parse = {"number": float, "datetime": _parse_iso_ms}.get(prop.type, str.lower)
        name = prop.name

        def get(version: _Version) -> Any:
            raw = self._raw(version, name)
            return None if raw is None else parse(raw)

        return get

    def _filter_value(self, prop: _Property, value: Any) -> Any:
        if prop.type == "datetime":
            ms = _as_int(value)
            if ms is None:
                raise _bad_request(
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
                raise _bad_request(f"Invalid value {value!r} for number property {prop.name}.")
            return number
        if isinstance(value, (dict, list)) or value is None:
            raise _bad_request(f"Invalid value {value!r} for property {prop.name}.")
        return (json.dumps(value) if isinstance(value, bool) else str(value)).lower()

    def _compile_filter(self, raw: Any) -> _Filter:
        if not isinstance(raw, dict):
            raise _bad_request(f"Invalid filter {raw!r}.")
        name, op = raw.get("propertyName"), raw.get("operator")
        prop = self._properties.get(name) if isinstance(name, str) else None
        if prop is None:
            raise _bad_request(f"Unknown property {name!r} in filter.")
        if not isinstance(op, str) or op not in _OPERATORS:
            raise _bad_request(f"Unknown operator {op!r}; expected one of {sorted(_OPERATORS)}.")

        def required(key: str) -> Any:
            if raw.get(key) is None:
                raise _bad_request(f"Operator {op} on {prop.name} needs '{key}'.")
            return raw[key]

        get = self._typed_getter(prop)
        low = high = None
        test: Callable[[_Version], bool]
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            present = op == "HAS_PROPERTY"
            test = lambda v: (get(v) is not None) == present  # noqa: E731
        elif op in ("IN", "NOT_IN"):
            values = required("values")
            if not isinstance(values, list) or not values:
                raise _bad_request(f"Operator {op} on {prop.name} needs a non-empty list of 'values'.")
            allowed = {self._filter_value(prop, value) for value in values}
            inside = op == "IN"
            test = lambda v: (get(v) in allowed) == inside  # noqa: E731
        elif op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            matches = _token_matcher(str(required("value")).lower())
            wanted = op == "CONTAINS_TOKEN"
            # Negations also match contacts without a value.
            test = lambda v: ((raw_value := self._raw(v, name)) is not None and matches(raw_value.lower())) == wanted  # noqa: E731
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
        if prop.name in _INDEXED and low is not None:
            bound = _integer_range(op, low, high if high is not None else low)
        return _Filter(prop.name, test, bound)

    def _text_query(self, query: Any) -> Callable[[_Version], bool] | None:
        """HubSpot's free-text `query`: a token prefix of a default searchable property."""
        if query is None or query == "":
            return None
        if not isinstance(query, str):
            raise _bad_request("query must be a string.")
        needle = query.strip().lower()

        def test(version: _Version) -> bool:
            for name in _QUERY_PROPERTIES:
                value = self._raw(version, name)
                if value is not None and any(token.startswith(needle) for token in _tokens(value.lower())):
                    return True
            return False

        return test

    # ----------------------------------------------------------------- search index

    def _rebuild_index(self) -> None:
        self._mod_index = sorted((v.modified, v.tie, v.id) for v in self._indexed.values())
        self._mod_ids = [entry[2] for entry in self._mod_index]
        self._id_index = sorted(self._indexed)

    def _reindex(self, old: _Version | None, new: _Version | None) -> None:
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
        if self.search_lag_jitter_ms or self.search_drop_lag_ms:
            self._sync_index_unevenly()
            return
        horizon = self._now_locked() - self.search_lag_ms
        pending = self._pending
        if not pending or pending[0][0] > horizon:
            return
        changes = []
        while pending and pending[0][0] <= horizon:
            changes.append(pending.popleft())
        self._apply_to_index(changes)

    def _apply_to_index(self, changes: list[tuple[int, int, _Version | None]]) -> None:
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

    def _search_delay(self, written: int, cid: int, new: _Version | None) -> int:
        """How long after it was written search shows one write (see search_lag_jitter_ms)."""
        delay = self.search_lag_ms
        if self.search_lag_jitter_ms:
            delay += _mix(self._tie(cid) ^ written) % (self.search_lag_jitter_ms + 1)
        if new is None:
            delay += self.search_drop_lag_ms
        return delay

    def search_visible_at(self, id: str) -> int | None:
        """When search will show the latest write of contact `id` (sandbox ms), or None if
        search shows it already."""
        cid = _as_int(id)
        with self._lock:
            self._sync_index()
            due = [written + self._search_delay(written, pending_id, new)
                   for written, pending_id, new in self._pending if pending_id == cid]
        return max(due) if due else None

    def _sync_index_unevenly(self) -> None:
        """Like _sync_index when each write has its own lag: a write that shows replaces
        the earlier writes of its contact still waiting, so search never goes back."""
        now = self._now_locked()
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
        self._searches_answered += 1
        if search.sort_prop == "hs_object_id" or not ids:
            return ids
        get, indexed = self._typed_getter(self._properties[search.sort_prop]), self._indexed
        value = lambda position: get(indexed[ids[position]])  # noqa: E731
        low = min(search.offset, len(ids) - 1)
        high = min(search.offset + search.limit, len(ids)) - 1
        while low > 0 and value(low - 1) == value(low):
            low -= 1
        while high + 1 < len(ids) and value(high + 1) == value(high):
            high += 1
        salt = _mix(self._seed ^ (self._searches_answered * _GOLDEN & _MASK64))
        segment = ids[low:high + 1]
        runs: list[list[int]] = []
        for cid in segment:
            if runs and get(indexed[runs[-1][0]]) == get(indexed[cid]):
                runs[-1].append(cid)
            else:
                runs.append([cid])
        reordered = [cid for run in runs for cid in sorted(run, key=lambda c: _mix(indexed[c].tie ^ salt))]
        return [*ids[:low], *reordered, *ids[high + 1:]]

    def _listed_archived_ids(self) -> list[int]:
        """The archived ids the archived listing shows yet (see archived_list_lag_ms)."""
        shown_until = self._now_locked() - self.archived_list_lag_ms
        return [cid for cid in self._archived_ids if self._contacts[cid].archived_at <= shown_until]

    def _range(self, prop: str, low: int, high: int) -> list[int]:
        if prop == "hs_object_id":
            return self._id_index[bisect_left(self._id_index, low):bisect_right(self._id_index, high)]
        entries = self._mod_index
        return self._mod_ids[bisect_left(entries, (low,)):bisect_left(entries, (high + 1,))]

    def _scan(self, group: list[_Filter], text: Callable[[_Version], bool] | None) -> tuple[str, list[int]]:
        """Ids matching one filter group, and the property they are ordered by.

        Starts from the narrowest range an index can answer, then checks the rest per contact.
        """
        ranges: dict[str, tuple[int, int]] = {}
        for prop in _INDEXED:
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
        get, indexed = self._typed_getter(self._properties[name]), self._indexed

        def key(cid: int) -> tuple:
            version = indexed[cid]
            value = get(version)
            # Equal values fall back to the shuffled tie hash, never to id order.
            return (value is None, 0 if value is None else value, version.tie, cid)

        return key

    # ----------------------------------------------------------------- admin surface

    def _handle_admin(self, method: str, path: str, payload: Any, valid_json: bool) -> _Reply:
        """The unauthenticated /_sandbox/ surface for tests and benchmarks in another process."""
        body = payload if isinstance(payload, dict) else {}

        def ids() -> list[str]:
            if not isinstance(body.get("ids"), list):
                raise ValueError("'ids' must be a list of contact ids")
            return body["ids"]

        actions: dict[tuple[str, str], Callable[[], dict | None]] = {
            ("GET", "/_sandbox/truth"): lambda: {"now_ms": self.now_ms(), "live": self.live(), "archived": self.archived()},
            ("POST", "/_sandbox/contacts"): lambda: {"ids": self.create(body.get("count", 1), body.get("properties"))},
            ("POST", "/_sandbox/modify"): lambda: self.modify(ids(), body.get("properties")),
            ("POST", "/_sandbox/archive"): lambda: self.archive(ids()),
            ("POST", "/_sandbox/restore"): lambda: self.restore(ids()),
            ("POST", "/_sandbox/merge"): lambda: self.merge(str(body.get("primary")), str(body.get("secondary"))),
            ("POST", "/_sandbox/clock"): lambda: self._admin_clock(body),
            ("POST", "/_sandbox/config"): lambda: self._admin_config(body),
            ("POST", "/_sandbox/faults"): lambda: self.inject(Fault(**body)),
            ("DELETE", "/_sandbox/faults"): self.clear_faults,
            ("GET", "/_sandbox/stats"): lambda: {"requests": dict(self._counts)},
            ("POST", "/_sandbox/stats/reset"): self.reset_counters,
        }
        action = actions.get((method, path))
        try:
            if action is None:
                raise _error(404, f"No sandbox route for {method} {path}")
            if not valid_json or (payload is not None and not isinstance(payload, dict)):
                raise _bad_request("The body must be a JSON object.")
            result = action()
        except _ApiError as stop:
            return stop.reply
        except KeyError as missing:
            return _error(404, f"Not found: {missing}").reply
        except (TypeError, ValueError) as invalid:
            return _bad_request(str(invalid)).reply
        return _Reply(204, None) if result is None else _Reply(200, result)

    def _admin_clock(self, body: dict) -> dict:
        if "advance_ms" in body:
            self.advance(int(body["advance_ms"]))
        if "now_ms" in body:
            self.set_now(int(body["now_ms"]))
        return {"now_ms": self.now_ms()}

    def _admin_config(self, body: dict) -> dict:
        knobs: dict[str, Callable[[Any], Any]] = {
            "search_lag_ms": int, "search_rate_per_second": int, "general_rate_per_10s": int, "latency_ms": float,
            "reorder_ties_per_request": bool, "archived_list_lag_ms": int, "search_lag_jitter_ms": int,
            "search_drop_lag_ms": int, "date_skew_ms": int,
            "archived_at_is_modified": bool,
        }
        unknown = set(body) - set(knobs)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(knobs)}")
        for name, value in body.items():
            setattr(self, name, None if value is None else knobs[name](value))
        return {name: getattr(self, name) for name in knobs}


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    server_version = "HubSpotSandbox/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go in separate writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks would drown in request lines."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header is HubSpot's "now" for the service, so it follows the sandbox clock.
        return formatdate(self.server.sandbox.date_ms() / 1000, usegmt=True)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload, valid_json = _decode_json(self.rfile.read(length) if length else b"")
        target = urlsplit(self.path)
        sandbox = self.server.sandbox
        if target.path.startswith("/_sandbox/"):
            reply, truncate = sandbox._handle_admin(self.command, target.path, payload, valid_json), False
        else:
            request = _Request(
                self.command, self.path, target.path, parse_qs(target.query, keep_blank_values=True),
                self.headers.get("Authorization"), payload, valid_json, self.server.url,
            )
            reply, truncate = sandbox._handle_api(request)
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, str(value))
        if reply.status != 204:
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if truncate:
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sandbox: Sandbox, port: int) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name, which can stall offline.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections, so a stopped server stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up (timeouts, cut connections) are expected here, not errors.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class SandboxServer:
    """Serves a Sandbox over HTTP on 127.0.0.1 (never 0.0.0.0) in a daemon thread."""

    def __init__(self, sandbox: Sandbox, port: int = 0) -> None:
        self.sandbox = sandbox
        self.url = ""
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("the sandbox server is already running")
        self._httpd = _Server(self.sandbox, self._port)
        self.url = self._httpd.url
        # A short poll interval keeps stop() quick; tests start many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="hubspot-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.sandbox", description="Serve a fake HubSpot portal.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1")
    parser.add_argument("--contacts", type=int, default=3000, help="contacts in all, 2%% of them deleted")
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same portal")
    parser.add_argument("--token", default="sandbox-token", help="the access token it accepts")
    parser.add_argument("--search-lag-ms", type=int, default=0,
                        help="how long a write takes to show in search")
    args = parser.parse_args(argv)
    sandbox = Sandbox(contacts=args.contacts, seed=args.seed, token=args.token)
    sandbox.search_lag_ms = args.search_lag_ms
    with SandboxServer(sandbox, args.port) as server:
        print(f"HubSpot sandbox serving {args.contacts} contacts ({len(sandbox.archived())} of them "
              f"deleted) at {server.url} "
              f"(Authorization: Bearer {sandbox.token}); Ctrl-C stops it.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
