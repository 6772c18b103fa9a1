"""The body of an export: the entities as one JSON array, streamed; a failure after the first
byte as a trailer that is not JSON; and, when it ends, the export's summary line and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

import orjson

from ..hubspot import HubSpotError
from ..metrics import Metrics
from ..object_types import ObjectType
from ..redact import LINE_LIMIT, quote
from ..sync import Entity, ExportStats

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024


def json_array(entities: Iterable[Entity], stats: ExportStats) -> Iterator[bytes]:
    """The entities as one JSON array, in chunks of about CHUNK_BYTES.

    An error before the first chunk is raised (the caller can still answer with a proper
    error status). An error after it ends the body with a line that is not JSON, so that
    Sesam sees an invalid array and does not advance its offset past what was not sent.
    HubSpot's failures are logged as such; anything else is the service's own bug, logged
    with its traceback.
    """
    buffer = bytearray(b"[")
    sent_any = False
    first = True
    try:
        for entity in entities:
            if not first:
                buffer += b","
            first = False
            buffer += orjson.dumps(entity)
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                sent_any = True
                buffer.clear()
    except Exception as exc:
        if not sent_any:
            raise
        stats.error = quote(exc, LINE_LIMIT)
        log.error("export aborted mid-stream; the body was ended as invalid JSON",
                  extra={"error": stats.error}, exc_info=not isinstance(exc, HubSpotError))
        buffer += b"\n!! EXPORT ABORTED: " + stats.error.encode("utf-8", "replace")
        buffer += b"\n!! This body is deliberately not valid JSON: retry the request.\n"
        yield bytes(buffer)
        return
    buffer += b"]"
    yield bytes(buffer)


class ExportCall:
    """One export request: its counters, and its summary line and metrics when it ends."""

    def __init__(self, metrics: Metrics, kind: ObjectType, since: str | None,
                 limit: int | None) -> None:
        self.stats = ExportStats()
        self._metrics = metrics
        self._kind = kind
        self._since = since
        self._limit = limit
        self._began = time.perf_counter()

    def watch(self, body: Iterator[bytes]) -> Iterator[bytes]:
        """``body``, with the summary once it has been sent, cut short, or left."""
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
                extra={"object_type": self._kind.name, "since": self._since, "limit": self._limit,
                       "entities": stats.entities, "deleted": stats.deleted,
                       "upstream_calls": stats.upstream_calls, "retries": stats.retries,
                       "duration_s": round(duration, 3), "outcome": outcome, "detail": message,
                       "correlation_id": correlation_id})
