"""The one rule for everything that leaves the service: HTTP answers (problem bodies, the
streamed export and its `!! EXPORT ABORTED` trailer, metrics) and log records.

Two exits apply it to every byte: `web.middleware.redact` (the outermost HTTP layer) and
the log filter of `app.logs`. Both replace the HubSpot token with `[REDACTED]`, whatever
quoted it: HubSpot's error text, a record's property, a proxy in between. Where the service quotes
text it did not write (HubSpot's message, a value from an unusable answer), `quote` makes
it one bounded line and `correlation_id` keeps an id only if it is a UUID, so a
misbehaving upstream cannot fill an answer or a log line, nor add lines to either.

The exits only see a secret that is still whole: a quote that cut it in two would let all
of it but its last characters through. So `quote` redacts before it cuts, every secret the
service holds: making a `Redactor` for a secret (the HubSpot client, the response layer and
the log filter each make one for the token) also registers it with `quote`, so no exit can
hold a secret that `quote` does not know.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

REDACTED = "[REDACTED]"
QUOTE_LIMIT = 300  # characters of upstream text quoted in one answer or log field
LINE_LIMIT = 1000  # characters of a line made of quoted fields (a problem detail, a trailer)
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
ELLIPSIS = "..."  # ends a quote that was cut; counted in its limit
# Integers longer than this are described, not written: Python refuses to write one of more
# than 4300 digits, and no id, count or time HubSpot sends comes near it.
INT_BITS = 256


def quote(text: Any, limit: int = QUOTE_LIMIT) -> str:
    """Upstream text as one line of at most ``limit`` characters (control characters and
    line breaks become a space), with every registered secret redacted first: cutting a
    secret in two would hide it from the exits' redaction.

    Text is quoted as it is; a structure (dict, list) only by its type and size, since its
    ``str()`` could recurse past Python's limit (HubSpot's JSON may nest 1,000 deep) or be
    any size; a huge integer by its size, since Python will not write it."""
    line = _UNPRINTABLE.sub(" ", _registered.text(_text(text))).strip()
    return line if len(line) <= limit else line[:max(limit - len(ELLIPSIS), 0)] + ELLIPSIS[:limit]


def _text(value: Any) -> str:
    """``value`` as text, in bounded time and depth."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= INT_BITS else f"an integer of {value.bit_length()} bits"
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return f"a {type(value).__name__} of {len(value)} items"
    return str(value)  # floats, exceptions: their text is bounded


def correlation_id(value: Any) -> str | None:
    """HubSpot's correlationId if it is one (a UUID), else None: anything else is not
    worth quoting to the caller and may carry what it should not."""
    return value if isinstance(value, str) and _UUID.fullmatch(value) else None


class Redactor:
    """Replaces secrets (as written, and as a JSON string would escape them) in text and
    bytes; empty ones are ignored. Making one registers its secrets with `quote`
    (``register=False``: not, for the registry's own)."""

    def __init__(self, *secrets: str | None, register: bool = True) -> None:
        forms = {form for s in secrets if s for form in (s, json.dumps(s)[1:-1])}
        self._texts = sorted(forms, key=len, reverse=True)
        self._bytes = [form.encode() for form in self._texts]
        self.reach = max((len(b) for b in self._bytes), default=0)  # longest secret, bytes
        if register and forms:
            _register(self._texts)

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


# Every secret a Redactor was made for, as the one Redactor `quote` applies. It is replaced
# whole when a secret is added, so a quote in another thread uses the old one or the new.
_registered = Redactor(register=False)
_registry_lock = threading.Lock()


def _register(forms: list[str]) -> None:
    global _registered
    with _registry_lock:
        known = set(_registered._texts)
        if not known.issuperset(forms):
            # The forms are registered as they are (already JSON-escaped where needed).
            _registered = Redactor(*known, *forms, register=False)
