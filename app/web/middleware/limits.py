"""What a request may cost, bounded before any handler runs."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..problems import send_problem

OBJECTS_PATH = re.compile(r"/objects/[^/]+")
# The reference data's exports: a metric label each (`count`), GET only.
REFERENCE_PATHS = {"/owners": re.compile(r"/owners"),
                   "/pipelines/{objectType}": re.compile(r"/pipelines/[^/]+"),
                   "/pipelines/{objectType}/stages": re.compile(r"/pipelines/[^/]+/stages"),
                   "/properties/{objectType}": re.compile(r"/properties/[^/]+")}
# GET only: a HEAD would cost a HubSpot export.
EXPORT_PATH = re.compile("|".join([r"/get_contacts", OBJECTS_PATH.pattern,
                                   *(path.pattern for path in REFERENCE_PATHS.values())]))
# What a request may bring before any handler runs. Sesam sends a few short headers and a
# URL with two short parameters; the server (uvicorn with h11) closes the connection on a
# request head beyond MAX_REQUEST_HEAD_BYTES, so that memory stays bounded whatever comes.
MAX_URL_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_REQUEST_HEAD_BYTES = 64 * 1024
Refusal = tuple[int, str, str, tuple[tuple[bytes, bytes], ...]]


class RequestLimits:
    """Refuses what a request should not cost before any handler runs: a long URL (414),
    too many or too large headers (431), a HEAD on the export (405: it would run an
    export for no body). Redirects (Starlette's trailing-slash one) get a Location
    without scheme and host, so that the request's Host header never steers them."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    def _refusal(self, scope: Scope) -> Refusal | None:
        path = scope.get("raw_path") or scope["path"].encode()
        url_bytes = len(path) + len(scope["query_string"])
        if url_bytes > MAX_URL_BYTES:
            return (414, "URI Too Long", f"The URL has {url_bytes} bytes; this service "
                    f"accepts at most {MAX_URL_BYTES}.", ())
        headers = scope["headers"]
        header_bytes = sum(len(name) + len(value) for name, value in headers)
        if len(headers) > MAX_HEADERS or header_bytes > MAX_HEADER_BYTES:
            return (431, "Request Header Fields Too Large",
                    f"The request has {len(headers)} headers of {header_bytes} bytes; this "
                    f"service accepts at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} "
                    "bytes.", ())
        if scope["method"] == "HEAD" and EXPORT_PATH.fullmatch(scope["path"]):
            return (405, "Method Not Allowed",
                    "HEAD is not offered on the export: it would read HubSpot for no body. "
                    "Use GET.", ((b"allow", b"GET"),))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await send_problem(send, *refusal)
            return

        export = EXPORT_PATH.fullmatch(scope["path"]) is not None

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [
                    (name, self._header(name.lower(), value, message["status"], export))
                    for name, value in message["headers"]]}
            await send(message)

        await self._app(scope, receive, answer)

    @staticmethod
    def _header(name: bytes, value: bytes, status: int, export: bool) -> bytes:
        if name == b"location" and 300 <= status < 400:
            return _relative(value)
        if name == b"allow" and export:
            return b"GET"
        return value


def _relative(location: bytes) -> bytes:
    """The path and query of a Location, as a relative reference on this host."""
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/")  # "//x" would name another host
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")
