"""HubSpot CRM client: search, archived listing and property catalogue of every object type,
custom object schemas, and v4 association reads.

One pooled HTTP session per service, Bearer authentication, connect and read timeouts on
every call, a client-side request budget shared by all concurrent exports (search has its
own, smaller one), and bounded retries with backoff for what HubSpot says is passing (429,
423, 5xx, broken connections). Every failure that remains becomes an `UpstreamError` that
says what went wrong, never with the token in it.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import orjson
import requests
import tenacity
from pyrate_limiter import Duration, Limiter, Rate
from requests.adapters import HTTPAdapter

from .config import Settings
from .continuation import ALL_IDS, MAX_MS, Query
from .errors import UpstreamError
from .metrics import Metrics
from .objects import CONTACTS, SCHEMAS_SCOPE, ObjectType, standard_types
from .redact import Redactor, quote

log = logging.getLogger(__name__)

ID_PROPERTY = "hs_object_id"
MERGED_PROPERTY = "hs_merged_object_ids"  # the ids merged into a record, ';'-separated
SUCCESS_STATUS = frozenset({200, 207})  # 207: a batch where some inputs had nothing to return
RETRYABLE_STATUS = frozenset({423, 429, 500, 502, 503, 504})
PORTAL_EPOCH_MS = 1_136_073_600_000  # 2006-01-01, HubSpot's founding: no portal data before


@dataclass(frozen=True)
class Page:
    """One page of HubSpot results, and HubSpot's clock when it answered (epoch ms)."""

    results: list[dict[str, Any]]
    has_more: bool
    server_ms: int
    total: int | None = None
    calls: int = 1  # HubSpot requests it took, retries included


def search_body(
    query: Query, modified_property: str, properties: list[str], limit: int, offset: int = 0
) -> dict[str, Any]:
    """The search request of one step of the keyset walk (see `continuation.Query`); an
    offset only to read ahead within it (see `continuation.join_overlapping`)."""
    ms, last_id = query.after

    def where(operator: str, value: int, name: str = modified_property) -> dict[str, str]:
        return {"propertyName": name, "operator": operator, "value": str(value)}

    if query.kind == "tie":
        groups = [[where("EQ", ms), where("GT", last_id, ID_PROPERTY)]]
        sort = ID_PROPERTY
    else:
        upper = [] if query.horizon_ms >= MAX_MS else [where("LTE", query.horizon_ms)]
        if last_id == -1:  # all of millisecond `ms` is still to come
            groups = [[where("GTE", ms), *upper]]
        else:
            groups = [[where("GTE", ms + 1), *upper]]
            if last_id < ALL_IDS:  # the rest of millisecond `ms`
                groups.insert(0, [where("EQ", ms), where("GT", last_id, ID_PROPERTY)])
        sort = modified_property
    body = {
        "filterGroups": [{"filters": filters} for filters in groups],
        "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
        "properties": properties,
        "limit": limit,
    }
    if offset:
        body["after"] = str(offset)
    return body


def _server_ms(response: requests.Response) -> int:
    """HubSpot's clock from the Date header (whole seconds, so never ahead of HubSpot).

    A clock before HubSpot existed would put the export's horizon before any contact's
    modification time: an empty answer that looks complete. It is HubSpot's failure."""
    try:
        ms = int(email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()) * 1000
    except (KeyError, TypeError, ValueError):
        return int(time.time() * 1000)
    if ms < PORTAL_EPOCH_MS:
        raise UpstreamError(502, "HubSpot's clock unusable",
                            f"HubSpot's Date header says {quote(response.headers['Date'], 60)}, "
                            "before any HubSpot portal held data: the export would be empty.")
    return ms


class Budget:
    """A client-side request budget (pyrate-limiter's) whose slots go to the callers in the
    order they asked for them.

    pyrate-limiter lets every blocked caller sleep until the slot it computed and then race
    the others for it. An export hands its pages over in the order it requested them, so a
    page that loses that race to pages requested after it holds them all up until the next
    window: at 5 searches/s and 400 ms latency that idled the budget for half a second in
    every other second (bench B2). Here one caller at a time waits in the limiter; the
    others wait their turn behind it.
    """

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._turns = threading.Condition()
        self._issued = 0  # turns handed out
        self._serving = 0  # the turn now waiting in the limiter

    def acquire(self) -> None:
        """Block until this caller's slot, after those of every caller that asked before."""
        with self._turns:
            turn = self._issued
            self._issued += 1
            self._turns.wait_for(lambda: self._serving == turn)
        try:
            self._limiter.try_acquire("hubspot")
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()


class HubSpotClient:
    """The service's one connection to HubSpot. Thread-safe."""

    def __init__(self, settings: Settings, session: requests.Session | None = None,
                 metrics: Metrics | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if settings.token is None:
            raise ValueError("HubSpotClient needs an access token")
        self._settings = settings
        self._redactor = Redactor(settings.token)
        self._api = settings.base_url
        self.contacts = standard_types(settings.modified_property,
                                       {CONTACTS: settings.properties})[CONTACTS]
        self._session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(
            {"Authorization": f"Bearer {settings.token}", "Accept": "application/json",
             "User-Agent": "hubspot-sesam-contacts/0.1"}
        )
        self._search_budget = Budget(Limiter(Rate(settings.search_rate_per_second, Duration.SECOND)))
        self._general_budget = Budget(Limiter(Rate(settings.general_rate_per_10s, 10 * Duration.SECOND)))
        initial = settings.retry_initial_wait
        self._backoff = tenacity.wait_exponential_jitter(multiplier=initial, max=30, jitter=initial)
        self._catalogue_lock = threading.Lock()
        self._catalogues: dict[str, tuple[float, list[str]]] = {}  # by type
        self._metrics = metrics or Metrics()
        # HubSpot's X-HubSpot-RateLimit-* headers, when it sends them: no call before this
        # monotonic time once the current window is used up.
        self._window_lock = threading.Lock()
        self._window_reopens = 0.0
        self._sleep = sleep
        self._monotonic = monotonic

    # -- public API -------------------------------------------------------------------

    def of(self, kind: ObjectType) -> ObjectClient:
        """This client, reading one object type."""
        return ObjectClient(self, kind)

    def property_names(self, kind: ObjectType | None = None) -> list[str]:
        """The properties to export: the configured list, else HubSpot's whole catalogue
        (cached for `properties_cache_seconds`). Always includes those the walk keys on and,
        for a type HubSpot merges, the merged ids."""
        kind = kind or self.contacts
        required = [kind.modified_property, ID_PROPERTY, *([MERGED_PROPERTY] * kind.merges)]
        if kind.properties:
            return list(dict.fromkeys([*kind.properties, *required]))
        with self._catalogue_lock:
            now = time.monotonic()
            cached = self._catalogues.get(kind.path)
            if cached is None or now - cached[0] > self._settings.properties_cache_seconds:
                data, _, _ = self._call("GET", f"/crm/v3/properties/{kind.path}",
                                        endpoint="properties", scope=kind.scope)
                names = [p["name"] for p in data.get("results", []) if isinstance(p, dict) and "name" in p]
                cached = self._catalogues[kind.path] = (now, list(dict.fromkeys([*names, *required])))
            return cached[1]

    def search(self, body: dict[str, Any], kind: ObjectType | None = None) -> Page:
        kind = kind or self.contacts
        data, server_ms, calls = self._call("POST", f"/crm/v3/objects/{kind.path}/search",
                                            json=body, endpoint="search", scope=kind.scope)
        total = data.get("total")
        return Page(data.get("results", []), bool(data.get("paging", {}).get("next")), server_ms,
                    total=total if isinstance(total, int) else None, calls=calls)

    def archived_pages(self, kind: ObjectType | None = None) -> Iterator[Page]:
        """Every archived (deleted) record, a list-API page at a time (ids and archivedAt)."""
        kind = kind or self.contacts
        after: str | None = None
        while True:
            params = {"archived": "true", "limit": self._settings.list_page_size,
                      "properties": kind.modified_property}
            if after is not None:
                params["after"] = after
            data, server_ms, calls = self._call("GET", f"/crm/v3/objects/{kind.path}",
                                                params=params, endpoint="list", scope=kind.scope)
            after = data.get("paging", {}).get("next", {}).get("after")
            yield Page(data.get("results", []), after is not None, server_ms, calls=calls)
            if after is None:
                return

    def schemas(self) -> list[dict[str, Any]]:
        """The portal's custom object schemas."""
        data, _, _ = self._call("GET", "/crm/v3/schemas", endpoint="schemas", scope=SCHEMAS_SCOPE)
        results = data.get("results", [])
        return results if isinstance(results, list) else []

    def associations(self, source: ObjectType, target: ObjectType,
                     inputs: list[dict[str, str]]) -> tuple[dict[str, Any], int]:
        """One v4 batch read of associations (HubSpot's answer, and the requests it took).
        An id without associations is in HubSpot's ``errors``, with a 207: not a failure."""
        data, _, calls = self._call(
            "POST", f"/crm/v4/associations/{source.path}/{target.path}/batch/read",
            json={"inputs": inputs}, endpoint="associations", scope=f"{source.scope} and {target.scope}")
        return data, calls

    def close(self) -> None:
        self._session.close()

    # -- one call, with budget, retries and error mapping ----------------------------

    def _call(self, method: str, path: str, *, endpoint: str, scope: str,
              **kwargs: Any) -> tuple[dict, int, int]:
        """(JSON body, HubSpot's clock in ms, requests it took) of one logical call."""
        settings = self._settings
        budget = self._search_budget if endpoint == "search" else self._general_budget
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.retryable),
            wait=lambda state: self._wait(state, endpoint),
            stop=tenacity.stop_after_attempt(settings.max_retries + 1)
            | tenacity.stop_before_delay(settings.max_retry_wait_seconds),
            before_sleep=lambda state: self._before_retry(state, endpoint),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                budget.acquire()
                if endpoint != "search":
                    self._wait_for_window()
                data, server_ms = self._send(method, path, endpoint, scope, **kwargs)
                return data, server_ms, attempt.retry_state.attempt_number
        raise AssertionError("unreachable: tenacity either returns or reraises")

    def _wait_for_window(self) -> None:
        with self._window_lock:
            pause = self._window_reopens - self._monotonic()
        if pause > 0:
            self._sleep(pause)

    def _note_window(self, response: requests.Response) -> None:
        """Pause the non-search calls when HubSpot says this window has no calls left."""
        try:
            remaining = int(response.headers["X-HubSpot-RateLimit-Remaining"])
            interval_ms = int(response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", 10_000))
        except (KeyError, ValueError):
            return
        if remaining <= 1:
            with self._window_lock:
                self._window_reopens = max(self._window_reopens,
                                           self._monotonic() + min(interval_ms, 60_000) / 1000)

    def _wait(self, state: tenacity.RetryCallState, endpoint: str) -> float:
        error = state.outcome.exception() if state.outcome else None
        backoff = self._backoff(state)
        if isinstance(error, UpstreamError):
            if endpoint == "search" and error.upstream_status == 429:
                # Search's limit is per second and HubSpot says no more (no Retry-After): a
                # slot of the budget from now there is room again, unless others share the
                # limit, so the wait doubles from one slot on each 429 in a row.
                slot = 1 / self._settings.search_rate_per_second
                backoff = min(backoff, slot * 2 ** (state.attempt_number - 1) + random.uniform(0, slot))
            if error.retry_after is not None:
                backoff = error.retry_after
            if error.upstream_status == 423:
                backoff = max(backoff, 2.0)  # HubSpot: a locked resource wants at least 2 s
        return backoff

    def _before_retry(self, state: tenacity.RetryCallState, endpoint: str) -> None:
        self._metrics.upstream_retries.labels(endpoint).inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "HubSpot call failed, retrying",
            extra={"endpoint": endpoint, "attempt": state.attempt_number,
                   "wait_seconds": round(state.upcoming_sleep, 3), "error": str(error),
                   "correlation_id": getattr(error, "correlation_id", None)},
        )

    def _send(self, method: str, path: str, endpoint: str, scope: str,
              **kwargs: Any) -> tuple[dict, int]:
        timeout = (self._settings.connect_timeout, self._settings.read_timeout)
        outcome = "error"
        try:
            response = self._session.request(method, self._api + path, timeout=timeout, **kwargs)
            outcome = str(response.status_code)
            self._note_window(response)
            if response.status_code in SUCCESS_STATUS:
                data = orjson.loads(response.content)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                return data, _server_ms(response)
        except requests.Timeout as exc:
            outcome = "timeout"
            raise UpstreamError(504, "HubSpot timed out",
                                f"No answer from HubSpot within the timeout ({type(exc).__name__}).",
                                retryable=True) from None
        except requests.ConnectionError as exc:
            outcome = "connection_error"
            raise UpstreamError(504, "HubSpot unreachable",
                                f"Could not connect to HubSpot: {self._quote(exc)}",
                                retryable=True) from None
        except (requests.RequestException, ValueError) as exc:
            # A body cut short or not JSON: the connection broke mid-answer.
            outcome = "broken"
            raise UpstreamError(502, "HubSpot answer broken",
                                f"HubSpot's answer could not be read: {type(exc).__name__}.",
                                retryable=True) from None
        finally:
            self._metrics.upstream_calls.labels(endpoint, outcome).inc()
        raise self._error(response, scope)

    def _error(self, response: requests.Response, scope: str) -> UpstreamError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = self._quote(body.get("message") or response.reason or "")
        correlation = body.get("correlationId")
        retry_after = _retry_after(response)
        common = {"correlation_id": correlation, "upstream_status": status}
        if status == 401:
            return UpstreamError(502, "HubSpot refused the access token",
                                 "HubSpot answered 401: the access token (HUBSPOT_ACCESS_TOKEN) is "
                                 f"invalid, expired or revoked. HubSpot said: {message}", **common)
        if status == 403:
            needed = self._quote(" or ".join(_required_scopes(body)) or scope)
            return UpstreamError(502, "HubSpot access token lacks a scope",
                                 f"HubSpot answered 403: the token needs the {needed} scope. "
                                 f"HubSpot said: {message}", **common)
        if status == 429 and body.get("policyName") == "DAILY":
            return UpstreamError(503, "HubSpot daily limit reached",
                                 "The portal has used its daily API allowance; it resets at midnight "
                                 f"in the portal's time zone. HubSpot said: {message}",
                                 retry_after=retry_after or 3600, **common)
        if status == 429:
            return UpstreamError(503, "HubSpot rate limit", f"HubSpot kept answering 429: {message}",
                                 retryable=True, retry_after=retry_after, **common)
        if status in RETRYABLE_STATUS:
            ours, title = {503: (503, "HubSpot unavailable"), 504: (504, "HubSpot timed out")
                           }.get(status, (502, "HubSpot failed"))
            return UpstreamError(ours, title, f"HubSpot answered {status}: {message}",
                                 retryable=True, retry_after=retry_after, **common)
        return UpstreamError(502, "HubSpot rejected the request",
                             f"HubSpot answered {status}: {message}", **common)

    def _quote(self, text: object) -> str:
        return quote(self._redactor.text(str(text)))


class ObjectClient:
    """A `HubSpotClient` bound to one object type: what an `export.Exporter` reads."""

    def __init__(self, client: HubSpotClient, kind: ObjectType) -> None:
        self._client = client
        self.kind = kind

    def property_names(self) -> list[str]:
        return self._client.property_names(self.kind)

    def search(self, body: dict[str, Any]) -> Page:
        return self._client.search(body, self.kind)

    def archived_pages(self) -> Iterator[Page]:
        return self._client.archived_pages(self.kind)


def error_context(body: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """The (key, values) pairs of every ``errors[].context`` of a HubSpot answer: where it
    names the scopes a 403 wants, or the ids a batch's 207 had nothing for."""
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        if isinstance(context, dict):
            yield from ((key, values) for key, values in context.items() if isinstance(values, list))


def _required_scopes(body: dict[str, Any]) -> list[str]:
    """The scopes a MISSING_SCOPES answer names (under a key such as
    ``requiredGranularScopes``)."""
    found = [value for key, values in error_context(body) if "scope" in key.lower()
             for value in values if isinstance(value, str)]
    return list(dict.fromkeys(found))[:5]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, moment.timestamp() - time.time())
