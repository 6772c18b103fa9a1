"""Scripted faults and HubSpot's rate limits."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus

from .common import ApiError, Reply, api_error

_ENDPOINTS = frozenset({"search", "list", "properties", "read", "schemas", "associations", "any"})
_FAULT_KINDS = frozenset({"status", "hang", "close", "rate_limit", "daily"})


def _rate_limited(policy: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    return api_error(429, message, headers, errorType="RATE_LIMIT", policyName=policy)


@dataclass
class Fault:
    """A scripted misbehaviour for API requests to `endpoint` ("search", "list", "properties",
    "read", "schemas", "associations" or "any"), whatever the object type.

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

    def reply(self) -> Reply:
        """What a fault of kind "status", "rate_limit" or "daily" answers instead of the real answer."""
        if self.kind == "rate_limit":
            return _rate_limited("SECONDLY", "You have reached your secondly limit.", self.headers).reply
        if self.kind == "daily":
            return _rate_limited("DAILY", "You have reached your daily limit.", self.headers).reply
        reply = api_error(self.status, HTTPStatus(self.status).phrase, self.headers).reply
        if self.body is not None:
            reply.body = self.body
        return reply


class Gate:
    """The armed faults and the rate-limit windows every API request passes through."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.faults: list[Fault] = []
        # Monotonic times of the requests admitted in the current rate-limit windows.
        self._admitted: dict[str, deque[float]] = {"search": deque(), "general": deque()}

    def take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.endpoint not in (endpoint, "any"):
                    continue
                if fault.skip:
                    fault.skip -= 1
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                return fault
        return None

    def admit(self, endpoint: str, search_limit: int | None, general_limit: int | None) -> dict[str, str]:
        """Rate limiting on real time; returns the rate-limit headers of the response."""
        search = endpoint == "search"
        limit = search_limit if search else general_limit
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
