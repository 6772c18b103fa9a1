"""An in-process fake HubSpot portal ("the sandbox") for tests, the offline demo and benchmarks.

It speaks the three CRM v3 contact endpoints the exporter uses (list, search and the
property catalogue) and reproduces what makes a naive exporter lose or repeat contacts
against real HubSpot:

* search reads an eventually consistent index that sees writes only after a lag,
  pages by integer offset and refuses to page past 10,000 results;
* contacts that share a sort value come back in a shuffled (but stable) order;
* many contacts share one millisecond, and timestamps are rendered with and without
  milliseconds;
* rate limits, hangs, error statuses and connections cut mid-body can be switched on.

Everything is deterministic from a seed, so a failing test reproduces.  `Sandbox` holds
the state (and the truth tests compare against); `SandboxServer` serves it over HTTP
on 127.0.0.1; `python -m app.sandbox` runs one on its own.  Standard library only.
"""

from .cli import main
from .faults import Fault
from .portal import Sandbox
from .server import SandboxServer

__all__ = ["Fault", "Sandbox", "SandboxServer", "main"]
