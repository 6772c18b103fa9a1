"""Builds the ASGI application from openapi.yaml, the single source of truth, with the
middleware around it: optional basic authentication of the caller and request metrics."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import time
from pathlib import Path
from typing import AsyncIterator, Callable

import connexion
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings
from .export import Exporter
from .handlers import ContactsApi
from .hubspot import HubSpotClient
from .metrics import Metrics

SPEC_DIR = Path(__file__).resolve().parent.parent  # openapi.yaml lives at the top level
OPEN_PATHS = frozenset({"/health"})  # answered without credentials (container health checks)


class NamedParameterValidator(ParameterValidator):
    """Connexion's parameter validation, with messages that name the parameter and do not
    echo the schema or an unbounded value back to the caller."""

    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):  # type: ignore[override]
        if value is None:
            return ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        try:
            Draft4Validator(param.get("schema", param),
                            format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
        except ValidationError as exc:
            if exc.validator == "pattern":
                hint = param.get("x-format-hint", "the format the API description gives")
                reason = f"{str(value)[:80]!r} is not {hint}"
            else:
                reason = exc.message if len(exc.message) <= 160 else exc.message[:150] + "..."
            return f"{parameter_type} parameter '{param['name']}' is invalid: {reason}"
        return None


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
        body = json.dumps({"type": "about:blank", "title": "Unauthorized", "status": 401,
                           "detail": "This service requires HTTP basic authentication: set the "
                                     "system's username and password."}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"www-authenticate", b'Basic realm="hubspot-contacts"'),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


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
        path = scope["path"] if scope["path"] in self._paths else "other"

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
    exporter = Exporter(client, settings, clock)
    api = ContactsApi(exporter, metrics, on_sandbox=on_sandbox)

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
    # Added first, so outermost: refusals by BasicAuth are counted too.
    app.add_middleware(CountRequests, MiddlewarePosition.BEFORE_EXCEPTION, metrics=metrics,
                       paths=frozenset({"/get_contacts", "/health", "/metrics"}))
    if settings.auth_username is not None and settings.auth_password is not None:
        app.add_middleware(BasicAuth, MiddlewarePosition.BEFORE_EXCEPTION,
                           username=settings.auth_username, password=settings.auth_password)
    return app
