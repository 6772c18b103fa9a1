"""The service's one connection to HubSpot's CRM API.

One pooled HTTP session per service, Bearer authentication, client-side request budgets
shared by all concurrent exports (search has its own, smaller one), HubSpot's own window
when it announces one, and bounded retries with backoff for what HubSpot says is passing
(429, 423, 5xx, broken connections). Every answer is parsed at once (`answers`); every
failure that remains is a `HubSpotError` that says what went wrong, never with the token in
it.

Every call is bounded, whatever the other end does (`transport`): each answer, headers and
body, must arrive whole within HUBSPOT_CONNECT_TIMEOUT + HUBSPOT_READ_TIMEOUT of being asked
for (HUBSPOT_READ_TIMEOUT also bounds each read) and weigh at most HUBSPOT_MAX_ANSWER_MB;
a wait HubSpot asks for is cut to HUBSPOT_MAX_RETRY_WAIT_SECONDS, and retries stop once
that much time has passed, so one call takes at most about that plus one answer's
deadline. An answer too slow is a retryable 504; one too large a 502 that is not retried
(HubSpot would send the same again). Paging that does not end is stopped where it is
followed (`archived_pages` here, associations in `sync.associations`).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import orjson
import requests
import tenacity
from pyrate_limiter import Duration, Limiter, Rate

from ..config import Settings
from ..metrics import NO_TYPE, Metrics
from ..object_types import ID_PROPERTY, SCHEMAS_SCOPE, ObjectType, Schema
from ..redact import Redactor, quote
from . import answers
from .answers import (
    ArchivedPage,
    Associations,
    CursorPage,
    Histories,
    OwnerPage,
    Pipeline,
    PropertyDefinition,
    SearchPage,
)
from .budget import Budget, RateWindow, search_budget
from .errors import HubSpotError
from .transport import CURRENT, AnswerTooLarge, AnswerTooSlow, BoundedAdapter, Watch, read_bounded

log = logging.getLogger(__name__)

SUCCESS_STATUS = frozenset({200, 207})  # 207: a batch where some inputs had nothing to return
SCHEMAS_ATTEMPTS = 2  # one retry of the schemas read, for a passing failure
CORRELATION_HEADER = "X-HubSpot-Correlation-Id"  # on every answer, HTML error pages included
Json = dict[str, Any]
MEGABYTE = 1024 * 1024
# Pages of one type's archived listing: 10 million archived records at 100 a page. A
# listing beyond it does not end (HUBSPOT_ARCHIVED_LISTING_SECONDS usually stops it first).
MAX_ARCHIVED_PAGES = 100_000
OWNERS_SCOPE = "crm.objects.owners.read"
# Pages of one owners list: a million owners at the smallest page. No portal has that many
# users; a listing past it does not end.
MAX_OWNER_PAGES = 10_000
NO_PIPELINES = frozenset({400, 404})  # HubSpot's answers for a type that has no pipelines


class HubSpotClient:
    """Reads HubSpot's CRM for every object type. Thread-safe."""

    def __init__(self, settings: Settings, session: requests.Session | None = None,
                 metrics: Metrics | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if settings.token is None:
            raise ValueError("HubSpotClient needs an access token")
        self._settings = settings
        self._redactor = Redactor(settings.token)
        self._api = settings.base_url
        self._session = session or requests.Session()
        adapter = BoundedAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(
            {"Authorization": f"Bearer {settings.token}", "Accept": "application/json",
             "User-Agent": "hubspot-sesam/0.1"}
        )
        # Each budget adapts to HubSpot's 429s (`Budget`). HubSpot's other calls are also
        # spaced at the lowest of their rate and what HubSpot's headers announce (their
        # limiter counts 10 s, HubSpot a second too); search, whose limiter counts HubSpot's
        # second, only while a 429 has lowered its rate.
        self._search_budget = search_budget(settings.search_rate_per_second)
        self._general_budget = Budget(Limiter(Rate(settings.general_rate_per_10s, 10 * Duration.SECOND)),
                                      settings.general_rate_per_10s / 10)
        self._window = RateWindow(sleep, monotonic)
        initial = settings.retry_initial_wait
        self._backoff = tenacity.wait_exponential_jitter(multiplier=initial, max=30, jitter=initial)
        self._catalogue_lock = threading.Lock()
        # By type: when read, and each property's type by name, in HubSpot's order.
        self._catalogues: dict[str, tuple[float, dict[str, str]]] = {}
        self._metrics = metrics or Metrics()
        self._daily_left: int | None = None  # what HubSpot last said of its daily allowance
        self._max_answer_bytes = int(settings.max_answer_mb * MEGABYTE)

    def catalogue(self, kind: ObjectType) -> list[str]:
        """The names of every property of ``kind`` (HubSpot's property catalogue), cached
        for `properties_cache_seconds`."""
        return list(self.property_types(kind))

    def property_types(self, kind: ObjectType) -> Mapping[str, str]:
        """Every property of ``kind`` by name with its type (`answers.property_types`),
        from the same cached read as `catalogue`."""
        with self._catalogue_lock:
            now = time.monotonic()
            cached = self._catalogues.get(kind.path)
            if cached is None or now - cached[0] > self._settings.properties_cache_seconds:
                data, _, _ = self._call("GET", f"/crm/v3/properties/{kind.path}",
                                        endpoint="properties", kind=kind.name, scope=kind.scope)
                cached = self._catalogues[kind.path] = (now, answers.property_types(data))
            return MappingProxyType(cached[1])

    def search(self, kind: ObjectType, body: Json) -> SearchPage:
        """One search request for records of ``kind``."""
        data, server_ms, calls = self._call("POST", f"/crm/v3/objects/{kind.path}/search",
                                            json=body, endpoint="search", kind=kind.name,
                                            scope=kind.scope)
        return answers.search_page(data, kind, server_ms, calls)

    def archived_pages(self, kind: ObjectType, deadline: float | None = None) -> Iterator[ArchivedPage]:
        """Every archived (deleted) record of ``kind``, a list-API page at a time (ids,
        archivedAt and modification times).

        The listing stops with a 502 where HubSpot's paging does not end: a cursor it gave
        before, or more than `MAX_ARCHIVED_PAGES` pages; and with a 504 at ``deadline``
        (monotonic seconds), if given, checked before each page is asked for."""
        what = f"list of archived {kind.name}"

        def read(after: str | None, pages_read: int) -> ArchivedPage:
            if deadline is not None and time.monotonic() >= deadline:
                raise HubSpotError(
                    504, "HubSpot listing too slow",
                    f"HubSpot's {what} did not end within HUBSPOT_ARCHIVED_LISTING_SECONDS "
                    f"({self._settings.archived_listing_seconds:g} s); {pages_read + 1} pages read.",
                    retryable=True)
            params: dict[str, Any] = {"archived": "true", "limit": self._settings.list_page_size,
                                      "properties": kind.modified_property}
            if after is not None:
                params["after"] = after
            data, server_ms, calls = self._call("GET", f"/crm/v3/objects/{kind.path}",
                                                params=params, endpoint="list", kind=kind.name,
                                                scope=kind.scope)
            return answers.archived_page(data, kind, server_ms, calls)

        return _cursor_pages(what, MAX_ARCHIVED_PAGES, read)

    def owner_pages(self, archived: bool) -> Iterator[OwnerPage]:
        """Every owner (``archived``: every deactivated one), a page of
        HUBSPOT_LIST_PAGE_SIZE at a time. Stops with a 502 where HubSpot's paging does not
        end: a cursor it gave before, or more than `MAX_OWNER_PAGES` pages."""
        what = "list of deactivated owners" if archived else "list of owners"

        def read(after: str | None, pages_read: int) -> OwnerPage:
            params: dict[str, Any] = {"limit": self._settings.list_page_size,
                                      "archived": "true" if archived else "false"}
            if after is not None:
                params["after"] = after
            data, server_ms, calls = self._call("GET", "/crm/v3/owners", params=params,
                                                endpoint="owners", kind="owners", scope=OWNERS_SCOPE)
            return answers.owner_page(data, server_ms, calls, archived)

        return _cursor_pages(what, MAX_OWNER_PAGES, read)

    def pipelines(self, kind: ObjectType) -> tuple[list[Pipeline], int]:
        """(every pipeline of ``kind`` with its stages, requests it took). A type without
        pipelines (HubSpot answers 400 or 404 for it) is a 404 that says so."""
        try:
            data, _, calls = self._call("GET", f"/crm/v3/pipelines/{kind.path}",
                                        endpoint="pipelines", kind=kind.name, scope=kind.scope)
        except HubSpotError as error:
            if error.upstream_status not in NO_PIPELINES:
                raise
            raise HubSpotError(404, "No pipelines",
                               f"HubSpot has no pipelines for {kind.name} (it answered "
                               f"{error.upstream_status}): only types such as deals and tickets "
                               "have them.", correlation_id=error.correlation_id,
                               upstream_status=error.upstream_status) from None
        return answers.pipelines(data, kind), calls

    def property_definitions(self, kind: ObjectType,
                             archived: bool) -> tuple[list[PropertyDefinition], int]:
        """(every property definition of ``kind``, ``archived``: every archived one;
        requests it took)."""
        data, _, calls = self._call("GET", f"/crm/v3/properties/{kind.path}",
                                    params={"archived": "true" if archived else "false"},
                                    endpoint="properties", kind=kind.name, scope=kind.scope)
        return answers.property_definitions(data, kind, archived), calls

    def property_groups(self, kind: ObjectType) -> tuple[dict[str, str], int]:
        """(the label of each property group of ``kind``, requests it took)."""
        data, _, calls = self._call("GET", f"/crm/v3/properties/{kind.path}/groups",
                                    endpoint="property_groups", kind=kind.name, scope=kind.scope)
        return answers.property_groups(data, kind), calls

    def schemas(self) -> list[Schema]:
        """The portal's custom objects, in at most SCHEMAS_ATTEMPTS requests: the read is
        on the path of a request that names a custom object, and its failure is remembered
        for a minute (`ObjectTypes`), so a long retry schedule would hold that request for
        minutes and buy little."""
        data, _, _ = self._call("GET", "/crm/v3/schemas", endpoint="schemas", kind=NO_TYPE,
                                scope=SCHEMAS_SCOPE,
                                attempts=min(SCHEMAS_ATTEMPTS, self._settings.max_retries + 1))
        return answers.schemas(data)

    def associations(self, source: ObjectType, target: ObjectType,
                     inputs: list[dict[str, str]]) -> Associations:
        """One v4 batch read of the associations of records of ``source`` to ``target``."""
        data, _, calls = self._call(
            "POST", f"/crm/v4/associations/{source.path}/{target.path}/batch/read",
            json={"inputs": inputs}, endpoint="associations", kind=source.name,
            scope=f"{source.scope} and {target.scope}")
        return answers.associations(data, f"association ({source.name} to {target.name})", calls)

    def history(self, kind: ObjectType, ids: list[str], names: tuple[str, ...]) -> Histories:
        """One v3 batch read of records of ``kind`` with the history of the properties
        ``names`` (its `properties` only the id: the walk has the values)."""
        data, _, calls = self._call(
            "POST", f"/crm/v3/objects/{kind.path}/batch/read",
            json={"inputs": [{"id": i} for i in ids], "properties": [ID_PROPERTY],
                  "propertiesWithHistory": list(names)},
            endpoint="batch-read-history", kind=kind.name, scope=kind.scope)
        return answers.histories(data, ids, names, f"batch read with history of {kind.name}", calls)

    def probe(self, kind: ObjectType) -> None:
        """One read of a record of ``kind``, not retried: raises the `HubSpotError` that
        says why HubSpot would not serve an export of it (unreachable, token refused,
        scope missing, clock unusable), if any."""
        self._call("GET", f"/crm/v3/objects/{kind.path}", params={"limit": 1},
                   endpoint="probe", kind=kind.name, scope=kind.scope, attempts=1)

    def daily_calls_left(self) -> int | None:
        """The calls HubSpot's last answer that said so left for the day; None if none did."""
        return self._daily_left

    def close(self) -> None:
        self._session.close()

    # -- one call, with budget, retries and error mapping ----------------------------

    def _call(self, method: str, path: str, *, endpoint: str, kind: str, scope: str,
              attempts: int | None = None, **kwargs: Any) -> tuple[Json, int, int]:
        """(JSON body, HubSpot's clock in ms, requests it took) of one logical call of
        ``endpoint`` for the object type named ``kind``, in at most ``attempts`` requests
        (default: as configured)."""
        settings = self._settings
        budget = self._search_budget if endpoint == "search" else self._general_budget
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, HubSpotError) and e.retryable),
            wait=lambda state: self._wait(state, endpoint),
            stop=tenacity.stop_after_attempt(attempts or settings.max_retries + 1)
            | tenacity.stop_before_delay(settings.max_retry_wait_seconds),
            before_sleep=lambda state: self._before_retry(state, endpoint, kind),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                budget.acquire()
                if endpoint != "search":
                    self._window.wait()
                try:
                    data, server_ms = self._send(method, path, endpoint, kind, scope, **kwargs)
                except HubSpotError as error:
                    if error.upstream_status == 429 and error.retryable:
                        budget.limited()  # not the daily cap: a slower rate does not help
                    raise
                budget.succeeded()
                return data, server_ms, attempt.retry_state.attempt_number
        raise AssertionError("unreachable: tenacity either returns or reraises")

    def _wait(self, state: tenacity.RetryCallState, endpoint: str) -> float:
        error = state.outcome.exception() if state.outcome else None
        backoff = self._backoff(state)
        if isinstance(error, HubSpotError):
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
        # Never longer than retries may take in all (and never an endless sleep).
        limit = self._settings.max_retry_wait_seconds
        return min(backoff, limit) if math.isfinite(backoff) else limit

    def _before_retry(self, state: tenacity.RetryCallState, endpoint: str, kind: str) -> None:
        self._metrics.upstream_retries.labels(endpoint, kind).inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "HubSpot call failed, retrying",
            extra={"endpoint": endpoint, "attempt": state.attempt_number,
                   "wait_seconds": round(state.upcoming_sleep, 3), "error": str(error),
                   "correlation_id": getattr(error, "correlation_id", None)},
        )

    def _send(self, method: str, path: str, endpoint: str, kind: str, scope: str,
              **kwargs: Any) -> tuple[Json, int]:
        settings = self._settings
        timeout = (settings.connect_timeout, settings.read_timeout)
        watch = Watch(settings.connect_timeout + settings.read_timeout)
        watching = CURRENT.set(watch)
        outcome = "error"
        try:
            with self._session.request(method, self._api + path, timeout=timeout, stream=True,
                                       **kwargs) as response:
                outcome = str(response.status_code)
                self._note_limits(response)
                content = read_bounded(response, self._max_answer_bytes, watch)
            if response.status_code in SUCCESS_STATUS:
                data = orjson.loads(content)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                return data, answers.server_ms(response.headers.get("Date"))
        except AnswerTooLarge as exc:
            outcome = "too_large"
            raise HubSpotError(
                502, "HubSpot answer too large",
                f"HubSpot's {endpoint} answer for {kind} is larger than HUBSPOT_MAX_ANSWER_MB "
                f"({settings.max_answer_mb:g} MB, {self._max_answer_bytes} bytes): {exc}; "
                "the rest was not read.") from None
        except (AnswerTooSlow, requests.RequestException) as exc:
            outcome, error = self._failed(exc, watch, endpoint, kind)
            raise error from None
        except ValueError as exc:
            # Not JSON, or JSON nested deeper than orjson's 1024 levels.
            outcome = "broken"
            raise HubSpotError(502, "HubSpot answer broken",
                               f"HubSpot's answer could not be read: {type(exc).__name__}.",
                               retryable=True) from None
        finally:
            watch.end()
            CURRENT.reset(watching)
            self._metrics.upstream_calls.labels(endpoint, kind, outcome).inc()
        try:
            body = orjson.loads(content)
        except ValueError:  # not JSON (an HTML error page), or nested too deep
            body = None
        raise answers.failure(response.status_code, body, response.reason or "",
                              answers.retry_after(response.headers.get("Retry-After")),
                              scope, self._quote, response.headers.get(CORRELATION_HEADER))

    def _note_limits(self, response: requests.Response) -> None:
        """Take in what an answer's headers say of HubSpot's rate limits."""
        self._window.note(response.headers)
        self._general_budget.learn(response.headers)  # search's answers announce none
        for window, remaining in answers.rate_limits(response.headers).items():
            self._metrics.rate_limit_remaining.labels(window).set(remaining)
            if window == "daily":
                self._daily_left = remaining

    def _failed(self, exc: Exception, watch: Watch, endpoint: str,
                kind: str) -> tuple[str, HubSpotError]:
        """(outcome, error) of a request that broke off: too slow, unreachable or cut."""
        if watch.expired or isinstance(exc, AnswerTooSlow):
            seconds = self._settings.connect_timeout + self._settings.read_timeout
            return "timeout", HubSpotError(
                504, "HubSpot timed out",
                f"HubSpot's {endpoint} answer for {kind} did not arrive whole within {seconds:g} s "
                "(HUBSPOT_CONNECT_TIMEOUT + HUBSPOT_READ_TIMEOUT).", retryable=True)
        if isinstance(exc, requests.Timeout):
            return "timeout", HubSpotError(
                504, "HubSpot timed out",
                f"No answer from HubSpot within the timeout ({type(exc).__name__}).", retryable=True)
        if isinstance(exc, requests.ConnectionError):
            return "connection_error", HubSpotError(
                504, "HubSpot unreachable", f"Could not connect to HubSpot: {self._quote(exc)}",
                retryable=True)
        # A body cut short: the connection broke mid-answer.
        return "broken", HubSpotError(
            502, "HubSpot answer broken",
            f"HubSpot's answer could not be read: {type(exc).__name__}.", retryable=True)

    def _quote(self, text: object) -> str:
        return quote(self._redactor.text(str(text)))


Listed = TypeVar("Listed")


def _cursor_pages(what: str, most: int,
                  read: Callable[[str | None, int], CursorPage[Listed]]) -> Iterator[CursorPage[Listed]]:
    """The pages ``read(after, pages_read)`` gives, each from the cursor the one before gave,
    until one gives none. Stops with a 502 where HubSpot's paging of ``what`` does not end: a
    cursor it gave before, or more than ``most`` pages."""
    after: str | None = None
    seen: set[str] = set()
    for pages_read in range(most):
        page = read(after, pages_read)
        yield page
        if page.after is None:
            return
        if page.after in seen:
            raise _endless(what, f"it gave the cursor {quote(page.after)} twice")
        seen.add(after := page.after)
    raise _endless(what, f"it went on past {most} pages")


def _endless(what: str, why: str) -> HubSpotError:
    """HubSpot's paging of ``what`` does not end: a 502 that retrying would not mend."""
    return HubSpotError(502, "HubSpot paging does not end",
                        f"HubSpot's {what} would page on forever: {why}.")
