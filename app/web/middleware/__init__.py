"""The middleware in front of the handlers, one concern a module: `redact` (the token never
leaves), `count` (request metrics), `limits` (what a request may cost, redirects, HEAD) and
`auth` (optional basic authentication)."""

from .auth import BasicAuth
from .count import CountRequests
from .limits import MAX_REQUEST_HEAD_BYTES, RequestLimits
from .redact import RedactResponses

__all__ = ["MAX_REQUEST_HEAD_BYTES", "BasicAuth", "CountRequests", "RedactResponses", "RequestLimits"]
