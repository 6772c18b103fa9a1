"""The body of an export: the entities as one JSON array, streamed; a failure after the first
byte as a trailer that is not JSON; and, when it ends, the export's summary line and metrics,
the one line that logs its failure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import orjson

from ..hubspot import HubSpotError
from ..metrics import Metrics
from ..object_types import ObjectType
from ..redact import LINE_LIMIT, quote
from ..sync import Entity, ExportStats

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
PROGRESS_SECONDS = 30.0  # a running export says how far it got this often


def _close(items: Iterable[object]) -> None:
    """Close ``items`` if it is a generator: its clean-up (an export's HubSpot reads and
    read-ahead stopped) runs now, not whenever the collector gets to it."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


def json_array(entities: Iterable[Entity], on_abort: Callable[[Exception], str]) -> Iterator[bytes]:
    """The entities as one JSON array, in chunks of about CHUNK_BYTES.

    An error before the first chunk is raised (the caller can still answer with a proper
    error status). An error after it ends the body with a line that is not JSON, so that
    Sesam sees an invalid array and does not advance its offset past what was not sent;
    ``on_abort`` hears of it and says the reason the trailer gives.
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
        buffer += b"\n!! EXPORT ABORTED: " + on_abort(exc).encode("utf-8", "replace")
        buffer += b"\n!! This body is deliberately not valid JSON: retry the request.\n"
        yield bytes(buffer)
        return
    finally:
        _close(entities)
    buffer += b"]"
    yield bytes(buffer)


class ClientGone(Exception):
    """The client of an export has gone: its body stops at the next entity."""


class ExportCall:
    """One export request: its counters, and its summary line and metrics when it ends."""

    def __init__(self, metrics: Metrics, kind: ObjectType, since: str | None,
                 limit: int | None, values: str = "strings") -> None:
        self.stats = ExportStats()
        self.values = values  # how property values are written: strings or typed
        self.failure: Exception | None = None  # what cut the body short, if anything
        self._metrics = metrics
        self._kind = kind
        self._since = since
        self._limit = limit
        self._began = time.perf_counter()
        self._left = threading.Event()
        metrics.exports_in_progress.labels(kind.name).inc()

    def counted(self, entities: Iterable[Entity]) -> Iterator[Entity]:
        """``entities``, counted in the metrics as they are sent, with a progress line every
        PROGRESS_SECONDS."""
        live = self._metrics.entities.labels(self._kind.name, "live")
        deleted = self._metrics.entities.labels(self._kind.name, "deleted")
        sent, due = 0, self._began + PROGRESS_SECONDS
        try:
            for entity in entities:
                if self._left.is_set():
                    # Not an early end, which would close a valid (short) array: the trailer.
                    raise ClientGone("the client went away")
                (deleted if entity.get("_deleted") else live).inc()
                sent += 1
                if (now := time.perf_counter()) >= due:
                    due = now + PROGRESS_SECONDS
                    self._progress(sent, now - self._began)
                yield entity
        finally:
            _close(entities)

    def _progress(self, sent: int, seconds: float) -> None:
        rate = sent / seconds if seconds > 0 else 0.0
        expected = self.stats.expected
        if expected is not None and self._limit is not None:
            expected = min(expected, self._limit)
        left = None if expected is None or rate <= 0 else max(expected - sent, 0) / rate
        outlook = "" if left is None else f" of about {expected}, about {left:.0f} s left"
        log.info("export of %s in progress: %d entities in %.0f s%s", self._kind.name, sent, seconds,
                 outlook, extra={"object_type": self._kind.name, "since": self._since, "entities": sent,
                                 "duration_s": round(seconds, 3), "entities_per_s": round(rate, 1),
                                 "expected": expected,
                                 "seconds_left": None if left is None else round(left, 1)})

    def leave(self) -> None:
        """The client has gone (any thread may say so): the body stops reading HubSpot at
        its next entity, rather than at the end of the chunk it is filling."""
        self._left.set()

    def aborted(self, failure: Exception) -> str:
        """The body was cut short by ``failure``: the reason its trailer gives."""
        self.failure = failure
        self.stats.error = quote(failure, LINE_LIMIT)
        return self.stats.error

    def watch(self, body: Iterator[bytes]) -> Iterator[bytes]:
        """``body``, with the summary once it has been sent, cut short, or left. A failure
        before its first chunk is summed up as failed, and raised (to be answered with an
        error status). Started by its first chunk, so that closing it always sums up."""
        outcome = "client_gone"
        try:
            yield from body
            outcome = "ok"
        except Exception as exc:  # json_array raises only before the first chunk
            outcome = "failed"
            self.finish("failed", str(exc), exc)
            raise
        finally:
            if outcome == "failed":
                pass
            elif self._left.is_set():
                self.finish("client_gone", "the client went away before the end")
            elif self.failure is not None:
                self.finish("aborted", f"aborted mid-stream: {self.stats.error}", self.failure)
            elif outcome == "ok":
                self.finish("ok", "ok")
            else:
                self.finish("client_gone", "the client went away before the end")

    def finish(self, outcome: str, message: str, failure: Exception | None = None) -> None:
        """The summary line and metrics. A failure is logged here and nowhere else: as an
        error, with its traceback when it is the service's own (not HubSpot's)."""
        duration = time.perf_counter() - self._began
        stats = self.stats
        self._metrics.exports_in_progress.labels(self._kind.name).dec()
        self._metrics.exports.labels(self._kind.name, outcome).inc()
        self._metrics.export_seconds.labels(self._kind.name).observe(duration)
        if stats.unparsed:
            self._metrics.values_unparsed.labels(self._kind.name).inc(stats.unparsed)
        level = {"ok": logging.INFO, "client_gone": logging.WARNING}.get(outcome, logging.ERROR)
        if isinstance(failure, HubSpotError) and failure.status == 404:
            level = logging.WARNING  # the request named what HubSpot has not (a type's pipelines)
        own_bug = failure is not None and not isinstance(failure, HubSpotError)
        log.log(level, "export of %s %s", self._kind.name, outcome,
                exc_info=failure if own_bug else None,
                extra={"object_type": self._kind.name, "since": self._since, "limit": self._limit,
                       "entities": stats.entities, "deleted": stats.deleted,
                       "upstream_calls": stats.upstream_calls, "retries": stats.retries,
                       "history_missing": stats.history_missing,
                       "duration_s": round(duration, 3), "outcome": outcome, "detail": message,
                       "values": self.values, "unparsed_values": stats.unparsed,
                       "correlation_id": getattr(failure, "correlation_id", None)})
