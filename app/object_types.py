"""HubSpot's CRM object types: what the export needs to know of each, and which the portal has.

Every type is exported by the same engine; a type differs only in where HubSpot serves it,
the property its modification time is in, whether HubSpot merges its records, the scope a
token needs to read it, and the properties configured for it. The standard types are fixed;
custom objects are discovered from HubSpot's schemas (`/crm/v3/schemas`), so a pipe can name
one without configuration, by its `objectTypeId` (``2-1234567``) or its fully qualified name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

CONTACTS = "contacts"
MODIFIED = "hs_lastmodifieddate"  # every type but contacts (HubSpot's own rule)
ID_PROPERTY = "hs_object_id"
MERGED_PROPERTY = "hs_merged_object_ids"  # the ids merged into a record, ';'-separated
CUSTOM_SCOPE = "crm.objects.custom.read"
SCHEMAS_SCOPE = "crm.schemas.custom.read"
MISS_REFRESH_SECONDS = 60.0

Properties = Mapping[str, tuple[str, ...]]
"""Configured properties by type name (or a custom object's other names); empty: all."""


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

    @property
    def required_properties(self) -> tuple[str, ...]:
        """What every search must return: the keys of the walk and, if HubSpot merges the
        type, the merged ids."""
        return (self.modified_property, ID_PROPERTY, *([MERGED_PROPERTY] * self.merges))


@dataclass(frozen=True)
class Schema:
    """A custom object as HubSpot's schemas API lists it."""

    object_type_id: str  # "2-1234567"
    name: str  # "cars"
    fully_qualified_name: str | None = None  # "p1234567_cars"


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


def standard_types(contacts_modified: str, properties: Properties) -> dict[str, ObjectType]:
    """The standard types by name. Contacts keep the tutorial's `since-field` setting."""
    return {
        name: ObjectType(name, name, contacts_modified if name == CONTACTS else MODIFIED, scope,
                         name in _MERGED, properties.get(name, ()))
        for name, scope in _STANDARD
    }


def custom_type(schema: Schema, properties: Properties) -> ObjectType:
    """A custom object, with the properties configured for any of its names."""
    qualified = schema.fully_qualified_name
    aliases = (schema.object_type_id, *([qualified] if qualified is not None else []))
    configured = next((properties[a] for a in (schema.name, *aliases) if a in properties), ())
    return ObjectType(schema.name, schema.object_type_id, properties=configured, aliases=aliases)


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

    def __init__(self, standard: dict[str, ObjectType], read_schemas: Callable[[], list[Schema]],
                 properties: Properties, cache_seconds: float,
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
                self._custom = (now, [custom_type(schema, self._properties)
                                      for schema in self._read_schemas()])
            return self._custom[1]
