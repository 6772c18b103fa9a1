"""The sync layer: what Sesam's pull protocol needs from HubSpot's CRM, continuation that
loses nothing.

`positions` (the `_updated` tokens and `since`), `walk` (the keyset walk over search, pure),
`export` (one export of one type: the walk, its pages in flight, the deletions merged in),
`deletions` (the shared archived snapshot), `associations`, `workers` (the background
threads), and `crm`, which puts them together for every object type.
"""

from .crm import Crm
from .export import Entity, Exporter, ExportRun, ExportStats
from .positions import InvalidSince, parse_since

__all__ = ["Crm", "Entity", "ExportRun", "ExportStats", "Exporter", "InvalidSince", "parse_since"]
