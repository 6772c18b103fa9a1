"""`python -m app`: run the service against HubSpot; `python -m app --sandbox` runs it on
the built-in fake HubSpot portal instead (a demo and test tool of the source checkout)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from urllib.parse import urlsplit

# Connexion imports Starlette's test client, which warns about its HTTP library at import
# time; the service never uses that client, and the warning would be its first output.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from . import config  # noqa: E402

log = logging.getLogger("app")

NO_TOKEN = ("HUBSPOT_ACCESS_TOKEN is not set: set it to a HubSpot private app's access token, "
            "or run `python -m app --sandbox` to try the service on a fake portal")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="The HubSpot CRM service for Sesam. Configured by "
        "environment variables (see the README).")
    parser.add_argument("--sandbox", action="store_true",
                        help="serve from a fake HubSpot portal started in the same process "
                        "(SANDBOX_CONTACTS sets its size); no token, no real HubSpot")
    args = parser.parse_args(argv)
    try:
        settings = config.load(os.environ)
    except config.ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    if args.sandbox and settings.token is not None:
        sys.exit("configuration error: --sandbox serves a fake portal, but HUBSPOT_ACCESS_TOKEN "
                 "(or api-key) is set too: leave one of them out")
    if not args.sandbox and settings.token is None:
        sys.exit(f"configuration error: {NO_TOKEN}")
    # Imported once the configuration holds, so that a refusal is immediate.
    import uvicorn

    from . import logs
    from .web import create_app
    from .web.middleware import MAX_REQUEST_HEAD_BYTES
    from .web.server import with_head_timeout

    sandbox_server = None
    if args.sandbox:
        try:
            from sandbox import Sandbox, SandboxServer
        except ImportError:
            sys.exit("configuration error: --sandbox needs the sandbox package, which comes with "
                     "the source checkout, not with the installed service: run it from there")
        sandbox = Sandbox(contacts=settings.sandbox_contacts, realistic_catalogues=True)
        sandbox_server = SandboxServer(sandbox).start()
        settings = dataclasses.replace(settings, token=sandbox.token, base_url=sandbox_server.url)
    logs.configure(settings.log_level, settings.log_format, settings.token)
    if sandbox_server is not None:
        log.info("Serving from the built-in HubSpot sandbox at %s (fake: %s; associated with "
                 "each other). Set HUBSPOT_ACCESS_TOKEN and leave out --sandbox to use a real "
                 "portal.", sandbox_server.url, sandbox.summary())
    else:
        log.info("Serving HubSpot's CRM from %s", settings.base_url)
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
        # and answers a longer one with 400 and a closed connection; our subclass of its
        # protocol bounds the time the head may take too.
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                    access_log=True, http=with_head_timeout(settings.request_head_timeout),
                    h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
    finally:
        if sandbox_server is not None:
            sandbox_server.stop()


if __name__ == "__main__":
    main()
