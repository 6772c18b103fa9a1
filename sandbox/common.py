"""What every part of the sandbox shares: constants, the knobs a store obeys, value helpers, requests, replies
and HubSpot's errors."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

DAY_MS = 86_400_000
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NEG_INF, POS_INF = -(1 << 63), 1 << 63
DEFAULT_LIMIT = 10
PORTAL_ID = 48_151_623  # the sandbox portal's (HubSpot account's) id, as in HubSpot's record URLs
APP_URL = "https://app.hubspot.com"
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


class Knobs(Protocol):
    """The portal's switches a store and its search obey, read each time they apply: the
    Sandbox's plain attributes of these names (see its docstring)."""

    search_lag_ms: int
    search_lag_jitter_ms: int
    search_drop_lag_ms: int
    reorder_ties_per_request: bool
    archived_list_lag_ms: int
    archived_at_is_modified: bool
    epoch_ms_modified: bool


# --------------------------------------------------------------------------- helpers


def mix(x: int) -> int:
    """splitmix64's finaliser: well spread and, unlike hash(), the same in every run."""
    x = (x + GOLDEN) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    # Real HubSpot drops the fraction on whole seconds; consumers must normalise both forms.
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def parse_iso_ms(text: str) -> int:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def as_int(value: Any) -> int | None:
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


# --------------------------------------------------------------------------- replies and errors


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
CORRELATION_HEADER = "X-HubSpot-Correlation-Id"  # on every answer HubSpot gives, error pages too


@dataclass
class Reply:
    """One API answer: `body` is JSON; `text`, when set, is written instead, as it is, with the
    Content-Type its headers name (an HTML error page of the CDN in front of HubSpot)."""

    status: int
    body: dict | None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None


def correlate(reply: Reply) -> None:
    """Give ``reply`` HubSpot's `X-HubSpot-Correlation-Id` header, unless it has one: the
    ``correlationId`` of its error body if that is a UUID, else a new UUID. HubSpot sends it on every answer,
    so a client that reads it from the header (where an HTML page has no body to say it)
    is tested against the sandbox too."""
    if any(name.lower() == CORRELATION_HEADER.lower() for name in reply.headers):
        return
    said = reply.body.get("correlationId") if isinstance(reply.body, dict) else None
    # A scripted body's id that is no UUID (a test's "id\n") stays in the body only: in a
    # header it would break the answer.
    same = isinstance(said, str) and _UUID.fullmatch(said)
    reply.headers[CORRELATION_HEADER] = said if same else str(uuid.uuid4())


class ApiError(Exception):
    """Ends a request early with `reply`."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def error_body(message: str, category: str, **extra: Any) -> dict:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def api_error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> ApiError:
    category = _CATEGORIES.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
    return ApiError(Reply(status, error_body(message, category, **extra), dict(headers or {})))


def bad_request(message: str) -> ApiError:
    return api_error(400, message)


def admin_reply(method: str, path: str, action: Callable[[], Any] | None,
                check: Callable[[], None] | None = None) -> Reply:
    """The reply of a sandbox admin route: ``action``'s result (204 when None), a 404 for no
    route or an unknown id (KeyError), a 400 for a value it refuses (TypeError, ValueError)
    or that ``check`` refuses before it runs."""
    try:
        if action is None:
            raise api_error(404, f"No sandbox route for {method} {path}")
        if check is not None:
            check()
        result = action()
    except ApiError as stop:
        return stop.reply
    except KeyError as missing:
        return api_error(404, f"Not found: {missing}").reply
    except (TypeError, ValueError) as invalid:
        return bad_request(str(invalid)).reply
    return Reply(204, None) if result is None else Reply(200, result)


def int_param(value: Any, name: str, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    number = as_int(value)
    if number is None or number < low or (high is not None and number > high):
        upper = f" and at most {high}" if high is not None else ""
        raise bad_request(f"Invalid value {value!r} for '{name}': must be an integer of at least {low}{upper}.")
    return number


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    payload: Any
    valid_json: bool
    base_url: str

