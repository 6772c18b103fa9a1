"""The one rule for everything that leaves the service: HTTP answers (problem bodies, the
streamed export and its `!! EXPORT ABORTED` trailer, metrics) and log records.

Two exits apply it to every byte: `web.middleware.redact` (the outermost HTTP layer) and
the log filter of `app.logs`. Both replace the HubSpot token with `[REDACTED]`, whatever
quoted it: HubSpot's error text, a record's property, a proxy in between. Where the service quotes
text it did not write (HubSpot's message, a value from an unusable answer), `quote` makes
it one bounded line and `correlation_id` keeps an id only if it is a UUID, so a
misbehaving upstream cannot fill an answer or a log line, nor add lines to either.
"""

from __future__ import annotations

import json
import re
from typing import Any

REDACTED = "[REDACTED]"
QUOTE_LIMIT = 300  # characters of upstream text quoted in one answer or log field
LINE_LIMIT = 1000  # characters of a line made of quoted fields (a problem detail, a trailer)
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def quote(text: Any, limit: int = QUOTE_LIMIT) -> str:
    """Upstream text as one line of at most ``limit`` characters (control characters and
    line breaks become a space)."""
    line = _UNPRINTABLE.sub(" ", str(text)).strip()
    return line if len(line) <= limit else line[:limit - 3] + "..."


def correlation_id(value: Any) -> str | None:
    """HubSpot's correlationId if it is one (a UUID), else None: anything else is not
    worth quoting to the caller and may carry what it should not."""
    return value if isinstance(value, str) and _UUID.fullmatch(value) else None


class Redactor:
    """Replaces secrets (as written, and as a JSON string would escape them) in text and
    bytes; empty ones are ignored."""

    def __init__(self, *secrets: str | None) -> None:
        forms = {form for s in secrets if s for form in (s, json.dumps(s)[1:-1])}
        self._texts = sorted(forms, key=len, reverse=True)
        self._bytes = [form.encode() for form in self._texts]
        self.reach = max((len(b) for b in self._bytes), default=0)  # longest secret, bytes

    def __bool__(self) -> bool:
        return bool(self._texts)

    def text(self, value: str) -> str:
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, REDACTED.encode())
        return value
