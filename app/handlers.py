"""The HTTP surface: one method per operationId of openapi.yaml. Thin on purpose.

Connexion validates the parameters against the spec before a handler runs; handlers turn
them into an export and a streaming response.
"""

from __future__ import annotations

import logging
import time
from itertools import chain
from typing import Any, Callable, Iterator

from connexion.exceptions import BadRequestProblem
from starlette.responses import StreamingResponse

from .continuation import InvalidSince, parse_since
from .errors import UpstreamError
from .export import Exporter, ExportStats, json_array

log = logging.getLogger(__name__)

OPERATION_PREFIX = "app.handlers."


class ContactsApi:
    """The operations, bound to the exporter they serve from."""

    def __init__(self, exporter: Exporter, *, on_sandbox: bool) -> None:
        self._exporter = exporter
        self._on_sandbox = on_sandbox

    def resolve(self, operation_id: str) -> Callable[..., Any]:
        """Connexion's function resolver: `app.handlers.X` is this object's method X."""
        return getattr(self, operation_id.removeprefix(OPERATION_PREFIX))

    def get_contacts(self, since: str | None = None, limit: int | None = None) -> StreamingResponse:
        try:
            start = parse_since(since)
        except InvalidSince as exc:
            raise BadRequestProblem(detail=str(exc)) from None
        stats = ExportStats()
        began = time.perf_counter()
        chunks = json_array(self._exporter.entities(start, limit, stats), stats)
        try:
            # Read the first chunk here, so that a HubSpot failure before any byte is
            # answered with a proper error status instead of a broken 200.
            first = next(chunks)
        except UpstreamError as exc:
            _summary(since, limit, stats, began, outcome=f"failed: {exc}")
            raise
        body = chain([first], chunks)
        return StreamingResponse(_logged(body, since, limit, stats, began),
                                 media_type="application/json")

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "sandbox": self._on_sandbox}


def _logged(body: Iterator[bytes], since: str | None, limit: int | None, stats: ExportStats,
            began: float) -> Iterator[bytes]:
    finished = False
    try:
        yield from body
        finished = True
    finally:
        if stats.error:
            outcome = f"aborted mid-stream: {stats.error}"
        else:
            outcome = "ok" if finished else "client went away"
        _summary(since, limit, stats, began, outcome)


def _summary(since: str | None, limit: int | None, stats: ExportStats, began: float,
             outcome: str) -> None:
    log.info("get_contacts", extra={
        "since": since, "limit": limit, "entities": stats.entities, "deleted": stats.deleted,
        "search_pages": stats.search_pages, "list_pages": stats.list_pages,
        "duration_s": round(time.perf_counter() - began, 3), "outcome": outcome,
    })
