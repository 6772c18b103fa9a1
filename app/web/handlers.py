"""The HTTP surface: one method per operationId of openapi.yaml. Thin on purpose.

Connexion validates the parameters against the spec before a handler runs; handlers turn
them into an export of the sync layer and a streaming response. The spec's operationIds
(``app.handlers.get_contacts``, …, as published) name the methods of `Handlers`.

/health and /metrics are async, so they answer on the event loop whatever the exports do;
an export takes a slot (or is refused) and does its blocking work in the exports' own
threads (`slots`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from connexion.exceptions import BadRequestProblem, ProblemException
from starlette.responses import Response, StreamingResponse

from ..metrics import Metrics
from ..object_types import CONTACTS, ObjectType, UnknownObjectType
from ..sync import Crm, Entity, ExportStats, InvalidSince, parse_since
from ..sync.history import InvalidHistory, UnknownProperty
from ..sync.positions import Position
from ..sync.readiness import READY_SECONDS, ReadinessCheck
from ..sync.reference import OWNERS
from .problems import logged, not_ready
from .slots import ExportResponse, ExportSlots
from .stream import ExportCall, json_array

OPERATION_PREFIX = "app.handlers."
# What the reference exports count as in the metrics and summary lines (`object_type`).
OWNER_EXPORT = ObjectType(OWNERS, OWNERS, scope="crm.objects.owners.read")
Entities = Callable[[ExportStats], Iterator[Entity]]


class Handlers:
    """The operations, bound to the CRM they export from."""

    def __init__(self, crm: Crm, readiness: ReadinessCheck, metrics: Metrics, slots: ExportSlots,
                 *, on_sandbox: bool) -> None:
        self._crm = crm
        self._slots = slots
        self._readiness = readiness
        self._metrics = metrics
        self._on_sandbox = on_sandbox

    def resolve(self, operation_id: str) -> Callable[..., Any]:
        """Connexion's function resolver: `app.handlers.X` is this object's method X."""
        return getattr(self, operation_id.removeprefix(OPERATION_PREFIX))  # type: ignore[no-any-return]

    async def get_contacts(self, since: str | None = None, limit: int | None = None,
                           history: str | None = None,
                           values: str | None = None) -> StreamingResponse:
        return await self.get_objects(CONTACTS, since, limit, history=history, values=values)

    async def get_objects(self, objectType: str, since: str | None = None,
                          limit: int | None = None,
                          associations: str | None = None,
                          history: str | None = None,
                          values: str | None = None) -> StreamingResponse:
        start = self._start(since)
        return await self._export(self._first_chunk, objectType, start, since, limit,
                                  associations, history, values or self._crm.values)

    async def get_owners(self, since: str | None = None) -> StreamingResponse:
        start = self._start(since)
        return await self._export(self._begin, OWNER_EXPORT, since, None,
                                  lambda stats: self._crm.reference.owners(start, stats))

    async def get_pipelines(self, objectType: str) -> StreamingResponse:
        return await self._export(self._reference, objectType, "pipelines")

    async def get_pipeline_stages(self, objectType: str) -> StreamingResponse:
        return await self._export(self._reference, objectType, "stages")

    async def get_property_definitions(self, objectType: str) -> StreamingResponse:
        return await self._export(self._reference, objectType, "properties")

    @staticmethod
    def _start(since: str | None) -> Position:
        try:
            return parse_since(since)
        except InvalidSince as exc:
            raise BadRequestProblem(detail=str(exc)) from None

    async def _export(self, first_chunk: Callable[..., tuple[bytes, Iterator[bytes], ExportCall]],
                      *args: Any) -> StreamingResponse:
        """An export in a slot of its own: ``first_chunk(*args)`` in the export's thread,
        then the rest of the body streamed."""
        slot = self._slots.take()  # or a 503, before anything reads HubSpot
        try:
            first, body, export = await slot.run(first_chunk, *args)
        except BaseException:
            slot.release()
            raise
        return ExportResponse(first, body, slot, on_disconnect=export.leave)

    def _first_chunk(self, objectType: str, start: Position, since: str | None,
                     limit: int | None, associations: str | None, history: str | None,
                     values: str
                     ) -> tuple[bytes, Iterator[bytes], ExportCall]:
        """The first chunk of a records export (see `_begin`). The names are checked before
        the export counts as begun, so a refused one leaves no export in progress."""
        kind = self._resolve(objectType)
        related = self._associated(associations)
        try:
            with_history = self._crm.history_names(kind, history)
        except UnknownProperty as exc:  # well-formed, not in this portal: as an unknown type
            raise ProblemException(status=404, title="Unknown property", detail=str(exc)) from None
        except InvalidHistory as exc:
            raise BadRequestProblem(detail=str(exc)) from None
        return self._begin(kind, since, limit, lambda stats: self._crm.entities(
            kind, start, limit, stats, related, with_history, values), values)

    def _reference(self, objectType: str, what: str) -> tuple[bytes, Iterator[bytes], ExportCall]:
        """The first chunk of the pipelines, stages or property definitions of a type."""
        kind = self._resolve(objectType)
        export = getattr(self._crm.reference, what)
        return self._begin(dataclasses.replace(kind, name=f"{kind.name} {what}"), None, None,
                           lambda stats: export(kind, stats))

    def _begin(self, kind: ObjectType, since: str | None, limit: int | None,
               entities: Entities, values: str = "strings"
               ) -> tuple[bytes, Iterator[bytes], ExportCall]:
        """The export's first chunk, read here (in the export's thread) so that a HubSpot
        failure before any byte is answered with a proper error status instead of a broken
        200, and the body that goes on from it. ``kind`` names the export in its metrics
        and summary line (with the ``values`` it writes)."""
        export = ExportCall(self._metrics, kind, since, limit, values)
        body = export.watch(json_array(export.counted(entities(export.stats)), export.aborted))
        try:
            return next(body), body, export
        except Exception as exc:  # summed up by watch
            raise logged(exc) from exc

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

    async def health(self) -> tuple[dict[str, Any], int, dict[str, str]]:
        # Named, because the operation also declares a problem+json answer (its 400).
        return ({"status": "ok", "sandbox": self._on_sandbox}, 200,
                {"Content-Type": "application/json"})

    def ready(self) -> tuple[dict[str, Any], int, dict[str, str]]:
        # Sync: it may ask HubSpot, in a thread of Starlette's pool (no export uses it).
        report = self._readiness.report()
        if not report.ready:
            raise not_ready(report, READY_SECONDS)
        return ({"status": "ready", "checks": report.checks}, 200,
                {"Content-Type": "application/json"})

    async def metrics(self) -> Response:
        return Response(self._metrics.render(), media_type=self._metrics.content_type)
