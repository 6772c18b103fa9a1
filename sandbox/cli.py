"""`python -m sandbox`: serve a fake HubSpot portal on its own."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from .portal import Sandbox
from .server import SandboxServer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Serve a fake HubSpot portal.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1")
    parser.add_argument("--contacts", type=int, default=3000, help="contacts in all, 2%% of them deleted")
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same portal")
    parser.add_argument("--token", default="sandbox-token", help="the access token it accepts")
    parser.add_argument("--search-lag-ms", type=int, default=0,
                        help="how long a write takes to show in search")
    parser.add_argument("--objects", nargs="*", default=[], metavar="TYPE=COUNT", type=_count,
                        help="records of another type, e.g. deals=50000 (default: a share of --contacts)")
    parser.add_argument("--epoch-ms-modified", action="store_true",
                        help="send the modification property (lastmodifieddate, hs_lastmodifieddate) "
                             "as epoch milliseconds in a string, as HubSpot sends some datetimes")
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox(contacts=args.contacts, seed=args.seed, token=args.token, objects=dict(args.objects),
                          realistic_catalogues=True, epoch_ms_modified=args.epoch_ms_modified)
    except ValueError as invalid:
        parser.error(str(invalid))
    sandbox.search_lag_ms = args.search_lag_ms
    # Ctrl-C stops it even where a shell ignored SIGINT (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with SandboxServer(sandbox, args.port) as server:
        print(f"HubSpot sandbox serving {sandbox.summary()} at {server.url} "
              f"(Authorization: Bearer {sandbox.token}); Ctrl-C stops it.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


def _count(text: str) -> tuple[str, int]:
    name, _, count = text.partition("=")
    if not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected TYPE=COUNT, e.g. deals=50000, not {text!r}")
    return name, int(count)
