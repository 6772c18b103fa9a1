"""Builds the ASGI application from openapi.yaml, the single source of truth."""

from __future__ import annotations

from pathlib import Path

import connexion
from connexion.resolver import Resolver

from .config import Settings
from .export import Exporter
from .handlers import ContactsApi
from .hubspot import HubSpotClient

SPEC_DIR = Path(__file__).resolve().parent.parent  # openapi.yaml lives at the top level


def create_app(settings: Settings, client: HubSpotClient, *, on_sandbox: bool = False) -> connexion.AsyncApp:
    """The service, serving exports from ``client``."""
    api = ContactsApi(Exporter(client, settings), on_sandbox=on_sandbox)
    app = connexion.AsyncApp(__name__, specification_dir=SPEC_DIR)
    app.add_api(
        "openapi.yaml",
        strict_validation=True,
        validate_responses=False,  # it would buffer the streamed body
        resolver=Resolver(function_resolver=api.resolve),
    )
    return app
