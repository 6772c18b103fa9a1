"""Builds the ASGI application from openapi.yaml, the single source of truth, with the
middleware around it: redaction of what leaves, request metrics, limits on what a request
may cost, and optional basic authentication of the caller."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import connexion
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings
from .crm import Crm
from .handlers import CrmApi
from .hubspot import HubSpotClient
from .metrics import Metrics
from .redact import Redactor, RedactResponses

SPEC_DIR = Path(__file__).resolve().parent.parent  # openapi.yaml lives at the top level
OPEN_PATHS = frozenset({"/health"})  # answered without credentials (container health checks)
OBJECTS_PATH = re.compile(r"/objects/[^/]+")
OBJECTS_LABEL = "/objects/{objectType}"  # one metric label for every type
# GET only: a HEAD would cost a HubSpot export.
EXPORT_PATH = re.compile(rf"/get_contacts|{OBJECTS_PATH.pattern}")
# What a request may bring before any handler runs. Sesam sends a few short headers and a
# URL with two short parameters; the server (uvicorn with h11) closes the connection on a
# request head beyond MAX_REQUEST_HEAD_BYTES, so that memory stays bounded whatever comes.
MAX_URL_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
MAX_REQUEST_HEAD_BYTES = 64 * 1024


class NamedParameterValidator(ParameterValidator):
    """Connexion's parameter validation, with messages that name the parameter and do not
    echo the schema or an unbounded value back to the caller."""

    def validate_query_parameter(self, param, request):  # type: ignore[override]
        # Connexion would quietly keep the last of a repeated scalar parameter.
        count = len(QueryParams(request.scope["query_string"]).getlist(param["name"]))
        if count > 1 and param.get("schema", {}).get("type") != "array":
            return (f"query parameter '{param['name']}' is given {count} times: give it "
                    "once")
        return super().validate_query_parameter(param, request)

    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):  # type: ignore[override]
        if value is None:
            return ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        try:
            Draft4Validator(param.get("schema", param),
                            format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
            # A pattern in the spec is ECMA-262, where `^…$` is the whole value; Python's
            # search would accept a trailing newline after it.
            pattern = param.get("schema", param).get("pattern")
            if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
                raise ValidationError("does not match", validator="pattern")
        except ValidationError as exc:
            if exc.validator == "pattern":
                hint = param.get("x-format-hint", "the format the API description gives")
                reason = f"{str(value)[:80]!r} is not {hint}"
            else:
                reason = exc.message if len(exc.message) <= 160 else exc.message[:150] + "..."
            return f"{parameter_type} parameter '{param['name']}' is invalid: {reason}"
        return None


async def send_problem(send: Send, status: int, title: str, detail: str,
                       headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Answer with a problem+json from a middleware (before Connexion's error handling)."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"), *headers,
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Refuses what a request should not cost before any handler runs: a long URL (414),
    too many or too large headers (431), a HEAD on the export (405: it would run an
    export for no body). Redirects (Starlette's trailing-slash one) get a Location
    without scheme and host, so that the request's Host header never steers them."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    def _refusal(self, scope: Scope) -> tuple[int, str, str, tuple] | None:
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
                           ((b"www-authenticate", b'Basic realm="hubspot-contacts"'),))


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
            path = OBJECTS_LABEL if OBJECTS_PATH.fullmatch(path) else "other"

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._metrics.requests.labels(path, str(message["status"])).inc()
            await send(message)

        await self._app(scope, receive, counted)


def create_app(settings: Settings, *, on_sandbox: bool = False,
               clock: Callable[[], float] = time.monotonic) -> connexion.AsyncApp:
    """The service: its HubSpot client, exporter, metrics and HTTP surface. ``clock`` times
    the archived snapshot's refresh (tests tie it to the sandbox's clock)."""
    metrics = Metrics()
    client = HubSpotClient(settings, metrics=metrics)
    api = CrmApi(Crm(client, settings, clock), metrics, on_sandbox=on_sandbox)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # Pooled connections go; the client opens new ones if the app serves again
            # (test clients run the lifespan more than once).
            client.close()

    app = connexion.AsyncApp(__name__, specification_dir=SPEC_DIR, lifespan=lifespan)
    app.add_api(
        "openapi.yaml",
        strict_validation=True,
        validate_responses=False,  # it would buffer the streamed body
        resolver=Resolver(function_resolver=api.resolve),
        validator_map={"parameter": NamedParameterValidator},
    )
    # Added first, so outermost: every answer is redacted, refusals are counted too.
    app.add_middleware(RedactResponses, MiddlewarePosition.BEFORE_EXCEPTION,
                       redactor=Redactor(settings.token))
    app.add_middleware(CountRequests, MiddlewarePosition.BEFORE_EXCEPTION, metrics=metrics,
                       paths=frozenset({"/get_contacts", "/health", "/metrics"}))
    app.add_middleware(RequestLimits, MiddlewarePosition.BEFORE_EXCEPTION)
    if settings.auth_username is not None and settings.auth_password is not None:
        app.add_middleware(BasicAuth, MiddlewarePosition.BEFORE_EXCEPTION,
                           username=settings.auth_username, password=settings.auth_password)
    return app
