"""An in-process fake HubSpot portal ("the sandbox") for tests, the offline demo and benchmarks.

It serves HubSpot's CRM as the exporter reads it: every object type the search API serves
(contacts, companies, deals, tickets, products, line items, quotes, calls, emails, meetings,
notes, tasks) and a custom object found through /crm/v3/schemas, each with its list,
search, single-read and property-catalogue endpoints; associations v4 between them;
reference data (owners, pipelines, property groups and archived definitions); and read
scopes per type.  It reproduces what makes a naive exporter lose or repeat records
against real HubSpot:

* search reads an eventually consistent index that sees writes only after a lag,
  pages by integer offset and refuses to page past 10,000 results;
* records that share a sort value come back in a shuffled (but stable) order;
* many records share one millisecond, and timestamps are rendered with and without
  milliseconds;
* association changes move no record's modification time;
* rate limits, hangs, error statuses and connections cut mid-body can be switched on.

Modules, each importing only modules named before it (TYPE_CHECKING imports included):
common (constants, value helpers, replies, HubSpot's errors, the Knobs protocol), clock
(the portal's clock and its one lock), reference (owners, pipelines, property groups and
archived definitions, and what deals name of them), objects (types, properties, generated values),
faults (faults and rate limits), search (one type's search and its lagging index), store
(one type's records; its search mixed in), associations, portal (the Sandbox and its
API), admin (/_sandbox/), server (HTTP), cli.  A store sees of its portal only what it
is given: the Clock, the Sandbox typed as Knobs (the switches it reads) and the portal's
tie_salts, so neither store nor search imports portal; the associations look a store up
through a callable the portal passes in.

Everything is deterministic from a seed, so a failing test reproduces.  `Sandbox` holds
the state (and the truth tests compare against); `SandboxServer` serves it over HTTP
on 127.0.0.1; `python -m sandbox` runs one on its own.  Standard library only.
"""

from .cli import main
from .faults import Fault
from .portal import Sandbox
from .server import SandboxServer

__all__ = ["Fault", "Sandbox", "SandboxServer", "main"]
