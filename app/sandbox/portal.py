"""The portal: one Sandbox holding every object type's store, the clock, the knobs, and the API."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from .common import (
    _AUTH_MESSAGE, _DEFAULT_LIMIT, _LIST_MAX_LIMIT, _LOG_LIMIT, _MAX_TARGET, _NEG_INF, _ApiError,
    _bad_request, _error, _int_param, _Reply, _Request,
)
from .faults import Fault, _Gate
from .objects import CONTACTS, _custom_property
from .store import _Store

_ROUTES = {
    ("GET", "/crm/v3/properties/contacts"): "properties",
    ("GET", "/crm/v3/objects/contacts"): "list",
    ("POST", "/crm/v3/objects/contacts/search"): "search",
}


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
        self._frozen_at = now_ms
        self._offset = 0
        self._last_now = 0
        self._start_ms = self._now_locked()

        contacts_type = dataclasses.replace(
            CONTACTS, properties=(*CONTACTS.properties, *map(_custom_property, range(1, custom_properties + 1))))
        self._stores: dict[str, _Store] = {"contacts": _Store(self, contacts_type, seed, random.Random(seed))}

        self._gate = _Gate(self._lock)
        self._hook: Callable[[int], None] | None = None
        self._hook_count = 0
        self._counts: dict[str, int] = dict.fromkeys(("search", "list", "properties"), 0)

        self._stores["contacts"].seed(contacts, archived_fraction)

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

    # ----------------------------------------------------------------- records

    def _store(self, object_type: str) -> _Store:
        store = self._stores.get(object_type)
        if store is None:
            raise KeyError(f"no object type {object_type!r}")
        return store

    def create(self, count: int = 1, properties: dict | None = None, *, object_type: str = "contacts") -> list[str]:
        """Create `count` records at the current ms (so they tie); unset properties are generated."""
        return self._store(object_type).create(count, properties)

    def modify(self, ids: Iterable[str], properties: dict | None = None, *, object_type: str = "contacts") -> None:
        """Set properties (None or "" clears one) and the modification time=now; KeyError for unknown or archived ids."""
        self._store(object_type).modify(ids, properties)

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
        self._store(object_type).merge(primary, secondary)

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
        with self._lock:
            # A copy: its skip/times count down as requests hit it.
            self._gate.faults.append(dataclasses.replace(fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._gate.faults.clear()

    def reset_counters(self) -> None:
        """Clear request_log and the per-endpoint request counts."""
        with self._lock:
            self.request_log.clear()
            self._counts = dict.fromkeys(self._counts, 0)

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
            fault = self._gate.take_fault(endpoint)
            if fault is not None:
                if fault.kind == "hang":
                    time.sleep(fault.seconds)
                elif fault.kind == "close":
                    truncate = True
                else:
                    raise _ApiError(fault._reply())
            headers = self._gate.admit(endpoint, self.search_rate_per_second, self.general_rate_per_10s)
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
        return _Reply(200, {"results": self._stores["contacts"].catalogue})

    # ----------------------------------------------------------------- list API

    def _list_reply(self, request: _Request) -> _Reply:
        query = request.query
        limit = _int_param(query.get("limit", [None])[-1], "limit", _DEFAULT_LIMIT, 1, _LIST_MAX_LIMIT)
        archived = query.get("archived", ["false"])[-1].lower()
        if archived not in ("true", "false"):
            raise _bad_request(f"Invalid value {archived!r} for 'archived': must be true or false.")
        after = self._decode_after(query.get("after", [None])[-1])
        store = self._stores["contacts"]
        names = store._requested(query.get("properties"))
        with self._lock:
            results, last = store.list_page(archived == "true", after, limit, names)
        body: dict[str, Any] = {"results": results}
        if last is not None:
            token = base64.urlsafe_b64encode(str(last).encode()).decode().rstrip("=")
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
        with self._lock:
            total, results, end = self._stores["contacts"].search(request.payload)
        body: dict[str, Any] = {"total": total, "results": results}
        if end < total:
            body["paging"] = {"next": {"after": str(end)}}
        return _Reply(200, body)
