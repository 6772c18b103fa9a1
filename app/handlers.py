"""The HTTP surface: one method per operationId of openapi.yaml. Thin on purpose.

Connexion validates the parameters against the spec before a handler runs; handlers turn
them into an export and a streaming response.
"""

from __future__ import annotations

import logging
import time
from itertools import chain
from typing import Any, Callable, Iterator

from connexion.exceptions import BadRequestProblem, ProblemException
from starlette.responses import Response, StreamingResponse

from .continuation import InvalidSince, parse_since
from .crm import Crm
from .export import ExportStats, json_array
from .metrics import Metrics
from .objects import CONTACTS, ObjectType, UnknownObjectType

log = logging.getLogger(__name__)

OPERATION_PREFIX = "app.handlers."


class CrmApi:
    """The operations, bound to the CRM they export from."""

    def __init__(self, crm: Crm, metrics: Metrics, *, on_sandbox: bool) -> None:
        self._crm = crm
        self._metrics = metrics
        self._on_sandbox = on_sandbox

    def resolve(self, operation_id: str) -> Callable[..., Any]:
        """Connexion's function resolver: `app.handlers.X` is this object's method X."""
        return getattr(self, operation_id.removeprefix(OPERATION_PREFIX))

    def get_contacts(self, since: str | None = None, limit: int | None = None) -> StreamingResponse:
        return self.get_objects(CONTACTS, since, limit)

    def get_objects(self, objectType: str, since: str | None = None, limit: int | None = None,
                    associations: str | None = None) -> StreamingResponse:
        try:
            start = parse_since(since)
        except InvalidSince as exc:
            raise BadRequestProblem(detail=str(exc)) from None
        kind = self._resolve(objectType)
        related = self._associated(associations)
        export = _Export(self._metrics, kind, since, limit)
        entities = self._crm.entities(kind, start, limit, export.stats, related)
        chunks = json_array(entities, export.stats)
        try:
            # Read the first chunk here, so that a HubSpot failure before any byte is
            # answered with a proper error status instead of a broken 200.
            first = next(chunks)
        except Exception as exc:
            export.finish("failed", str(exc), correlation_id=getattr(exc, "correlation_id", None))
            raise
        return StreamingResponse(export.watch(chain([first], chunks)),
                                 media_type="application/json")

    def _resolve(self, name: str, where: str = "") -> ObjectType:
        """The type a request names; well-formed (the spec checked that) but not in this
        portal is a 404, in the path or in `associations` alike."""
        try:
            return self._crm.types.resolve(name)
        except UnknownObjectType as exc:
            raise ProblemException(status=404, title="Unknown object type",
                                   detail=f"{where}{exc}") from None

    def _associated(self, names: str | None) -> tuple[ObjectType, ...]:
        kinds = (self._resolve(name, "query parameter 'associations': ")
                 for name in (names.split(",") if names is not None else ()))
        return tuple({kind.path: kind for kind in kinds}.values())

    def health(self) -> tuple[dict[str, Any], int, dict[str, str]]:
        # Named, because the operation also declares a problem+json answer (its 400).
        return ({"status": "ok", "sandbox": self._on_sandbox}, 200,
                {"Content-Type": "application/json"})

    def metrics(self) -> Response:
        return Response(self._metrics.render(), media_type=self._metrics.content_type)


class _Export:
    """One export call: its counters, and its summary log line when it ends."""

    def __init__(self, metrics: Metrics, kind: ObjectType, since: str | None,
                 limit: int | None) -> None:
        self.stats = ExportStats()
        self._metrics = metrics
        self._kind = kind
        self._since = since
        self._limit = limit
        self._began = time.perf_counter()

    def watch(self, body: Iterator[bytes]) -> Iterator[bytes]:
        finished = False
        try:
            yield from body
            finished = True
        finally:
            if self.stats.error:
                self.finish("aborted", f"aborted mid-stream: {self.stats.error}")
            elif finished:
                self.finish("ok", "ok")
            else:
                self.finish("client_gone", "the client went away before the end")

    def finish(self, outcome: str, message: str, correlation_id: str | None = None) -> None:
        duration = time.perf_counter() - self._began
        stats = self.stats
        self._metrics.exports.labels(outcome).inc()
        self._metrics.export_seconds.observe(duration)
        self._metrics.entities.labels("live").inc(stats.entities - stats.deleted)
        self._metrics.entities.labels("deleted").inc(stats.deleted)
        log.log(logging.INFO if outcome == "ok" else logging.WARNING, "export of %s %s",
                self._kind.name, outcome,
                extra={"object_type": self._kind.name, "since": self._since, "limit": self._limit, "entities": stats.entities,
                       "deleted": stats.deleted, "upstream_calls": stats.upstream_calls,
                       "retries": stats.retries, "duration_s": round(duration, 3),
                       "outcome": outcome, "detail": message, "correlation_id": correlation_id})
