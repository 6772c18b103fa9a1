"""Timestamps as HubSpot writes them and as the service writes them: epoch milliseconds in,
fixed-width UTC ISO-8601 out."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache

from .redact import quote

MIN_MS = 0  # 1970-01-01T00:00:00.000Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z: the last instant with a 4-digit year

_EPOCH_MS = re.compile(r"-?\d{1,30}", re.ASCII)
SHOWN = 80  # characters of a refused value quoted back (redacted before it is cut)


def parse_timestamp(value: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp as HubSpot writes them (with or
    without fractional seconds, `Z` or an offset) or of an epoch-millisecond string."""
    value = value.strip()
    if _EPOCH_MS.fullmatch(value):
        ms = int(value)
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {quote(value, SHOWN)!r}") from None
        if parsed.tzinfo is None:
            # HubSpot timestamps are UTC; a zoneless value is read the same way.
            parsed = parsed.replace(tzinfo=timezone.utc)
        ms = _datetime_to_ms(parsed)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"timestamp {quote(value, SHOWN)!r} is outside 1970-01-01 .. 9999-12-31")
    return ms


def _datetime_to_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def format_ms(ms: int) -> str:
    """Fixed-width UTC ISO-8601 with milliseconds: sorts bytewise like the number."""
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"epoch ms {ms} is outside 1970-01-01 .. 9999-12-31")
    seconds, millis = divmod(ms, 1000)
    return f"{_format_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    # Cached: an export formats one timestamp per record, and neighbours share seconds.
    return f"{datetime.fromtimestamp(seconds, tz=timezone.utc):%Y-%m-%dT%H:%M:%S}"
