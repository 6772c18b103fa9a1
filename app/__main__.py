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

from . import config  # noqa: E402

log = logging.getLogger("app")


def main() -> None:
    try:
        settings = config.load(os.environ)
    except config.ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    # Imported once the configuration holds, so that a refusal is immediate.
    import uvicorn

    from . import logs
    from sandbox import Sandbox, SandboxServer
    from .server import MAX_REQUEST_HEAD_BYTES, create_app

    logs.configure(settings.log_level, settings.log_format, settings.token)
    sandbox_server = None
    if settings.token is None:
        sandbox = Sandbox(contacts=settings.sandbox_contacts)
        sandbox_server = SandboxServer(sandbox).start()
        settings = dataclasses.replace(settings, token=sandbox.token, base_url=sandbox_server.url)
        log.info("No HUBSPOT_ACCESS_TOKEN set: serving from the built-in HubSpot sandbox at %s "
                 "(fake: %s; associated with each other). Set HUBSPOT_ACCESS_TOKEN to use a "
                 "real portal.", sandbox_server.url, sandbox.summary())
    else:
        log.info("Serving HubSpot contacts from %s", settings.base_url)
        host = urlsplit(settings.base_url).hostname or ""
        if settings.base_url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("HUBSPOT_BASE_URL is plain http: the access token travels unencrypted")
    for name in settings.ignored:
        log.warning("%s is set but has no effect: a since that is a _updated value this "
                    "service returned resumes strictly after it, a plain timestamp (ISO-8601 "
                    "or epoch ms) includes its millisecond", name)
    app = create_app(settings, on_sandbox=sandbox_server is not None)
    try:
        # h11, not httptools: h11 bounds the request head it buffers (httptools does not),
        # and answers a longer one with 400 and a closed connection.
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                    access_log=True, http="h11",
                    h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
    finally:
        if sandbox_server is not None:
            sandbox_server.stop()


if __name__ == "__main__":
    main()
