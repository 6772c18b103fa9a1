"""HTTP basic authentication of the caller (Sesam's system can send it)."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ..problems import send_problem

# Answered without credentials: container health checks and monitors (/ready asks HubSpot
# at most once a minute, whatever calls it).
OPEN_PATHS = frozenset({"/health", "/ready"})


class BasicAuth:
    """Requires HTTP basic credentials (Sesam's system can send them) on every path but
    the open ones; compares them in constant time; refuses with a 401 problem."""

    def __init__(self, app: ASGIApp, username: str, password: str) -> None:
        self._app = app
        self._expected = f"{username}:{password}".encode()

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope.get("headers", [])).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        try:
            given = base64.b64decode(encoded, validate=True) if scheme.lower() == b"basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        return hmac.compare_digest(given, self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._authorized(scope):
            await self._app(scope, receive, send)
            return
        await send_problem(send, 401, "Unauthorized",
                           "This service requires HTTP basic authentication: set the "
                           "system's username and password.",
                           ((b"www-authenticate", b'Basic realm="hubspot-sesam"'),))
