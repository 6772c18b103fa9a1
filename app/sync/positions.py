"""Positions in the export, and the `_updated` tokens Sesam hands back as `since`.

Everything here is pure (no I/O) so that it can be tested exhaustively.

A record's place in HubSpot's search order is its *key*: ``(modified_ms, id)``. Sesam sees
a place in the export as ``_updated``, a fixed-width string that sorts bytewise exactly like
the key::

    2024-03-05T10:11:12.345Z_0000000000000012345

The millisecond part makes the token readable for an operator; the zero-padded id breaks
ties, because HubSpot puts thousands of records on one millisecond in bulk updates and a
page boundary must never split a tie and lose the rest of it. An id merged into a survivor
is reported deleted just before it: its position has a third part, the merged id.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..hubspot.answers import MAX_ID
from ..redact import quote
from ..timestamps import MAX_MS, MIN_MS, format_ms, parse_timestamp

ID_WIDTH = 19  # digits of the largest 64-bit id; HubSpot ids are 64-bit integers
ALL_IDS = 10**ID_WIDTH  # an id above every real one: (ms, ALL_IDS) is after all of ms
# MAX_ID (2**63 - 1): HubSpot ids are signed 64-bit, a larger one cannot be searched for. The
# parsers refuse any id above it, so every token the service issues is accepted back.
SHOWN = 80  # characters of a refused `since` quoted back (redacted before it is cut)

__all__ = ["ALL_IDS", "ID_WIDTH", "MAX_ID", "MAX_MS", "MIN_MS", "START", "START_POSITION",
           "InvalidSince", "Key", "Position", "encode_key", "encode_position", "parse_since",
           "walk_start"]


class Key(NamedTuple):
    """A record's place in HubSpot search order."""

    ms: int  # modified, epoch ms
    id: int


class Position(NamedTuple):
    """A place in the export. A record, live or deleted, is at (ms, id, ALL_IDS); an id
    merged into record ``id`` is reported deleted at (ms, id, merged id), just before it."""

    ms: int
    id: int
    sub: int


START = Key(MIN_MS - 1, ALL_IDS)
"""Before every record: where the walk of a full export starts."""

START_POSITION = Position(*START, ALL_IDS)
"""Before every entity: the position of a full export."""

_TOKEN = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)_(\d{%d})(?:~(\d{%d}))?" % (ID_WIDTH, ID_WIDTH),
    re.ASCII,
)
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def _shown(since: str) -> str:
    """A refused `since` as written (its white space and control characters escaped), cut
    to SHOWN characters after any secret in it is redacted."""
    return quote(repr(since), SHOWN)


class InvalidSince(ValueError):
    """A `since` value that is neither a token this service issued nor a timestamp."""


def encode_key(key: tuple[int, int]) -> str:
    """The `_updated` token of a record's key."""
    ms, record_id = key
    if not 0 <= record_id < ALL_IDS:
        raise ValueError(f"record id {record_id} does not fit {ID_WIDTH} digits")
    return f"{format_ms(ms)}_{record_id:0{ID_WIDTH}d}"


def encode_position(position: tuple[int, int, int]) -> str:
    """The `_updated` token of a place in the export.

    A merged-away id sits just before its survivor: its token is the token of the id below
    the survivor's, then ``~`` and the merged id, so that it sorts after everything before
    the survivor and before the survivor itself, e.g. ``…345Z_0000000000000012344~00…0777``
    for 777 merged into 12345."""
    ms, record_id, sub = position
    if sub == ALL_IDS:
        return encode_key((ms, record_id))
    return f"{encode_key((ms, record_id - 1))}~{sub:0{ID_WIDTH}d}"


def walk_start(position: Position) -> Key:
    """Where the keyset walk resumes to reach everything after ``position``: after the
    record itself, or, inside a survivor's merged ids, just before the survivor."""
    ms, record_id, sub = position
    return Key(ms, record_id) if sub == ALL_IDS else Key(ms, record_id - 1)


def parse_since(since: str | None) -> Position:
    """The position after which an export resumes.

    - absent: the start (a full export);
    - a token this service issued: strictly after it (Sesam's `since` is exclusive);
    - a plain timestamp (ISO-8601 or epoch ms, e.g. a pipe's `initial_since_value`):
      everything modified at or after it, so nothing on the boundary millisecond is lost.
    """
    if since is None:
        return START_POSITION
    if since and not _PRINTABLE.fullmatch(since):  # as the spec's pattern: nothing around it
        raise InvalidSince(f"since={_shown(since)} is not valid: it has white space or "
                           "control characters")
    match = _TOKEN.fullmatch(since)
    if match:
        try:
            ms = parse_timestamp(match[1])
        except ValueError as exc:
            raise InvalidSince(f"since={_shown(since)} is not valid: {exc}") from None
        ids = [int(digits) for digits in match.groups()[1:] if digits is not None]
        if max(ids) > MAX_ID:
            # HubSpot would answer a search for it with a 400: refuse it here, as the
            # malformed value it is (this service never issues such a token).
            raise InvalidSince(f"since={_shown(since)} is not valid: its id is above "
                               f"{MAX_ID}, the largest HubSpot id")
        if len(ids) == 1:
            return Position(ms, ids[0], ALL_IDS)
        return Position(ms, ids[0] + 1, ids[1])
    if "_" in since:
        raise InvalidSince(
            f"since={_shown(since)} looks like a continuation token but is not one: expected "
            f"'YYYY-MM-DDTHH:MM:SS.mmmZ_' followed by a {ID_WIDTH}-digit record id (and "
            f"for a merged record '~' and another {ID_WIDTH} digits)"
        )
    try:
        return Position(parse_timestamp(since) - 1, ALL_IDS, ALL_IDS)
    except ValueError as exc:
        raise InvalidSince(
            f"since={_shown(since)} is not valid: {exc}. Use a value of _updated this service "
            "returned, an ISO-8601 timestamp or epoch milliseconds"
        ) from None
