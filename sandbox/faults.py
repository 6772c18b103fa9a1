"""Scripted faults and HubSpot's rate limits."""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .common import ApiError, Reply, api_error

_ENDPOINTS = frozenset({"search", "list", "properties", "read", "schemas", "associations", "batch-read",
                        "any", "owners", "pipelines", "property_groups"})
_FAULT_KINDS = frozenset({"status", "hang", "close", "rate_limit", "daily", "trickle", "endless",
                          "huge", "raw", "cursor", "html", "migration"})
# Kinds whose answer the HTTP server writes itself (`Sandbox.handle_api` hands them over).
DELIVERED = frozenset({"close", "trickle", "endless", "huge", "raw"})


# HubSpot's documented "Migration in Progress": the account moves between data hosting
# locations, and its Retry-After says when to ask again.
MIGRATION_STATUS = 477
MIGRATION_RETRY_AFTER = "3600"  # s: what the recorded 477s advised
# The status lines Cloudflare (in front of HubSpot) gives its own error pages; HTTP defines
# none of 520-524, so an "html" fault takes any 5xx.
CLOUDFLARE_ERRORS = {500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable",
                     504: "Gateway time-out", 520: "Web server is returning an unknown error",
                     521: "Web server is down", 522: "Connection timed out",
                     523: "Origin is unreachable", 524: "A timeout occurred"}
HTML_TYPE = "text/html; charset=UTF-8"


def cloudflare_page(status: int) -> str:
    """An error page as Cloudflare writes one for HubSpot's API: HTML, no JSON, no
    correlationId in it."""
    said = CLOUDFLARE_ERRORS.get(status, "Error")
    return ("<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n"
            f"<title>api.hubapi.com | {status}: {said}</title>\n"
            "<meta charset=\"UTF-8\" />\n</head>\n<body>\n<div id=\"cf-wrapper\">\n"
            f"<h1><span class=\"cf-error-type\">Error</span> <span class=\"cf-error-code\">{status}"
            f"</span></h1>\n<h2 class=\"cf-subheadline\">{said}</h2>\n"
            "<p>Cloudflare Ray ID: <strong>8f2a6c1d3b4e5f60</strong></p>\n</div>\n</body>\n</html>\n")


def _rate_limited(policy: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    return api_error(429, message, headers, errorType="RATE_LIMIT", policyName=policy)


@dataclass
class Fault:
    """A scripted misbehaviour for API requests to `endpoint` ("search", "list", "properties",
    "read", "schemas", "associations", "batch-read" (the v3 batch read, `batch.py`) or "any"),
    whatever the object type.

    kind "status" answers status/body/headers instead of the real answer; "hang" sleeps
    `seconds` of real time and then answers normally; "close" sends 200 headers with the real
    body's Content-Length, writes about half of the body and closes the socket; "rate_limit"
    answers 429 with HubSpot's SECONDLY body; "daily" 429 with the DAILY policy.  The first
    `skip` matching requests pass untouched; then `times` of them are hit (None: all).

    The kinds for an upstream that does not bound itself: "trickle" writes the real answer
    (status line and headers included) one byte every `seconds`; "endless" answers 200 with
    a chunked body that never ends until the client goes away; "huge" answers 200 with a
    JSON object of exactly `size` bytes (an empty page: no results, no paging; chunked,
    without Content-Length, if `headers` say ``Transfer-Encoding: chunked``); "raw"
    answers `status` with exactly the text `raw` as its body (e.g. a JSON nested 100,000
    deep); "cursor" answers 200 with `body` in which every ``paging.next.after`` gets a
    suffix new with each answer, so that paging never ends (a "status" fault of status 200
    with such a body repeats the same cursor instead).

    The kinds for how HubSpot really fails: "html" answers `status` (any 5xx, Cloudflare's
    520-524 included) with Cloudflare's text/html error page instead of JSON; "migration"
    answers HubSpot's 477 "Migration in Progress" with `Retry-After` (3600 unless `headers`
    say otherwise) and HubSpot's JSON error body.
    """

    endpoint: str
    kind: str = "status"
    status: int = 500
    body: dict | None = None
    headers: dict | None = None
    seconds: float = 0.0
    skip: int = 0
    times: int | None = 1
    size: int = 0
    raw: str = ""
    answers: int = 0  # answers given by this fault so far ("cursor" numbers its cursors)

    def __post_init__(self) -> None:
        if self.endpoint not in _ENDPOINTS:
            raise ValueError(f"fault endpoint must be one of {sorted(_ENDPOINTS)}, not {self.endpoint!r}")
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(_FAULT_KINDS)}, not {self.kind!r}")
        if self.skip < 0 or (self.times is not None and self.times < 1) or self.seconds < 0:
            raise ValueError("fault skip and seconds must be >= 0 and times >= 1 or None")
        if self.kind == "html":
            if not 500 <= self.status <= 599:
                raise ValueError(f"an html fault answers a 5xx, not {self.status}")
        else:
            HTTPStatus(self.status)  # raises ValueError for a status HTTP does not define
        if self.size < 0 or (self.kind == "huge" and self.size < len(_EMPTY_PAGE)):
            raise ValueError(f"a huge fault's size must be at least {len(_EMPTY_PAGE)} bytes")

    def reply(self) -> Reply:
        """What a fault of kind "status", "rate_limit", "daily", "html", "migration" or
        "cursor" answers instead of the real answer."""
        if self.kind == "rate_limit":
            return _rate_limited("SECONDLY", "You have reached your secondly limit.", self.headers).reply
        if self.kind == "daily":
            return _rate_limited("DAILY", "You have reached your daily limit.", self.headers).reply
        if self.kind == "html":
            headers = {"Content-Type": HTML_TYPE, "Server": "cloudflare", **(self.headers or {})}
            return Reply(self.status, None, headers, text=cloudflare_page(self.status))
        if self.kind == "migration":
            headers = {"Retry-After": MIGRATION_RETRY_AFTER, **(self.headers or {})}
            return api_error(MIGRATION_STATUS, "Migration in Progress", headers).reply
        reply = api_error(self.status, HTTPStatus(self.status).phrase, self.headers).reply
        if self.body is not None:
            reply.body = self.body
        if self.kind == "cursor":
            reply.status = 200
            reply.body = _renumbered(self.body or {}, f"-{self.answers}")
        self.answers += 1
        return reply

    def huge_body(self) -> bytes:
        """The body of a "huge" fault: an empty page padded to exactly `size` bytes."""
        return _EMPTY_PAGE[:-2] + b" " * (self.size - len(_EMPTY_PAGE)) + _EMPTY_PAGE[-2:]


_EMPTY_PAGE = b'{"results": []}'  # a page with nothing in it and nothing after it


def _renumbered(value: Any, suffix: str) -> Any:
    """``value`` with ``suffix`` added to every ``paging.next.after`` in it, however deep."""
    if isinstance(value, list):
        return [_renumbered(item, suffix) for item in value]
    if not isinstance(value, dict):
        return value
    copy = {key: _renumbered(item, suffix) for key, item in value.items()}
    after = copy.get("paging", {}).get("next", {}).get("after") if isinstance(copy.get("paging"), dict) else None
    if isinstance(after, str):
        copy["paging"] = {**copy["paging"], "next": {**copy["paging"]["next"], "after": after + suffix}}
    return copy


# How the search limit counts (`Sandbox.search_window`): "admitted" counts the searches it
# let through in the last second; "arrivals" counts every search that arrived in the last
# 1000 ms, those it refused too, so a 429 costs a slot as a retry does (exclusive at the far
# end, on a clock finer than any two arrivals are apart); "sliding" counts the same arrivals
# as an independent gateway does: stamped in whole milliseconds at receipt, in a window
# inclusive at both ends, so an arrival exactly 1000 ms after another still meets it. A
# client spaced exactly at the limit passes "arrivals" but not "sliding".
SEARCH_WINDOWS = ("admitted", "arrivals", "sliding")
SECOND, TEN_SECONDS = 1.0, 10.0
SECOND_MS = 1000
# How far out of order the windows take arrivals: a request counted late (its thread got the
# CPU late) still counts at its receipt. Older stamps than this behind the newest are dropped.
KEPT_SECONDS = 30.0


class Gate:
    """The armed faults and the rate-limit windows every API request passes through.

    It has a lock of its own, held only for a few list operations: a gateway counts each
    request when it arrives, whatever the servers behind it are busy with. (On the portal's
    lock, a search that arrived while another was being answered was counted only once that
    answer was built, hundreds of ms late on a loaded machine, so requests sent evenly were
    counted in bunches: bench B12 measured the sandbox, not the client.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        # Receipt times (monotonic s; the "sliding" window's whole ms) of the requests counted
        # in each rate-limit window, in order.
        self._counted: dict[str, list[float]] = {"search": [], "general": [], "secondly": [], "sliding": []}
        self._jitter = random.Random(0)  # the searches' arrival jitter: the same every run

    def inject(self, fault: Fault) -> None:
        """Arm a copy of ``fault`` (its skip/times count down as requests hit it)."""
        with self._lock:
            self._faults.append(dataclasses.replace(fault))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, endpoint: str) -> Fault | None:
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

    def admit(self, endpoint: str, search_limit: int | None, general_limit: int | None,
              secondly_limit: int | None = None, search_window: str = "admitted",
              search_jitter_ms: float = 0, received: float | None = None) -> dict[str, str]:
        """Rate limiting on real time; returns the rate-limit headers of the response.

        ``received`` is when the request reached the sandbox (monotonic s; None: now): each
        window counts it then, however long its thread took to get here.
        Search: `search_limit` per second, counted as `search_window` says (`SEARCH_WINDOWS`),
        each search first held up a random 0..`search_jitter_ms` (the network between a
        client and HubSpot's gateway: requests sent evenly arrive a little bunched).
        The other calls: `general_limit` per rolling 10 s and, when that is on,
        `secondly_limit` per rolling second (None: none), as HubSpot counts a private app's
        calls; their answers say both, as HubSpot's do."""
        arrived = time.monotonic() if received is None else received
        if endpoint == "search":
            if search_limit is None:
                return {}
            if search_jitter_ms > 0:
                with self._lock:
                    delay = self._jitter.uniform(0, search_jitter_ms) / 1000
                time.sleep(delay)
                arrived += delay
            with self._lock:
                if search_window == "sliding":
                    allowed = self._arrival(math.floor(arrived * SECOND_MS), search_limit)
                else:
                    allowed = self._count("search", arrived, SECOND) < search_limit
                    if allowed or search_window == "arrivals":
                        self._add("search", arrived)
            # Real search sends no rate-limit headers and no Retry-After.
            if not allowed:
                raise _rate_limited("SECONDLY", "You have reached your secondly limit.")
            return {}
        if general_limit is None:
            return {}
        with self._lock:
            ten, second = self._count("general", arrived, TEN_SECONDS), self._count("secondly", arrived, SECOND)
            within_ten = ten < general_limit
            within_second = secondly_limit is None or second < secondly_limit
            if within_ten and within_second:
                self._add("general", arrived)
                self._add("secondly", arrived)
                ten, second = ten + 1, second + 1
            headers = {
                "X-HubSpot-RateLimit-Max": str(general_limit),
                "X-HubSpot-RateLimit-Remaining": str(general_limit - ten),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            }
            if secondly_limit is not None:
                headers["X-HubSpot-RateLimit-Secondly"] = str(secondly_limit)
                headers["X-HubSpot-RateLimit-Secondly-Remaining"] = str(max(0, secondly_limit - second))
        if not within_ten:
            raise _rate_limited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.", headers)
        if not within_second:
            raise _rate_limited("SECONDLY", "You have reached your secondly limit.", headers)
        return headers

    def _arrival(self, stamp_ms: int, limit: int) -> bool:
        """A search stamped ``stamp_ms``, counted in the "sliding" window (under the lock):
        whether fewer than ``limit`` searches arrived in the 1000 ms up to it, both ends
        included."""
        stamps = self._counted["sliding"]
        allowed = bisect.bisect_right(stamps, stamp_ms) - bisect.bisect_left(stamps, stamp_ms - SECOND_MS) < limit
        self._add("sliding", stamp_ms, KEPT_SECONDS * SECOND_MS)
        return allowed

    def _count(self, name: str, arrived: float, seconds: float) -> int:
        """The requests window ``name`` counts in the ``seconds`` up to ``arrived``, the far
        end excluded (under the lock)."""
        counted = self._counted[name]
        return bisect.bisect_right(counted, arrived) - bisect.bisect_right(counted, arrived - seconds)

    def _add(self, name: str, arrived: float, kept: float = KEPT_SECONDS) -> None:
        """Count a request in window ``name`` at ``arrived``, in order, forgetting those
        ``kept`` older than the newest (under the lock)."""
        counted = self._counted[name]
        bisect.insort(counted, arrived)
        del counted[:bisect.bisect_left(counted, counted[-1] - kept)]
