"""The one exception of the HubSpot layer: HubSpot could not deliver what was asked."""

from __future__ import annotations

from ..redact import LINE_LIMIT, quote
from ..redact import correlation_id as as_correlation_id

UNUSABLE = "HubSpot answer unusable"


class HubSpotError(Exception):
    """HubSpot could not deliver: it refused, failed, timed out, or answered what cannot be
    used.

    ``status`` is the gateway status that reports it to a caller (502, 503 or 504); the
    detail is one bounded line and a correlation id that is not a UUID is dropped, because
    both may quote HubSpot. ``retryable`` says whether the client may send the same call
    again; ``retry_after`` is HubSpot's (or the service's) advice in seconds, when there is
    one; ``upstream_status`` is HubSpot's own status, when it answered one.
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
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = quote(detail, LINE_LIMIT)
        self.correlation_id = as_correlation_id(correlation_id)
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status

    def __str__(self) -> str:
        suffix = f" (HubSpot correlationId {self.correlation_id})" if self.correlation_id else ""
        return f"{self.title}: {self.detail}{suffix}"


def unusable(what: str, reason: object) -> HubSpotError:
    """An answer that parsed but cannot be used (a record without id or time, a page that
    promises more and holds nothing): HubSpot's failure, told as such."""
    return HubSpotError(502, UNUSABLE, f"HubSpot's {what} answer could not be used: {quote(reason)}")
