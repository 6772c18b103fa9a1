"""`python -m app`: run the service; on the built-in HubSpot sandbox when no token is set."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import warnings
from urllib.parse import urlsplit

# Connexion imports Starlette's test client, which warns about its HTTP library at import
# time; the service never uses that client, and the warning would be its first output.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

import uvicorn  # noqa: E402

from . import config, logs  # noqa: E402
from .sandbox import Sandbox, SandboxServer  # noqa: E402
from .server import create_app  # noqa: E402

log = logging.getLogger("app")


def main() -> None:
    try:
        settings = config.load(os.environ)
    except config.ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    logs.configure(settings.log_level, settings.log_format, settings.token)
    sandbox_server = None
    if settings.token is None:
        sandbox = Sandbox(contacts=settings.sandbox_contacts)
        sandbox_server = SandboxServer(sandbox).start()
        settings = dataclasses.replace(settings, token=sandbox.token, base_url=sandbox_server.url)
        log.info("No HUBSPOT_ACCESS_TOKEN set: serving from the built-in HubSpot sandbox "
                 "(%d fake contacts at %s). Set HUBSPOT_ACCESS_TOKEN to use a real portal.",
                 settings.sandbox_contacts, sandbox_server.url)
    else:
        log.info("Serving HubSpot contacts from %s", settings.base_url)
        host = urlsplit(settings.base_url).hostname or ""
        if settings.base_url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("HUBSPOT_BASE_URL is plain http: the access token travels unencrypted")
    for name in settings.ignored:
        log.warning("%s is set but has no effect: the _updated token already orders and "
                    "breaks ties, so the export is always strictly after since", name)
    app = create_app(settings, on_sandbox=sandbox_server is not None)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port,
                    log_config=None, access_log=True)
    finally:
        if sandbox_server is not None:
            sandbox_server.stop()


if __name__ == "__main__":
    main()
