"""The HTTP surface: one method per operationId of openapi.yaml. Thin on purpose.

Connexion validates the parameters against the spec before a handler runs; handlers turn
them into an export of the sync layer and a streaming response. The spec's operationIds
(``app.handlers.get_contacts``, …, as published) name the methods of `Handlers`.

/health and /metrics are async, so they answer on the event loop whatever the exports do;
an export takes a slot (or is refused) and does its blocking work in the exports' own
threads (`slots`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from connexion.exceptions import BadRequestProblem, ProblemException
from starlette.responses import Response, StreamingResponse

from ..metrics import Metrics
from ..object_types import CONTACTS, ObjectType, UnknownObjectType
from ..sync import Crm, InvalidSince, parse_since
from ..sync.positions import Position
from ..sync.readiness import READY_SECONDS, ReadinessCheck
from .problems import logged, not_ready
from .slots import ExportResponse, ExportSlots
from .stream import ExportCall, json_array

OPERATION_PREFIX = "app.handlers."


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
                           values: str | None = None) -> StreamingResponse:
        return await self.get_objects(CONTACTS, since, limit, values=values)

    async def get_objects(self, objectType: str, since: str | None = None,
                          limit: int | None = None,
                          associations: str | None = None,
                          values: str | None = None) -> StreamingResponse:
        try:
            start = parse_since(since)
        except InvalidSince as exc:
            raise BadRequestProblem(detail=str(exc)) from None
        slot = self._slots.take()  # or a 503, before anything reads HubSpot
        try:
            first, body, export = await slot.run(self._first_chunk, objectType, start, since,
                                                 limit, associations,
                                                 values or self._crm.values)
        except BaseException:
            slot.release()
            raise
        return ExportResponse(first, body, slot, on_disconnect=export.leave)

    def _first_chunk(self, objectType: str, start: Position, since: str | None,
                     limit: int | None, associations: str | None, values: str
                     ) -> tuple[bytes, Iterator[bytes], ExportCall]:
        """The export's first chunk, read here (in the export's thread) so that a HubSpot
        failure before any byte is answered with a proper error status instead of a broken
        200, and the body that goes on from it."""
        kind = self._resolve(objectType)
        related = self._associated(associations)
        export = ExportCall(self._metrics, kind, since, limit, values)
        entities = self._crm.entities(kind, start, limit, export.stats, related, values)
        body = export.watch(json_array(export.counted(entities), export.aborted))
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
