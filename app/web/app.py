"""The app factory: the spec (openapi.yaml, the single source of truth), its handlers, the
mapping of HubSpot's failures to problems, and the middleware around them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import connexion
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver

from ..config import Settings
from ..hubspot import HubSpotClient, HubSpotError
from ..metrics import Metrics
from ..redact import Redactor
from ..sync import Crm
from ..sync.readiness import ReadinessCheck
from .handlers import Handlers
from .middleware import BasicAuth, CountRequests, RedactResponses, RequestLimits
from .problems import Logged, hubspot_failure, quietly
from .slots import ExportSlots
from .validation import NamedParameterValidator

SPEC_DIR = Path(__file__).resolve().parents[2]  # openapi.yaml lives at the top level
NAMED_PATHS = frozenset({"/get_contacts", "/health", "/ready", "/metrics"})  # metric labels of their own


def create_app(settings: Settings, *, on_sandbox: bool = False,
               clock: Callable[[], float] = time.monotonic) -> connexion.AsyncApp:
    """The service: its HubSpot client, the CRM it exports, metrics and the HTTP surface.
    ``clock`` times the archived snapshots' refresh and the readiness checks (tests tie it to
    the sandbox's clock)."""
    metrics = Metrics()
    client = HubSpotClient(settings, metrics=metrics)
    crm = Crm(client, settings, clock)
    handlers = Handlers(crm, ReadinessCheck(client, crm, clock=clock), metrics,
                        ExportSlots(settings.max_concurrent_exports, metrics), on_sandbox=on_sandbox)
    metrics.watch_snapshots(crm.snapshot_ages)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # Threads and pooled connections go; both come back if the app serves again
            # (test clients run the lifespan more than once).
            crm.close()

    app = connexion.AsyncApp(__name__, specification_dir=SPEC_DIR, lifespan=lifespan)
    app.add_api(
        "openapi.yaml",
        strict_validation=True,
        validate_responses=False,  # it would buffer the streamed body
        resolver=Resolver(function_resolver=handlers.resolve),
        validator_map={"parameter": NamedParameterValidator},
    )
    app.add_error_handler(HubSpotError, hubspot_failure)
    app.add_error_handler(Logged, quietly)
    # Added first, so outermost: every answer is redacted, refusals are counted too.
    app.add_middleware(RedactResponses, MiddlewarePosition.BEFORE_EXCEPTION,
                       redactor=Redactor(settings.token))
    app.add_middleware(CountRequests, MiddlewarePosition.BEFORE_EXCEPTION, metrics=metrics,
                       paths=NAMED_PATHS)
    app.add_middleware(RequestLimits, MiddlewarePosition.BEFORE_EXCEPTION)
    if settings.auth_username is not None and settings.auth_password is not None:
        app.add_middleware(BasicAuth, MiddlewarePosition.BEFORE_EXCEPTION,
                           username=settings.auth_username, password=settings.auth_password)
    return app
