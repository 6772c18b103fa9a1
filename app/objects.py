"""HubSpot's CRM object types: what the export needs to know of each, and which the portal has.

Every type is exported by the same engine (`export.Exporter`); a type differs only in where
HubSpot serves it, the property its modification time is in, whether HubSpot merges its
records, and the scope a token needs to read it. The standard types are fixed; custom
objects are discovered from HubSpot's schemas (`/crm/v3/schemas`), so a pipe can name one
without configuration, by its `objectTypeId` (``2-1234567``) or its fully qualified name.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

CONTACTS = "contacts"
MODIFIED = "hs_lastmodifieddate"  # every type but contacts (HubSpot's own rule)
CUSTOM_SCOPE = "crm.objects.custom.read"
SCHEMAS_SCOPE = "crm.schemas.custom.read"
MISS_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type, as the export reads it."""

    name: str  # as pipes name it: "contacts", "deals", a custom object's name
    path: str  # as HubSpot's URLs name it: "contacts", "2-1234567"
    modified_property: str = MODIFIED
    scope: str = CUSTOM_SCOPE  # the read scope HubSpot wants for it
    merges: bool = False  # HubSpot merges its records (hs_merged_object_ids)
    properties: tuple[str, ...] = ()  # the configured ones; empty: HubSpot's whole catalogue
    aliases: tuple[str, ...] = field(default=(), compare=False)  # other names HubSpot accepts


# The types HubSpot's search API serves, with their read scopes (HubSpot's 403 names the
# scope it wants; these are for when it does not).
_STANDARD: tuple[tuple[str, str], ...] = (
    ("contacts", "crm.objects.contacts.read"),
    ("companies", "crm.objects.companies.read"),
    ("deals", "crm.objects.deals.read"),
    ("tickets", "tickets"),
    ("products", "e-commerce"),
    ("line_items", "crm.objects.line_items.read"),
    ("quotes", "crm.objects.quotes.read"),
    ("calls", "crm.objects.contacts.read"),
    ("emails", "crm.objects.contacts.read"),
    ("meetings", "crm.objects.contacts.read"),
    ("notes", "crm.objects.contacts.read"),
    ("tasks", "crm.objects.contacts.read"),
)
STANDARD_NAMES = tuple(name for name, _ in _STANDARD)
_MERGED = frozenset({"contacts", "companies"})


def standard_types(contacts_modified: str, properties: dict[str, tuple[str, ...]]) -> dict[str, ObjectType]:
    """The standard types by name. Contacts keep the tutorial's `since-field` setting."""
    return {
        name: ObjectType(name, name, contacts_modified if name == CONTACTS else MODIFIED, scope,
                         name in _MERGED, properties.get(name, ()))
        for name, scope in _STANDARD
    }


def custom_type(schema: dict[str, Any], properties: dict[str, tuple[str, ...]]) -> ObjectType | None:
    """A custom object from one result of HubSpot's schemas API (None if it names none)."""
    type_id, name = schema.get("objectTypeId"), schema.get("name")
    if not isinstance(type_id, str) or not isinstance(name, str):
        return None
    qualified = schema.get("fullyQualifiedName")
    aliases = (type_id, qualified) if isinstance(qualified, str) else (type_id,)
    configured = next((properties[a] for a in (name, *aliases) if a in properties), ())
    return ObjectType(name, type_id, properties=configured, aliases=aliases)


def _named(kinds: list[ObjectType], name: str) -> ObjectType | None:
    return next((k for k in kinds if name == k.name or name in k.aliases), None)


class UnknownObjectType(LookupError):
    """A name that is neither a standard type nor a custom object of the portal."""

    def __init__(self, name: str, known: Iterable[ObjectType]) -> None:
        listed = ", ".join(t.name if not t.aliases else f"{t.name} ({', '.join(t.aliases)})"
                           for t in known)
        super().__init__(f"{name[:100]!r} is not a CRM object type of this HubSpot portal. "
                         f"It has: {listed}.")


class ObjectTypes:
    """Resolves the names pipes use to object types: the standard ones at once, custom ones
    from HubSpot's schemas (read when a name is not standard, cached for ``cache_seconds``).
    Thread-safe."""

    def __init__(self, standard: dict[str, ObjectType], read_schemas: Callable[[], list[dict]],
                 properties: dict[str, tuple[str, ...]], cache_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._standard = standard
        self._read_schemas = read_schemas
        self._properties = properties
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._custom: tuple[float, list[ObjectType]] | None = None

    def resolve(self, name: str) -> ObjectType:
        """The type a pipe names; `UnknownObjectType` (listing the portal's) if none. A
        name not in the cache reads the schemas again, at most once a minute, so that a
        custom object made a moment ago is found and a scan of names costs little."""
        if name in self._standard:
            return self._standard[name]
        custom = self._customs(self._cache_seconds)
        found = _named(custom, name)
        if found is None:
            custom = self._customs(min(self._cache_seconds, MISS_REFRESH_SECONDS))
            found = _named(custom, name)
        if found is None:
            raise UnknownObjectType(name, [*self._standard.values(), *custom])
        return found

    def _customs(self, max_age: float) -> list[ObjectType]:
        with self._lock:
            now = self._clock()
            if self._custom is None or now - self._custom[0] > max_age:
                kinds = (custom_type(s, self._properties) for s in self._read_schemas()
                         if isinstance(s, dict))
                self._custom = (now, [k for k in kinds if k is not None])
            return self._custom[1]
