"""Consuming /get_contacts as Sesam does: one streamed GET, the body read as it arrives.

Entities are counted in the byte stream without parsing the whole array (a full export of
200,000 contacts is hundreds of MB): every entity the service writes starts with
``{"_id":"…","_updated":"…"`` and that text cannot occur inside a JSON string (its quotes
would be escaped), so counting it counts entities. The body must be a complete JSON array;
anything else (an error status, or a body the service ended as invalid JSON) is a failed run.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import requests

from .procs import BenchError

CHUNK = 64 * 1024
READ_TIMEOUT = 300.0
MAX_SECONDS = 900.0  # a bound on one export, whatever happens
_ENTITY = re.compile(rb'\{"_id":"([^"\\]*)","_updated":"([^"\\]*)"')
_TAIL = 256  # longer than one entity head, so a head split across chunks is seen whole


@dataclass
class Export:
    """What one consumer saw of one export."""

    entities: int = 0
    bytes: int = 0
    seconds: float = 0.0  # request sent -> last body byte
    ttfb: float = 0.0  # request sent -> first body byte
    last_updated: str | None = None  # the greatest _updated: entities come in increasing order
    ids: dict[str, str] = field(default_factory=dict)  # _id -> _updated, when collected

    @property
    def rate(self) -> float:
        return self.entities / self.seconds if self.seconds else 0.0


class Refused(BenchError):
    """The service refused the export with a 503 and Retry-After (too many exports at once,
    or HubSpot unavailable)."""


def consume(session: requests.Session, url: str, since: str | None = None, limit: int | None = None,
            collect: bool = False, first_byte_only: bool = False, path: str = "/get_contacts",
            **extra: str) -> Export:
    """One export of `url` + `path` (with the query parameters in `extra`), streamed;
    BenchError unless it is a complete JSON array.

    `first_byte_only` hangs up after the first body bytes (for the time to first byte).
    """
    params: dict[str, str | int] = dict(extra)
    if since is not None:
        params["since"] = since
    if limit is not None:
        params["limit"] = limit
    export = Export()
    began = time.perf_counter()
    with session.get(url + path, params=params, stream=True, timeout=(10, READ_TIMEOUT)) as response:
        if response.status_code == 503 and "Retry-After" in response.headers:
            raise Refused(f"GET {path} {params}: 503 {response.text[:200]}")
        if response.status_code != 200:
            raise BenchError(f"GET {path} {params}: {response.status_code} {response.text[:500]}")
        pending = b""
        first = last = b""
        for chunk in response.iter_content(CHUNK):
            if not chunk:
                continue
            if not export.bytes:
                export.ttfb = time.perf_counter() - began
                first = chunk[:1]
                if first_byte_only:
                    export.bytes = len(chunk)
                    return export
            export.bytes += len(chunk)
            last = (last + chunk)[-_TAIL:]
            pending = _scan(pending + chunk, export, collect)
            if time.perf_counter() - began > MAX_SECONDS:
                raise BenchError(f"an export took more than {MAX_SECONDS:.0f} s")
    export.seconds = time.perf_counter() - began
    if first != b"[" or not last.rstrip().endswith(b"]"):
        raise BenchError(f"GET {path} {params}: the body is not a complete JSON array: ...{last[-200:]!r}")
    return export


def _scan(buffer: bytes, export: Export, collect: bool) -> bytes:
    """Count the entity heads complete in `buffer`; return what may still hold a partial one."""
    end = 0
    for match in _ENTITY.finditer(buffer):
        export.entities += 1
        export.last_updated = match[2].decode()
        if collect:
            export.ids[match[1].decode()] = export.last_updated
        end = match.end()
    return buffer[max(end, len(buffer) - _TAIL):]
