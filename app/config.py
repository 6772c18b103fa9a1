"""Configuration: read once from the environment at start into one typed object.

Invalid values stop the service with a one-line message naming the variable. The names of
the Sesam tutorial (`api-key`, `base-url`, `since-field`, `since-operator`, `port`) are
accepted too, so a system config written for it keeps working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, TypeVar

DEFAULT_BASE_URL = "https://api.hubapi.com"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with. ``token`` None means: run on the sandbox."""

    token: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    host: str = "127.0.0.1"
    port: int = 5000
    modified_property: str = "lastmodifieddate"
    properties: tuple[str, ...] = ()  # empty: every property in HubSpot's catalogue
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

    @property
    def snapshot_seconds(self) -> float:
        """How long one listing of the archived contacts serves every export."""
        if self.archived_snapshot_seconds is None:
            return self.settle_seconds
        return self.archived_snapshot_seconds


def _first(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip() != "":
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
    except ValueError:
        raise ConfigError(f"{name}={raw[:60]!r} is invalid: expected {rule}") from None
    if not check(value):
        raise ConfigError(f"{name}={raw[:60]!r} is invalid: expected {rule}")
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _base_url(raw: str) -> str:
    url = raw.rstrip("/")
    # The tutorial's base-url ends in /crm/v3; this service appends that itself.
    url = re.sub(r"/crm/v3$", "", url)
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ValueError(raw)
    return url


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names or not all(re.fullmatch(r"[A-Za-z0-9_]+", n) for n in names):
        raise ValueError(raw)
    return names


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
    positive = "a number above 0"
    return Settings(
        token=token[1] if token else None,
        base_url=_read(env, ("HUBSPOT_BASE_URL", "base-url"), _base_url, DEFAULT_BASE_URL,
                       "an http(s) URL such as https://api.hubapi.com"),
        host=_read(env, ("HOST",), str, "127.0.0.1", "an interface address such as 0.0.0.0",
                   lambda h: re.fullmatch(r"[0-9A-Za-z.:\-]+", h) is not None),
        port=_read(env, ("PORT", "port"), int, 5000, "a port number 1-65535",
                   lambda p: 1 <= p <= 65535),
        modified_property=_read(env, ("HUBSPOT_MODIFIED_PROPERTY", "since-field"), str,
                                "lastmodifieddate", "a HubSpot property name",
                                lambda s: re.fullmatch(r"[A-Za-z0-9_]+", s) is not None),
        properties=_read(env, ("HUBSPOT_PROPERTIES",), _names, (),
                         "comma-separated HubSpot property names"),
        properties_cache_seconds=_read(env, ("HUBSPOT_PROPERTIES_CACHE_SECONDS",), float,
                                       3600.0, "seconds, 0 or more", lambda v: v >= 0),
        settle_seconds=_read(env, ("HUBSPOT_SEARCH_SETTLE_SECONDS",), float, 60.0,
                             "seconds, 0 or more", lambda v: v >= 0),
        archived_snapshot_seconds=_read(env, ("HUBSPOT_ARCHIVED_SNAPSHOT_SECONDS",), float, None,
                                        "seconds, 0-3600", lambda v: 0 <= v <= 3600),
        search_page_size=_read(env, ("HUBSPOT_SEARCH_PAGE_SIZE",), int, 200,
                               "a whole number 2-200", lambda v: 2 <= v <= 200),
        search_concurrency=_read(env, ("HUBSPOT_SEARCH_CONCURRENCY",), int, 6,
                                 "a whole number 1-10", lambda v: 1 <= v <= 10),
        list_page_size=_read(env, ("HUBSPOT_LIST_PAGE_SIZE",), int, 100,
                             "a whole number 1-100", lambda v: 1 <= v <= 100),
        include_deleted=_read(env, ("HUBSPOT_INCLUDE_DELETED",), _boolean, True,
                              "true or false"),
        search_rate_per_second=_read(env, ("HUBSPOT_SEARCH_RATE_PER_SECOND",), int, 4,
                                     "a whole number 1-100", lambda v: 1 <= v <= 100),
        general_rate_per_10s=_read(env, ("HUBSPOT_RATE_PER_10_SECONDS",), int, 100,
                                   "a whole number 1-1000", lambda v: 1 <= v <= 1000),
        connect_timeout=_read(env, ("HUBSPOT_CONNECT_TIMEOUT",), float, 10.0, positive,
                              lambda v: v > 0),
        read_timeout=_read(env, ("HUBSPOT_READ_TIMEOUT",), float, 60.0, positive,
                           lambda v: v > 0),
        max_retry_wait_seconds=_read(env, ("HUBSPOT_MAX_RETRY_WAIT_SECONDS",), float, 120.0,
                                     "seconds, 0 or more", lambda v: v >= 0),
        max_retries=_read(env, ("HUBSPOT_MAX_RETRIES",), int, 8, "a whole number 0-50",
                          lambda v: 0 <= v <= 50),
        retry_initial_wait=_read(env, ("HUBSPOT_RETRY_INITIAL_WAIT",), float, 0.5,
                                 "seconds, 0 or more", lambda v: v >= 0),
        log_level=_read(env, ("LOG_LEVEL",), str.upper, "INFO", " or ".join(LOG_LEVELS),
                        lambda v: v in LOG_LEVELS),
        log_format=_read(env, ("LOG_FORMAT",), str.lower, "json", "json or text",
                         lambda v: v in ("json", "text")),
        sandbox_contacts=_read(env, ("SANDBOX_CONTACTS",), int, 3000,
                               "a whole number 0-1000000", lambda v: 0 <= v <= 1_000_000),
        auth_username=username[1] if username else None,
        auth_password=password[1] if password else None,
        ignored=ignored,
    )
