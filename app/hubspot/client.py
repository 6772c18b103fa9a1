"""The service's one connection to HubSpot's CRM API.

One pooled HTTP session per service, Bearer authentication, connect and read timeouts on
every call, client-side request budgets shared by all concurrent exports (search has its
own, smaller one), HubSpot's own window when it announces one, and bounded retries with
backoff for what HubSpot says is passing (429, 423, 5xx, broken connections). Every answer
is parsed at once (`answers`); every failure that remains is a `HubSpotError` that says what
went wrong, never with the token in it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import requests
import tenacity
from pyrate_limiter import Duration, Limiter, Rate
from requests.adapters import HTTPAdapter

from ..config import Settings
from ..metrics import NO_TYPE, Metrics
from ..object_types import SCHEMAS_SCOPE, ObjectType, Schema
from ..redact import Redactor, quote
from . import answers
from .answers import ArchivedPage, Associations, SearchPage
from .budget import Budget, RateWindow
from .errors import HubSpotError

log = logging.getLogger(__name__)

SUCCESS_STATUS = frozenset({200, 207})  # 207: a batch where some inputs had nothing to return
CORRELATION_HEADER = "X-HubSpot-Correlation-Id"  # on every answer, HTML error pages included
Json = dict[str, Any]


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
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(
            {"Authorization": f"Bearer {settings.token}", "Accept": "application/json",
             "User-Agent": "hubspot-sesam/0.1"}
        )
        self._search_budget = Budget(Limiter(Rate(settings.search_rate_per_second, Duration.SECOND)))
        self._general_budget = Budget(Limiter(Rate(settings.general_rate_per_10s, 10 * Duration.SECOND)))
        self._window = RateWindow(sleep, monotonic)
        initial = settings.retry_initial_wait
        self._backoff = tenacity.wait_exponential_jitter(multiplier=initial, max=30, jitter=initial)
        self._catalogue_lock = threading.Lock()
        self._catalogues: dict[str, tuple[float, list[str]]] = {}  # by type
        self._metrics = metrics or Metrics()
        self._daily_left: int | None = None  # what HubSpot last said of its daily allowance

    def catalogue(self, kind: ObjectType) -> list[str]:
        """The names of every property of ``kind`` (HubSpot's property catalogue), cached
        for `properties_cache_seconds`."""
        with self._catalogue_lock:
            now = time.monotonic()
            cached = self._catalogues.get(kind.path)
            if cached is None or now - cached[0] > self._settings.properties_cache_seconds:
                data, _, _ = self._call("GET", f"/crm/v3/properties/{kind.path}",
                                        endpoint="properties", kind=kind.name, scope=kind.scope)
                cached = self._catalogues[kind.path] = (now, answers.catalogue(data))
            return cached[1]

    def search(self, kind: ObjectType, body: Json) -> SearchPage:
        """One search request for records of ``kind``."""
        data, server_ms, calls = self._call("POST", f"/crm/v3/objects/{kind.path}/search",
                                            json=body, endpoint="search", kind=kind.name,
                                            scope=kind.scope)
        return answers.search_page(data, kind, server_ms, calls)

    def archived_pages(self, kind: ObjectType) -> Iterator[ArchivedPage]:
        """Every archived (deleted) record of ``kind``, a list-API page at a time (ids,
        archivedAt and modification times)."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"archived": "true", "limit": self._settings.list_page_size,
                                      "properties": kind.modified_property}
            if after is not None:
                params["after"] = after
            data, server_ms, calls = self._call("GET", f"/crm/v3/objects/{kind.path}",
                                                params=params, endpoint="list", kind=kind.name,
                                                scope=kind.scope)
            page = answers.archived_page(data, kind, server_ms, calls)
            yield page
            if page.after is None:
                return
            after = page.after

    def schemas(self) -> list[Schema]:
        """The portal's custom objects."""
        data, _, _ = self._call("GET", "/crm/v3/schemas", endpoint="schemas", kind=NO_TYPE,
                                scope=SCHEMAS_SCOPE)
        return answers.schemas(data)

    def associations(self, source: ObjectType, target: ObjectType,
                     inputs: list[dict[str, str]]) -> Associations:
        """One v4 batch read of the associations of records of ``source`` to ``target``."""
        data, _, calls = self._call(
            "POST", f"/crm/v4/associations/{source.path}/{target.path}/batch/read",
            json={"inputs": inputs}, endpoint="associations", kind=source.name,
            scope=f"{source.scope} and {target.scope}")
        return answers.associations(data, f"association ({source.name} to {target.name})", calls)

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
                data, server_ms = self._send(method, path, endpoint, kind, scope, **kwargs)
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
        return backoff

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
        timeout = (self._settings.connect_timeout, self._settings.read_timeout)
        outcome = "error"
        try:
            response = self._session.request(method, self._api + path, timeout=timeout, **kwargs)
            outcome = str(response.status_code)
            self._window.note(response.headers)
            for window, remaining in answers.rate_limits(response.headers).items():
                self._metrics.rate_limit_remaining.labels(window).set(remaining)
                if window == "daily":
                    self._daily_left = remaining
            if response.status_code in SUCCESS_STATUS:
                data = orjson.loads(response.content)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                return data, answers.server_ms(response.headers.get("Date"))
        except requests.Timeout as exc:
            outcome = "timeout"
            raise HubSpotError(504, "HubSpot timed out",
                               f"No answer from HubSpot within the timeout ({type(exc).__name__}).",
                               retryable=True) from None
        except requests.ConnectionError as exc:
            outcome = "connection_error"
            raise HubSpotError(504, "HubSpot unreachable",
                               f"Could not connect to HubSpot: {self._quote(exc)}",
                               retryable=True) from None
        except (requests.RequestException, ValueError) as exc:
            # A body cut short or not JSON: the connection broke mid-answer.
            outcome = "broken"
            raise HubSpotError(502, "HubSpot answer broken",
                               f"HubSpot's answer could not be read: {type(exc).__name__}.",
                               retryable=True) from None
        finally:
            self._metrics.upstream_calls.labels(endpoint, kind, outcome).inc()
        try:
            body = orjson.loads(response.content)
        except ValueError:
            body = None
        raise answers.failure(response.status_code, body, response.reason or "",
                              answers.retry_after(response.headers.get("Retry-After")),
                              scope, self._quote, response.headers.get(CORRELATION_HEADER))

    def _quote(self, text: object) -> str:
        return quote(self._redactor.text(str(text)))
