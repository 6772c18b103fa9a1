"""Configuration: read once from the environment at start into one typed object.

Invalid values stop the service with a one-line message naming the variable. The names of
the Sesam tutorial (`api-key`, `base-url`, `since-field`, `since-operator`, `port`) are
accepted too, so a system config written for it keeps working.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

DEFAULT_BASE_URL = "https://api.hubapi.com"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# How an export writes property values: as HubSpot sends them (text), or in Sesam's types by
# the property catalogue (app/sync/values.py). A request's `values` wins over HUBSPOT_VALUES.
VALUE_MODES = ("strings", "typed")
SHOWN_CHARS = 60  # of a refused value, at most this much is quoted in the message

# Numbers are ASCII digits, a float with at most one decimal point: Python's int() and
# float() also take 1_000, fullwidth and other scripts' digits, 1e3, inf and nan.
WHOLE = re.compile(r"[0-9]+")
DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
# A base URL: http(s), a host (a name, an IPv4 address or a bracketed IPv6 one), a port
# if any, a path if any; nothing else (no user info, query or fragment).
URL = re.compile(r"(https?)://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(/[^\s?#]*)?")
PORTS = (1, 65535)

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that the service cannot run with."""


class Unquotable(ValueError):
    """A value refused for a reason that its message gives, without quoting the value
    (which may hold a secret, such as a password in a URL)."""


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with. ``token`` None: not set (only the
    sandbox runs without one)."""

    token: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    host: str = "127.0.0.1"
    port: int = 5000
    modified_property: str = "lastmodifieddate"
    properties: tuple[str, ...] = ()  # empty: every property in HubSpot's catalogue
    # The same for the other object types, by type: ((type, properties), ...).
    object_properties: tuple[tuple[str, tuple[str, ...]], ...] = ()
    properties_cache_seconds: float = 3600.0
    settle_seconds: float = 60.0
    archived_snapshot_seconds: float | None = None  # None: the settle time
    search_page_size: int = 200
    search_concurrency: int = 6
    list_page_size: int = 100
    include_deleted: bool = True
    search_rate_per_second: int = 4
    general_rate_per_10s: int = 100
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retry_wait_seconds: float = 120.0
    max_retries: int = 8
    retry_initial_wait: float = 0.5
    log_level: str = "INFO"
    log_format: str = "json"
    sandbox_contacts: int = 3000
    auth_username: str | None = None  # both set: callers must send these (HTTP basic)
    auth_password: str | None = field(default=None, repr=False)
    ignored: tuple[str, ...] = ()  # variables read but without effect, logged at start
    # Exports running at once; one more is refused with a 503 (Sesam retries a failed run).
    max_concurrent_exports: int = 10
    # How long a client may take to send a whole request head before the server closes it.
    request_head_timeout: float = 15.0
    # The most one HubSpot answer may weigh (decoded), in MiB: see HUBSPOT_MAX_ANSWER_MB.
    max_answer_mb: float = 16.0
    # How long one listing of a type's archived records may take before it is given up.
    archived_listing_seconds: float = 900.0
    # How long an incremental export waits for a renewal of the archived snapshot that is
    # under way before it answers from the snapshot it has (the first one is always waited
    # for). 0: never, so an export never waits for a listing once a snapshot exists.
    archived_wait_seconds: float = 0.0
    # The most the archived listings may use of HubSpot's daily limit, in percent: the
    # snapshot interval grows with the listing's cost to stay within it.
    listing_daily_share: float = 10.0
    # Property values as HubSpot sends them ("strings") or typed ("typed"): see VALUE_MODES.
    values: str = "strings"

    @property
    def snapshot_seconds(self) -> float:
        """How long one listing of a type's archived records serves every export of it."""
        if self.archived_snapshot_seconds is None:
            return self.settle_seconds
        return self.archived_snapshot_seconds


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    # Empty is not unset: an empty value is a deployment mistake (a missing secret or
    # $ENV(...)), and taking the default for it would hide that.
    for name in names:
        value = env.get(name)
        if value is not None:
            if value.strip() == "":
                raise ConfigError(f"{name} is empty: give it a value or leave it out")
            return name, value.strip()
    return None


def _read(
    env: Mapping[str, str],
    names: tuple[str, ...],
    convert: Callable[[str], T],
    default: T,
    rule: str,
    check: Callable[[T], bool] = lambda _: True,
) -> T:
    found = _first(env, *names)
    if found is None:
        return default
    name, raw = found
    try:
        value = convert(raw)
    except Unquotable as exc:
        raise ConfigError(f"{name} is invalid: {exc}") from None
    except ValueError:
        raise ConfigError(f"{name}={raw[:SHOWN_CHARS]!r} is invalid: expected {rule}") from None
    if not check(value):
        raise ConfigError(f"{name}={raw[:SHOWN_CHARS]!r} is invalid: expected {rule}")
    return value


@dataclass(frozen=True)
class Variable:
    """One environment variable: the setting it fills, its names (the documented one
    first, then the tutorial's), how it is read, and the rule it must meet."""

    field: str
    names: tuple[str, ...]
    convert: Callable[[str], Any]
    rule: str
    check: Callable[[Any], bool] = lambda _: True
    low: float | None = None  # a number's range, inclusive; finite by construction
    high: float | None = None

    @property
    def default(self) -> Any:
        return Settings.__dataclass_fields__[self.field].default

    def read(self, env: Mapping[str, str]) -> Any:
        return _read(env, self.names, self.convert, self.default, self.rule, self.check)


def number(field: str, names: tuple[str, ...], kind: type, low: float, high: float,
           unit: str = "") -> Variable:
    """A numeric variable with a finite range (so inf and nan are refused too)."""
    span = f"from {show(low)} to {show(high)}"
    rule = f"a whole number {span}" if kind is int else f"{unit or 'a number'} {span}"
    return Variable(field, names, _plain(kind), rule, lambda v: low <= v <= high, low, high)


def _plain(kind: type) -> Callable[[str], Any]:
    """``kind``'s conversion of plain ASCII digits only (see `WHOLE`, `DECIMAL`)."""
    pattern = WHOLE if kind is int else DECIMAL

    def convert(raw: str) -> Any:
        if not pattern.fullmatch(raw):
            raise ValueError(raw)
        return kind(raw)
    return convert


def show(value: Any) -> str:
    """A value as the README and the messages write it (3600, not 3600.0)."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _base_url(raw: str) -> str:
    """An http(s) URL of a host, as `URL` has it. User info is refused without quoting the
    value: requests would send it as Basic auth instead of the token (HubSpot's 401 would
    then blame the token), and the URL, password and all, is logged at start."""
    if "@" in raw:
        raise Unquotable("a URL with user info (user:password@) is refused: the service "
                         "authenticates to HubSpot with its access token; give the URL without it")
    url = raw.rstrip("/")
    # The tutorial's base-url ends in /crm/v3; this service appends that itself.
    url = re.sub(r"/crm/v3$", "", url)
    match = URL.fullmatch(url)
    if match is None or (match[3] is not None and not PORTS[0] <= int(match[3]) <= PORTS[1]):
        raise ValueError(raw)
    if match[2].startswith("["):
        ipaddress.IPv6Address(match[2][1:-1])  # its ValueError: not an address
    return url


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names or not all(re.fullmatch(r"[A-Za-z0-9_]+", n) for n in names):
        raise ValueError(raw)
    return names


def _object_names(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``companies=name,domain;deals=dealname``: each type once, contacts excluded (they
    have HUBSPOT_PROPERTIES, the tutorial's setting)."""
    pairs = []
    for part in raw.split(";"):
        if not part.strip():
            continue
        kind, equals, names = part.partition("=")
        kind = kind.strip()
        if not equals or not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", kind) or kind == "contacts":
            raise ValueError(raw)
        pairs.append((kind, _names(names)))
    if not pairs or len({kind for kind, _ in pairs}) != len(pairs):
        raise ValueError(raw)
    return tuple(pairs)


def load(env: Mapping[str, str]) -> Settings:
    """Build the settings from ``env``; raise ConfigError naming the first bad variable."""
    token = _first(env, "HUBSPOT_ACCESS_TOKEN", "api-key")
    if token is not None and not re.fullmatch(r"[\x21-\x7e]+", token[1]):
        raise ConfigError(f"{token[0]} is invalid: a token is one word of printable ASCII")
    ignored = tuple(n for n in ("since-operator",) if _first(env, n) is not None)
    username, password = _first(env, "AUTH_USERNAME"), _first(env, "AUTH_PASSWORD")
    if (username is None) != (password is None):
        missing = "AUTH_PASSWORD" if password is None else "AUTH_USERNAME"
        raise ConfigError(f"{missing} is missing: basic authentication needs AUTH_USERNAME "
                          "and AUTH_PASSWORD both, or neither")
    if username is not None and ":" in username[1]:
        raise ConfigError("AUTH_USERNAME is invalid: a basic-auth user name has no ':'")
    values = {variable.field: variable.read(env) for variable in VARIABLES}
    return Settings(
        token=token[1] if token else None,
        **values,
        auth_username=username[1] if username else None,
        auth_password=password[1] if password else None,
        ignored=ignored,
    )


# Every variable but the token, basic auth and the ignored tutorial one. The ranges are
# what makes sense for HubSpot: timeouts and waits within Sesam's 1800 s read timeout,
# a settle time of at most an hour (HubSpot's search lags "a few moments"), HubSpot's
# page sizes and rate limits.
VARIABLES: tuple[Variable, ...] = (
    Variable("base_url", ("HUBSPOT_BASE_URL", "base-url"), _base_url,
             f"an http(s) URL of a host (and a port from {PORTS[0]} to {PORTS[1]}), such as "
             "https://api.hubapi.com"),
    Variable("host", ("HOST",), str, "an interface address such as 0.0.0.0",
             lambda h: re.fullmatch(r"[0-9A-Za-z.:\-]+", h) is not None),
    number("port", ("PORT", "port"), int, 1, 65535),
    Variable("modified_property", ("HUBSPOT_MODIFIED_PROPERTY", "since-field"), str,
             "a HubSpot property name", lambda s: re.fullmatch(r"[A-Za-z0-9_]+", s) is not None),
    Variable("properties", ("HUBSPOT_PROPERTIES",), _names,
             "comma-separated HubSpot property names"),
    Variable("object_properties", ("HUBSPOT_OBJECT_PROPERTIES",), _object_names,
             "type=names;type=names, such as companies=name,domain;deals=dealname (each type "
             "once; contacts take HUBSPOT_PROPERTIES)"),
    number("properties_cache_seconds", ("HUBSPOT_PROPERTIES_CACHE_SECONDS",), float, 0, 86400,
           "seconds"),
    number("settle_seconds", ("HUBSPOT_SEARCH_SETTLE_SECONDS",), float, 0, 3600, "seconds"),
    number("archived_snapshot_seconds", ("HUBSPOT_ARCHIVED_SNAPSHOT_SECONDS",), float, 0, 3600,
           "seconds"),
    number("search_page_size", ("HUBSPOT_SEARCH_PAGE_SIZE",), int, 2, 200),
    number("search_concurrency", ("HUBSPOT_SEARCH_CONCURRENCY",), int, 1, 10),
    number("list_page_size", ("HUBSPOT_LIST_PAGE_SIZE",), int, 1, 100),
    Variable("include_deleted", ("HUBSPOT_INCLUDE_DELETED",), _boolean, "true or false"),
    number("search_rate_per_second", ("HUBSPOT_SEARCH_RATE_PER_SECOND",), int, 1, 100),
    number("general_rate_per_10s", ("HUBSPOT_RATE_PER_10_SECONDS",), int, 1, 1000),
    number("connect_timeout", ("HUBSPOT_CONNECT_TIMEOUT",), float, 0.1, 60, "seconds"),
    number("read_timeout", ("HUBSPOT_READ_TIMEOUT",), float, 0.1, 600, "seconds"),
    number("max_retry_wait_seconds", ("HUBSPOT_MAX_RETRY_WAIT_SECONDS",), float, 0, 1800,
           "seconds"),
    number("max_retries", ("HUBSPOT_MAX_RETRIES",), int, 0, 50),
    number("retry_initial_wait", ("HUBSPOT_RETRY_INITIAL_WAIT",), float, 0, 30, "seconds"),
    Variable("log_level", ("LOG_LEVEL",), str.upper, " or ".join(LOG_LEVELS),
             lambda v: v in LOG_LEVELS),
    Variable("log_format", ("LOG_FORMAT",), str.lower, "json or text",
             lambda v: v in ("json", "text")),
    number("sandbox_contacts", ("SANDBOX_CONTACTS",), int, 0, 1_000_000),
    number("max_concurrent_exports", ("MAX_CONCURRENT_EXPORTS",), int, 1, 32),
    number("request_head_timeout", ("REQUEST_HEAD_TIMEOUT_SECONDS",), float, 1, 300, "seconds"),
    # One answer is held whole while it is parsed: a real page (200 records of a few
    # hundred properties, or a 1,000-record association batch) is a few MiB at most; 64 MiB
    # is half of the 128 MB container Sesam gives by default.
    number("max_answer_mb", ("HUBSPOT_MAX_ANSWER_MB",), float, 1, 64, "megabytes (MiB)"),
    # Within Sesam's read timeout; at the default budget (100 calls/10 s) 900 s lists 9,000
    # pages, 900,000 archived records.
    number("archived_listing_seconds", ("HUBSPOT_ARCHIVED_LISTING_SECONDS",), float, 10, 1800,
           "seconds"),
    # 0 never waits; at most the listing's own bound.
    number("archived_wait_seconds", ("HUBSPOT_ARCHIVED_WAIT_SECONDS",), float, 0, 1800,
           "seconds"),
    # Of HubSpot's daily limit (at least 250,000 calls on every plan): 1 % keeps the listings
    # out of the way; 50 % leaves the other half for everything else.
    number("listing_daily_share", ("HUBSPOT_LISTING_DAILY_SHARE",), float, 1, 50, "percent"),
    # Typed values are opt-in: the default keeps every export as it was.
    Variable("values", ("HUBSPOT_VALUES",), str.lower, " or ".join(VALUE_MODES),
             lambda v: v in VALUE_MODES),
)
