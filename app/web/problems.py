"""Errors as the caller sees them: problem+json (RFC 9457), from Connexion's handlers and from
the middleware in front of them."""

from __future__ import annotations

import json

from connexion.exceptions import InternalServerError, ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware.exceptions import ExceptionMiddleware
from starlette.types import Send

from ..hubspot import HubSpotError
from ..sync.readiness import Readiness

UNAVAILABLE_RETRY_SECONDS = 10.0  # when a 503 has no advice of HubSpot's


class Logged(ProblemException):  # type: ignore[misc]  # Connexion is untyped
    """A problem whose failure an export's summary line has logged already."""


def from_hubspot(error: HubSpotError, kind: type[ProblemException] = ProblemException) -> ProblemException:
    """HubSpot's failure as a problem: its gateway status, title and detail, HubSpot's
    correlation id, and for a 503 always a `Retry-After` (HubSpot's own advice if it gave
    one)."""
    ext = {"correlationId": error.correlation_id} if error.correlation_id else None
    advice = error.retry_after or (UNAVAILABLE_RETRY_SECONDS if error.status == 503 else None)
    headers = {"Retry-After": str(max(1, round(advice)))} if advice else None
    return kind(status=error.status, title=error.title, detail=error.detail, ext=ext, headers=headers)


def logged(failure: Exception) -> Logged:
    """The answer to an export that failed before its first byte, once its summary line has
    logged the failure: HubSpot's as its problem, the service's own as a plain 500."""
    if isinstance(failure, HubSpotError):
        problem = from_hubspot(failure, Logged)
        assert isinstance(problem, Logged)
        return problem
    internal = InternalServerError()
    return Logged(status=500, title=internal.title, detail=internal.detail)


def not_ready(report: Readiness, retry_after: float) -> Logged:
    """A readiness that does not hold: a 503 naming each failure, with every check."""
    return Logged(status=503, title="Not ready", detail="; ".join(report.failures),
                  ext={"checks": report.checks},
                  headers={"Retry-After": str(max(1, round(retry_after)))})


def busy(limit: int, retry_after: float) -> Logged:
    """An export refused because ``limit`` exports run already: a 503 with `Retry-After`
    (Sesam retries a failed run), answered before anything reads HubSpot."""
    return Logged(status=503, title="Too many exports",
                  detail=f"This service runs at most {limit} exports at once "
                  "(MAX_CONCURRENT_EXPORTS) and that many are running: retry later.",
                  headers={"Retry-After": str(max(1, round(retry_after)))})


def hubspot_failure(request: ConnexionRequest, error: Exception) -> ConnexionResponse:
    """Connexion's error handler for a `HubSpotError` outside an export (reading the
    schemas to resolve a type): answered and logged as Connexion does every problem."""
    assert isinstance(error, HubSpotError), error
    response: ConnexionResponse = ExceptionMiddleware.problem_handler(request, from_hubspot(error))
    return response


def quietly(request: ConnexionRequest, problem: Exception) -> ConnexionResponse:
    """Connexion's error handler for a `Logged` problem: answered, not logged again."""
    assert isinstance(problem, Logged), problem
    response: ConnexionResponse = problem.to_problem()
    return response


async def send_problem(send: Send, status: int, title: str, detail: str,
                       headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Answer with a problem from a middleware (before Connexion's error handling)."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"), *headers,
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
