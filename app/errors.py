"""Errors the service answers with, as problem+json (RFC 9457) through Connexion."""

from __future__ import annotations

from connexion.exceptions import ProblemException

from .redact import LINE_LIMIT, correlation_id as as_correlation_id, quote


class UpstreamError(ProblemException):
    """HubSpot could not deliver: answered as 502, 503 or 504 problem+json.

    The detail is one bounded line and a correlation id that is not a UUID is dropped:
    both may quote HubSpot. ``retryable`` says whether the HubSpot client may try the same
    call again; ``retry_after`` is HubSpot's (or our) advice in seconds, when there is one.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        correlation_id: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        upstream_status: int | None = None,
    ) -> None:
        correlation_id = as_correlation_id(correlation_id)
        detail = quote(detail, LINE_LIMIT)
        ext = {"correlationId": correlation_id} if correlation_id else None
        # A 503 always tells the caller when to come back; HubSpot's own advice if it gave one.
        advice = retry_after if retry_after else (10.0 if status == 503 else None)
        headers = {"Retry-After": str(max(1, round(advice)))} if advice else None
        super().__init__(status=status, title=title, detail=detail, ext=ext, headers=headers)
        self.correlation_id = correlation_id
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status

    def __str__(self) -> str:
        suffix = f" (HubSpot correlationId {self.correlation_id})" if self.correlation_id else ""
        return f"{self.title}: {self.detail}{suffix}"
