"""Every answer counted in the metrics, by path and status."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...metrics import Metrics
from .limits import OBJECTS_PATH, REFERENCE_PATHS

OBJECTS_LABEL = "/objects/{objectType}"  # one metric label for every type


class CountRequests:
    """Counts every answer by path and status, errors and refusals included."""

    def __init__(self, app: ASGIApp, metrics: Metrics, paths: frozenset[str]) -> None:
        self._app = app
        self._metrics = metrics
        self._paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        # Unknown paths share one label, so that a scan cannot grow the metric without end.
        path = scope["path"]
        if path not in self._paths:
            path = OBJECTS_LABEL if OBJECTS_PATH.fullmatch(path) else next(
                (label for label, pattern in REFERENCE_PATHS.items() if pattern.fullmatch(path)), "other")

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._metrics.requests.labels(path, str(message["status"])).inc()
            await send(message)

        await self._app(scope, receive, counted)
