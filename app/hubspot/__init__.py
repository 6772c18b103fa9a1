"""The HubSpot layer: the client, its budgets and retries, and HubSpot's answers parsed into
checked values. It knows nothing of Sesam or of the web framework; its one exception is
`HubSpotError`."""

from .answers import (
    ArchivedPage,
    ArchivedRecord,
    Association,
    Associations,
    Histories,
    Record,
    SearchPage,
)
from .client import HubSpotClient
from .errors import HubSpotError

__all__ = [
    "ArchivedPage", "ArchivedRecord", "Association", "Associations", "HubSpotClient",
    "HubSpotError", "Histories", "Record", "SearchPage",
]
