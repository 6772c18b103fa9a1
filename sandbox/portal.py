"""The portal: one Sandbox holding every object type's store, the clock, the knobs, and the API."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import random
import re
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from .associations import PAGE_SIZE as _ASSOCIATION_PAGE
from .associations import Associations, associated, none_found
from .batch import Source, batch_read_reply
from .clock import Clock
from .common import (
    DAY_MS,
    DEFAULT_LIMIT,
    NEG_INF,
    ApiError,
    Reply,
    Request,
    api_error,
    as_int,
    bad_request,
    correlate,
    error_body,
    int_param,
    iso,
)
from .faults import DELIVERED, Fault, Gate
from .objects import (
    CONTACTS,
    CUSTOM_TYPES,
    OBJECT_TYPES,
    SHARE_OF_CONTACTS,
    ObjectType,
    Property,
    custom_property,
    realistic_properties,
)
from .reference import OWNERS_SCOPE, SCOPES, Reference
from .search import tie_salts
from .store import Store

# (method, path pattern) -> endpoint; the groups are object types, then a record id.
_ROUTES = (
    ("GET", re.compile(r"/crm/v3/properties/([^/]+)"), "properties"),
    ("GET", re.compile(r"/crm/v3/objects/([^/]+)"), "list"),
    ("POST", re.compile(r"/crm/v3/objects/([^/]+)/search"), "search"),
    ("GET", re.compile(r"/crm/v3/objects/([^/]+)/([^/]+)"), "read"),
    ("GET", re.compile(r"/crm/v3/schemas"), "schemas"),
    ("POST", re.compile(r"/crm/v4/associations/([^/]+)/([^/]+)/batch/read"), "associations"),
    ("POST", re.compile(r"/crm/v3/objects/([^/]+)/batch/read"), "batch-read"),
    # Reference data (sandbox.reference).
    ("GET", re.compile(r"/crm/v3/owners"), "owners"),
    ("GET", re.compile(r"/crm/v3/pipelines/([^/]+)"), "pipelines"),
    ("GET", re.compile(r"/crm/v3/properties/([^/]+)/groups"), "property_groups"),
)
_TYPE_GROUPS = {"properties": 1, "list": 1, "search": 1, "read": 1, "schemas": 0, "associations": 2,
                "batch-read": 1, "owners": 0, "pipelines": 1, "property_groups": 1}
PORTAL_ID = 24_601_042
_LIST_MAX_LIMIT = 100
_MAX_TARGET = 16_000
_LOG_LIMIT = 100_000
_MAX_BATCH_INPUTS = 1_000
_SCHEMAS_SCOPE = "crm.schemas.custom.read"
GENERAL_RATE_PER_SECOND = 11  # HubSpot's per-second limit of a private app's calls (X-HubSpot-RateLimit-Secondly)
ALL_SCOPES = frozenset({_SCHEMAS_SCOPE, OWNERS_SCOPE,
                        *(scope for object_type in OBJECT_TYPES for scope in object_type.scopes)})
_SCOPES_LINK = "https://developers.hubspot.com/scopes"
_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class Sandbox:
    """State and behaviour of a fake HubSpot portal.  Thread-safe: one lock guards all state.

    Object types: `object_types` lists them (contacts first; "cars" is the custom object,
    objectTypeId 2-3508482).  Every record method (create, modify, archive,
    modify_and_archive, restore, merge, live, archived, merged, record, search_visible_at)
    concerns contacts unless given `object_type=` (a name, an objectTypeId or a custom
    object's fully qualified name); contact(id) is record(id).  Sandbox(contacts=N) seeds N
    contacts and a share of N of each other type (companies N/10, deals N/5, ...: see
    SHARE_OF_CONTACTS), unless objects={"deals": 50_000, ...} says otherwise; the other
    types are seeded on first use, so a portal only used for contacts costs what it did.
    realistic_catalogues=True gives contacts, companies and deals a real portal's property
    catalogue: 247 contact properties (72 datetimes) with the 20 custom_properties of the
    default, 190 of companies, 150 of deals (see objects.REALISTIC_SIZES); most records
    leave most of them unset (null when asked for). Off by default, as an export asking for
    all of them takes over half as long again (`python -m app --sandbox` and the sandbox's
    command line turn it on): the catalogues then hold the few properties the sandbox
    generates values for, and the custom ones.
    associations(from_type, from_id, to_type) is the truth of the v4 associations;
    associate()/dissociate() change them without moving any modification time.
    create() and modify() take `source=` (batch.Source: sourceType, sourceId, label, user) for
    the history the v3 batch read serves with propertiesWithHistory (`batch.py`).
    `reference` (sandbox.reference) holds the owners, pipelines, property groups and archived
    property definitions, and changes them (add_owner, update_owner, deactivate_owner,
    reactivate_owner, archive_pipeline; over HTTP at /_sandbox/reference/).

    The clock is frozen at `now_ms` when given (it moves only by advance()/set_now()), else it
    follows the wall clock plus what advance() added.  Writes take effect at the current
    sandbox ms.  The knobs below are plain attributes, settable at any time (also over HTTP at
    /_sandbox/config):

    * search_lag_ms: a write becomes visible to search this long (sandbox clock) after it happened;
    * search_rate_per_second: searches admitted per rolling real second (None: unlimited), beyond -> 429;
    * search_window: how that second counts: "admitted" (the searches let through in the
      last second), "arrivals" (every search that arrived in the last 1000 ms, the
      refused ones too, as a gateway that counts requests does) or "sliding" (the same,
      stamped in whole ms at receipt and inclusive at both ends, as an independent fake
      HubSpot counted: an arrival exactly a second after another still meets it);
    * search_jitter_ms: each search reaches that limit after a random 0..this many ms of
      real time (network and threads: arrivals bunch though the client spaced them);
    * general_rate_per_10s: the same for every other call (list, read, properties, schemas,
      associations) per rolling 10 s, with X-HubSpot-RateLimit headers;
    * general_rate_per_second: while general_rate_per_10s is on, those calls are also limited
      per rolling real second (default 11, a private app's; None: not), beyond -> 429
      SECONDLY, their answers carrying X-HubSpot-RateLimit-Secondly(-Remaining);
    * latency_ms: a real sleep before every API response, for benchmarks;
    * archived_at_is_modified: archivedAt shows the record's last-modified time instead of
      its deletion time, as HubSpot's changelog says it did for contacts.
    * epoch_ms_modified: the modification property the walk keys on (lastmodifieddate,
      hs_lastmodifieddate) comes as epoch milliseconds in a string ("1717200000000") in
      search results, reads and listings, as real HubSpot sends some datetime properties
      (off: ISO-8601, as most of its answers); updatedAt stays ISO-8601.
    * scopes: the read scopes the token has (all of ALL_SCOPES by default); a request for a
      type none of whose scopes the token has is HubSpot's 403 MISSING_SCOPES.

    HubSpot's worst habits, each off by default (the quick start and most tests keep the
    kinder portal) and switched on by the tests that need them:

    * reorder_ties_per_request: records that share a sort value come back in a different
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
        objects: Mapping[str, int] | None = None,
        realistic_catalogues: bool = False,
        epoch_ms_modified: bool = False,
    ) -> None:
        if contacts < 0 or custom_properties < 0 or not 0 <= archived_fraction <= 1:
            raise ValueError("contacts and custom_properties must be >= 0 and archived_fraction within [0, 1]")
        counts = {name: contacts // share for name, share in SHARE_OF_CONTACTS.items()}
        for name, count in (objects or {}).items():
            if name not in counts or count < 0:
                raise ValueError(f"objects must map the other types {sorted(counts)} to counts >= 0, not {name!r}")
            counts[name] = count
        self.token = token
        self.search_lag_ms: int = 0
        self.search_rate_per_second: int | None = None
        self.general_rate_per_10s: int | None = None
        self.general_rate_per_second: int | None = GENERAL_RATE_PER_SECOND
        self.search_window: str = "admitted"
        self.search_jitter_ms: float = 0
        self.latency_ms: float = 0
        self.reorder_ties_per_request: bool = False
        self.archived_list_lag_ms: int = 0
        self.search_lag_jitter_ms: int = 0
        self.search_drop_lag_ms: int = 0
        self.date_skew_ms: int = 0
        self.archived_at_is_modified: bool = False
        self.epoch_ms_modified: bool = epoch_ms_modified
        self.scopes: set[str] = set(ALL_SCOPES)
        self.request_log: list[dict] = []
        self.answer_bytes = 0  # bytes of API answers the HTTP server wrote (see count_bytes)

        self._clock = Clock(now_ms)
        self._lock = self._clock.lock
        # One sequence for all types: the tie order changes with every search, of any type.
        salts = tie_salts(seed)

        def catalogued(object_type: ObjectType, *custom: Property) -> ObjectType:
            extra = realistic_properties(object_type) if realistic_catalogues else ()
            return dataclasses.replace(object_type, properties=(*object_type.properties, *extra, *custom))

        contacts_type = catalogued(CONTACTS, *map(custom_property, range(1, custom_properties + 1)))
        # The stores see the clock and this portal's knobs (self), nothing else of it.
        self._stores: dict[str, Store] = {
            "contacts": Store(contacts_type, seed, random.Random(seed), self._clock, self, salts)}
        for object_type in map(catalogued, OBJECT_TYPES[1:]):
            store = Store(object_type, seed, random.Random(f"{seed}/{object_type.name}"), self._clock, self, salts)
            # Seeded on first use: most tests never touch a type but contacts.
            store.unseeded = (counts[object_type.name], archived_fraction)
            self._stores[object_type.name] = store
        # Every name HubSpot takes for a type: its name, its objectTypeId, and a custom
        # object's fully qualified name.
        self._aliases: dict[str, str] = {}
        for object_type in OBJECT_TYPES:
            self._aliases.update(dict.fromkeys((object_type.name, object_type.type_id), object_type.name))
        for object_type in CUSTOM_TYPES:
            self._aliases[f"p{PORTAL_ID}_{object_type.name}"] = object_type.name

        self._associations = Associations(self._store)
        self.reference = Reference(self._clock)  # owners, pipelines, property groups
        self._gate = Gate()
        self._hook: Callable[[int], None] | None = None
        self._hook_count = 0
        self._counts: dict[str, int] = dict.fromkeys(_TYPE_GROUPS, 0)

        self._stores["contacts"].seed(contacts, archived_fraction)

    # ----------------------------------------------------------------- clock

    def now_ms(self) -> int:
        """The sandbox's current time in epoch ms (frozen, or the wall clock plus advances)."""
        return self._clock.now_ms()

    def date_ms(self) -> int:
        """HubSpot's clock as its Date header tells it: now, skewed by date_skew_ms."""
        return self.now_ms() + self.date_skew_ms

    def advance(self, ms: int) -> None:
        """Move the clock forward by `ms`."""
        self._clock.advance(ms)

    def set_now(self, ms: int) -> None:
        """Move the clock forward to `ms`; ValueError if that is in the past."""
        self._clock.set_now(ms)

    # ----------------------------------------------------------------- records

    @property
    def object_types(self) -> list[str]:
        """The names of the object types the portal serves, contacts first."""
        return list(self._stores)

    def summary(self) -> str:
        """What the portal holds, for one log line: records per type, deleted ones in brackets."""
        with self._lock:
            counts = [(name, *store.counts()) for name, store in self._stores.items()]
        return ", ".join(f"{live + archived} {name} ({archived} deleted)" for name, live, archived in counts)

    def _store(self, object_type: str) -> Store:
        """The store of a type by any of its names; KeyError for a type the portal lacks."""
        name = self._aliases.get(object_type)
        if name is None:
            raise KeyError(f"no object type {object_type!r}; the portal has {self.object_types}")
        store = self._stores[name]
        if store.unseeded is not None:
            with self._lock:
                if store.unseeded is not None:
                    store.seed(*store.unseeded)
                    store.unseeded = None
        return store

    def create(self, count: int = 1, properties: dict | None = None, *, object_type: str = "contacts",
               source: Source | None = None) -> list[str]:
        """Create `count` records at the current ms (so they tie); unset properties are generated.
        `source` (batch.Source) wrote the properties given, for their history (the API's by default)."""
        return self._store(object_type).create(count, properties, source)

    def modify(self, ids: Iterable[str], properties: dict | None = None, *, object_type: str = "contacts",
               source: Source | None = None, raw: bool = False) -> None:
        """Set properties (None or "" clears one) and the modification time=now; KeyError for
        unknown or archived ids. `source` (batch.Source) wrote them, for their history.
        ``raw``: the values as given, unchecked against their types (what a portal holds from
        an import: "n/a" in a number, "31.02.2024" in a date)."""
        self._store(object_type).modify(ids, properties, source, raw)

    def archive(self, ids: Iterable[str], *, object_type: str = "contacts") -> None:
        """Archive (HubSpot's delete) live records at now; search drops them once the lag passes."""
        self._store(object_type).archive(ids)

    def modify_and_archive(self, ids: Iterable[str], properties: dict | None = None, *,
                           object_type: str = "contacts") -> None:
        """Modify live records and archive them on the same millisecond: their modification
        time and archivedAt are equal (HubSpot's bulk clean-ups do this)."""
        self._store(object_type).modify_and_archive(ids, properties)

    def restore(self, ids: Iterable[str], *, object_type: str = "contacts") -> None:
        """Un-archive records, setting the modification time=now."""
        self._store(object_type).restore(ids)

    def merge(self, primary: str, secondary: str, *, object_type: str = "contacts") -> None:
        """Merge live record `secondary` into live record `primary`, as HubSpot does: the
        secondary vanishes (not archived: it leaves search, the list API and the archived
        list), the primary's hs_merged_object_ids gains it (and what had been merged into
        it) and its modification time moves to now."""
        store = self._store(object_type)
        with self._lock:
            store.merge(primary, secondary)
            self._associations.merged(store.object_type.name, int(primary), int(secondary))

    def merged(self, object_type: str = "contacts") -> dict[str, list[str]]:
        """Live record id -> the ids merged into it (hs_merged_object_ids), for those that have any."""
        return self._store(object_type).merged()

    def live(self, object_type: str = "contacts") -> dict[str, int]:
        """id -> modification time ms of every live record, as of now (no lag)."""
        return self._store(object_type).live()

    def archived(self, object_type: str = "contacts") -> dict[str, int]:
        """id -> archivedAt ms of every archived record."""
        return self._store(object_type).archived()

    def record(self, id: str, object_type: str = "contacts") -> dict:
        """The current HubSpot-shaped object with every property, archived or not (for a
        merged-away id, its survivor, as HubSpot answers); KeyError if unknown."""
        return self._store(object_type).record(id)

    def contact(self, id: str) -> dict:
        """record() of a contact."""
        return self.record(id)

    def associations(self, from_type: str, from_id: str, to_type: str) -> list[tuple[str, list[dict]]]:
        """(id, association types) of every live `to_type` record associated with record
        `from_id`, in id order: the truth the v4 batch read pages through."""
        with self._lock:
            self._store(from_type).existing([from_id], live=True)
            names = self._store(from_type).object_type.name, self._store(to_type).object_type.name
            return [(str(to_id), types) for to_id, types in
                    self._associations.associated(names[0], int(from_id), names[1])]

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, label: str | None = None) -> None:
        """Associate two live records (with the association type labelled `label`, or the
        unlabelled default), as HubSpot does: neither record's modification time moves."""
        self._change_association(from_type, from_id, to_type, to_id, label, add=True)

    def dissociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Remove every association between two records; no modification time moves."""
        self._change_association(from_type, from_id, to_type, to_id, None, add=False)

    def _change_association(self, from_type: str, from_id: str, to_type: str, to_id: str, label: str | None,
                            add: bool) -> None:
        with self._lock:
            (a,), (b,) = self._store(from_type).existing([from_id], live=True), self._store(to_type).existing(
                [to_id], live=True)
            self._associations.change(self._store(from_type).object_type.name, a.id,
                                      self._store(to_type).object_type.name, b.id, label, add)

    def search_visible_at(self, id: str, object_type: str = "contacts") -> int | None:
        """When search will show the latest write of record `id` (sandbox ms), or None if
        search shows it already."""
        return self._store(object_type).search_visible_at(id)

    # ----------------------------------------------------------------- hooks, faults, log

    def on_search_page(self, callback: Callable[[int], None] | None) -> None:
        """Call callback(n) after the n-th successful search page since now is computed, before it is sent."""
        with self._lock:
            self._hook = callback
            self._hook_count = 0

    def inject(self, fault: Fault) -> None:
        """Arm a fault; several are tried in injection order and at most one hits a request."""
        self._gate.inject(fault)

    def clear_faults(self) -> None:
        self._gate.clear()

    def request_counts(self) -> dict[str, int]:
        """API requests per endpoint since the last reset_counters() (what /_sandbox/stats tells)."""
        with self._lock:
            return dict(self._counts)

    def reset_counters(self) -> None:
        """Clear request_log and the per-endpoint request counts."""
        with self._lock:
            self.request_log.clear()
            self._counts = dict.fromkeys(self._counts, 0)
            self.answer_bytes = 0

    def count_bytes(self, written: int) -> None:
        """The HTTP server wrote ``written`` more bytes of API answers (status line, headers
        and body): how much of an endless or huge answer a client took before it stopped."""
        with self._lock:
            self.answer_bytes += written

    def _record(self, request: Request, endpoint: str | None, status: int) -> None:
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

    # ----------------------------------------------------------------- API entry point

    @staticmethod
    def _route(request: Request) -> tuple[str | None, tuple[str, ...]]:
        for method, pattern, endpoint in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return endpoint, match.groups()
        return None, ()

    def _resolve(self, name: str) -> Store:
        """The store a type named in a URL stands for; HubSpot's 400 for a name it does not know."""
        try:
            return self._store(name)
        except KeyError:
            raise bad_request(f"Unable to infer object type from: {name}") from None

    def handle_api(self, request: Request) -> tuple[Reply, Fault | None]:
        """The reply to one API request, and the fault that says how to write it when the
        HTTP server must misbehave itself (kinds in `faults.DELIVERED`: cut short, trickled,
        endless, huge or raw)."""
        received = time.monotonic()  # when HubSpot's gateway would count it
        endpoint, params = self._route(request)
        delivery: Fault | None = None
        try:
            if len(request.target) > _MAX_TARGET:
                raise api_error(414, f"URI Too Long: the request line is {len(request.target)} characters; "
                                  f"the limit is {_MAX_TARGET}.")
            if endpoint is None:
                raise api_error(404, f"No route for {request.method} {request.path}")
            self._authenticate(request)
            split = _TYPE_GROUPS[endpoint]
            stores = [self._resolve(name) for name in params[:split]]
            self._check_scopes([store.object_type.scopes for store in stores]
                               or [SCOPES.get(endpoint, (_SCHEMAS_SCOPE,))])
            fault = self._gate.take_fault(endpoint)
            if fault is not None:
                if fault.kind == "hang":
                    time.sleep(fault.seconds)
                elif fault.kind in ("close", "trickle"):
                    delivery = fault
                elif fault.kind in DELIVERED:  # the server writes all of it
                    delivery = fault
                    raise ApiError(Reply(fault.status if fault.kind == "raw" else 200, None,
                                         dict(fault.headers or {})))
                else:
                    raise ApiError(fault.reply())
            # Counted when it was received, as HubSpot's gateway counts, however long this
            # thread then took to get here (on a loaded machine, hundreds of ms); then the
            # latency, as HubSpot's servers take their time.
            headers = self._gate.admit(endpoint, self.search_rate_per_second, self.general_rate_per_10s,
                                       self.general_rate_per_second, self.search_window, self.search_jitter_ms,
                                       received)
            if self.latency_ms > 0:
                time.sleep(self.latency_ms / 1000)
            reply = {"search": self._search_reply, "list": self._list_reply, "properties": self._properties_reply,
                     "read": self._read_reply, "schemas": self._schemas_reply,
                     "associations": self._associations_reply, "batch-read": batch_read_reply,
                     "owners": self._reference_reply, "pipelines": self._reference_reply,
                     "property_groups": self._reference_reply,
                     }[endpoint](request, *stores, *params[split:])
            reply.headers.update(headers)
        except ApiError as stop:
            reply = stop.reply
        correlate(reply)
        answered = reply.status == 200
        truncate = delivery is not None and delivery.kind == "close"
        if truncate:
            reply.status = 200
        self._record(request, endpoint, reply.status)
        if endpoint == "search" and answered and (delivery is None or delivery.kind == "trickle"):
            self._search_answered()
        return reply, delivery

    def _authenticate(self, request: Request) -> None:
        if "hapikey" in request.query:
            raise api_error(401, "API keys were retired on November 30, 2022 and are no longer accepted; "
                              "use a private app access token: Authorization: Bearer <token>.")
        scheme, _, credentials = (request.authorization or "").partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.token:
            raise api_error(401, _AUTH_MESSAGE)

    def _check_scopes(self, needed: list[tuple[str, ...]]) -> None:
        """HubSpot's 403 when the token lacks every scope of one of the alternatives needed."""
        missing = [scopes for scopes in needed if not self.scopes & set(scopes)]
        if missing:
            raise api_error(403, "This app hasn't been granted all required scopes to make this call. "
                              f"Read more about required scopes here: {_SCOPES_LINK}.",
                         # The key HubSpot's current answers use (community-quoted 403s of 2025-26);
                         # older answers said requiredScopes.
                         errors=[{"message": "One or more of the following scopes are required.",
                                  "context": {"requiredGranularScopes": list(scopes)}}
                                 for scopes in dict.fromkeys(missing)],
                         links={"scopes": _SCOPES_LINK})

    def _properties_reply(self, request: Request, store: Store) -> Reply:
        if self._archived_param(request):
            return Reply(200, {"results": self.reference.archived_definitions(store.object_type.name,
                                                                              store.object_type.group)})
        return Reply(200, {"results": store.catalogue})

    def _reference_reply(self, request: Request, store: Store | None = None) -> Reply:
        """Owners, a type's pipelines or its property groups (sandbox.reference)."""
        if store is None:
            return self.reference.owners_reply(request)
        if request.path.endswith("/groups"):
            return self.reference.groups_reply(store.catalogue)
        return self.reference.pipelines_reply(store.object_type.name)

    def _read_reply(self, request: Request, store: Store, id: str) -> Reply:
        """GET /crm/v3/objects/{type}/{id}: one record (a merged-away id answers with its survivor)."""
        archived = self._archived_param(request)
        names = store.requested(request.query.get("properties"))
        with self._lock:
            version = store.current(id)
            if version is None or (version.archived_at is not None) != archived:
                raise api_error(404, "Object not found.  objectId are usually numeric.", context={"id": [id]})
            return Reply(200, store.render(version, names))

    def _schemas_reply(self, request: Request) -> Reply:
        """GET /crm/v3/schemas: the portal's custom object types."""
        return Reply(200, {"results": [self._schema(self._stores[t.name]) for t in CUSTOM_TYPES]})

    def _schema(self, store: Store) -> dict:
        object_type = store.object_type
        stamp = iso(self._clock.start_ms - 400 * DAY_MS)
        shown = [name for name in object_type.default_properties if name not in object_type.always]
        return {
            "id": object_type.type_id.split("-")[1],
            "objectTypeId": object_type.type_id,
            "fullyQualifiedName": f"p{PORTAL_ID}_{object_type.name}",
            "name": object_type.name,
            "labels": {"singular": object_type.singular.title(), "plural": object_type.name.title()},
            "primaryDisplayProperty": shown[0],
            "secondaryDisplayProperties": shown[1:],
            "requiredProperties": shown[:1],
            "searchableProperties": list(object_type.query_properties),
            "properties": store.catalogue,
            "associations": [],
            "allowsSensitiveProperties": False,
            "metaType": "PORTAL_SPECIFIC",
            "archived": False,
            "createdAt": stamp,
            "updatedAt": stamp,
        }

    # ----------------------------------------------------------------- list API

    @staticmethod
    def _archived_param(request: Request) -> bool:
        archived = request.query.get("archived", ["false"])[-1].lower()
        if archived not in ("true", "false"):
            raise bad_request(f"Invalid value {archived!r} for 'archived': must be true or false.")
        return archived == "true"

    def _list_reply(self, request: Request, store: Store) -> Reply:
        query = request.query
        limit = int_param(query.get("limit", [None])[-1], "limit", DEFAULT_LIMIT, 1, _LIST_MAX_LIMIT)
        archived = self._archived_param(request)
        after = self._decode_after(query.get("after", [None])[-1])
        names = store.requested(query.get("properties"))
        with self._lock:
            results, last = store.list_page(archived, after, limit, names)
        body: dict[str, Any] = {"results": results}
        if last is not None:
            token = self._encode_after(last)
            link_query = {**query, "after": [token]}
            link = f"{request.base_url}{request.path}?{urlencode(link_query, doseq=True)}"
            body["paging"] = {"next": {"after": token, "link": link}}
        return Reply(200, body)

    @staticmethod
    def _encode_after(last: int) -> str:
        return base64.urlsafe_b64encode(str(last).encode()).decode().rstrip("=")

    @staticmethod
    def _decode_after(token: str | None) -> int:
        if token is None:
            return NEG_INF
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            text = ""
        if not text.isdigit():
            raise bad_request(f"Invalid paging cursor 'after': {token!r}")
        return int(text)

    # ----------------------------------------------------------------- search API

    def _search_reply(self, request: Request, store: Store) -> Reply:
        if not request.valid_json:
            raise bad_request("Invalid input JSON: the request body is not valid JSON.")
        with self._lock:
            total, results, end = store.search(request.payload)
        body: dict[str, Any] = {"total": total, "results": results}
        if end < total:
            body["paging"] = {"next": {"after": str(end)}}
        return Reply(200, body)

    # ----------------------------------------------------------------- associations v4

    def _associations_reply(self, request: Request, source: Store, target: Store) -> Reply:
        """POST /crm/v4/associations/{from}/{to}/batch/read: each input's associated records,
        a page of them per input; 207 with an error per input that has none."""
        inputs = request.payload.get("inputs") if isinstance(request.payload, dict) else None
        if not request.valid_json or not isinstance(inputs, list) or not all(
                isinstance(item, dict) and isinstance(item.get("id"), (str, int)) for item in inputs):
            raise bad_request('Invalid input JSON: expected {"inputs": [{"id": "…", "after": "…"?}, …]}.')
        if len(inputs) > _MAX_BATCH_INPUTS:
            raise bad_request(f"Too many inputs: a batch holds at most {_MAX_BATCH_INPUTS}, got {len(inputs)}.")
        started = iso(self.now_ms())
        results, errors = [], []
        with self._lock:
            for item in inputs:
                from_id = str(item["id"])
                after = self._decode_after(item.get("after"))
                cid = as_int(from_id)
                linked = [] if cid is None or not source.is_live(cid) else self._associations.associated(
                    source.object_type.name, cid, target.object_type.name)
                if not linked:
                    errors.append(error_body(
                        f"No {target.object_type.singular} is associated with {source.object_type.singular} {from_id}.",
                        "OBJECT_NOT_FOUND", subCategory="crm.associations.NO_ASSOCIATIONS_FOUND",
                        context=none_found(from_id, source.object_type, target.object_type), errors=[], links={}))
                    continue
                start = bisect_right([to_id for to_id, _ in linked], after)
                page = linked[start:start + _ASSOCIATION_PAGE]
                result: dict[str, Any] = {"from": {"id": from_id}, "to": [
                    associated(to_id, types) for to_id, types in page]}
                if start + _ASSOCIATION_PAGE < len(linked):
                    result["paging"] = {"next": {"after": self._encode_after(page[-1][0])}}
                results.append(result)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": iso(self.now_ms())}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        return Reply(207 if errors else 200, body)
