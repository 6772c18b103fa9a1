"""HubSpot's CRM object types: what the export needs to know of each, and which the portal has.

Every type is exported by the same engine; a type differs only in where HubSpot serves it,
the property its modification time is in, whether HubSpot merges its records, the scope a
token needs to read it, and the properties configured for it. The standard types are fixed;
custom objects are discovered from HubSpot's schemas (`/crm/v3/schemas`), so a pipe can name
one without configuration, by its `objectTypeId` (``2-1234567``) or its fully qualified name.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CONTACTS = "contacts"
MODIFIED = "hs_lastmodifieddate"  # every type but contacts (HubSpot's own rule)
ID_PROPERTY = "hs_object_id"
MERGED_PROPERTY = "hs_merged_object_ids"  # the ids merged into a record, ';'-separated
CUSTOM_SCOPE = "crm.objects.custom.read"
SCHEMAS_SCOPE = "crm.schemas.custom.read"
MISS_REFRESH_SECONDS = 60.0
FAILURE_SECONDS = 60.0  # a failed schemas read answers for this long: one call, not one a request

# HubSpot's formats, as openapi.yaml's objectType pattern gives them: the schemas list is
# read from the network, and its values become URL paths and the keys types are found by.
CUSTOM_ID = re.compile(r"2-[0-9]{1,12}")
CUSTOM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")  # HubSpot: letters, digits, _; a letter first
QUALIFIED_NAME = re.compile(r"p[0-9]{1,12}_[A-Za-z][A-Za-z0-9_]{0,99}")

LISTED_TYPES = 50  # a 404 lists at most this many of the portal's types ...
LISTED_CHARS = 4000  # ... in at most this many characters, then says how many more there are
SKIPPED_SHOWN = 5  # a log of skipped schemas quotes at most this many ...
SKIPPED_CHARS = 60  # ... of at most this many characters each

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


def _shown(kind: ObjectType) -> str:
    return kind.name if not kind.aliases else f"{kind.name} ({', '.join(kind.aliases)})"


def _listing(known: list[ObjectType]) -> str:
    """The first of ``known``, bounded in count and length: a portal of thousands of custom
    objects must not make every 404 (and its log line) megabytes long."""
    listed: list[str] = []
    length = 0
    for kind in known[:LISTED_TYPES]:
        shown = _shown(kind)
        if length + len(shown) + 2 > LISTED_CHARS:
            break
        listed.append(shown)
        length += len(shown) + 2
    more = len(known) - len(listed)
    return ", ".join(listed) + (f", and {more} more" if more else "")


class UnknownObjectType(LookupError):
    """A name that is neither a standard type nor a custom object of the portal."""

    def __init__(self, name: str, known: Iterable[ObjectType]) -> None:
        super().__init__(f"{name[:100]!r} is not a CRM object type of this HubSpot portal. "
                         f"It has: {_listing(list(known))}.")


def _quoted(schema: Schema) -> str:
    """A skipped schema as a log may show it: short, and ASCII with every control character
    escaped, so that it cannot split or forge a line of a text log."""
    values = (schema.object_type_id, schema.name, schema.fully_qualified_name)
    return "(" + ", ".join("-" if v is None else ascii(v[:SKIPPED_CHARS]) for v in values) + ")"


def trusted(schemas: Iterable[Schema], standard: Iterable[ObjectType]) -> tuple[list[Schema], list[Schema]]:
    """(the schemas usable as custom objects, the others) of a schemas answer, which the
    service takes as untrusted input: an objectTypeId becomes a URL path and every name a key
    types are found by, so each must have HubSpot's format (an id of ``2-`` and digits, not a
    path of the upstream host's choosing), no entry may take a standard type's name or path
    (a custom object called contacts would take over /get_contacts), and no entry a name an
    earlier one has (which one would a pipe get?)."""
    taken = {key.lower() for kind in standard for key in (kind.name, kind.path, *kind.aliases)}
    usable, skipped = [], []
    for schema in schemas:
        qualified = schema.fully_qualified_name
        keys = [schema.object_type_id, schema.name, *([qualified] if qualified is not None else [])]
        if (CUSTOM_ID.fullmatch(schema.object_type_id) and CUSTOM_NAME.fullmatch(schema.name)
                and (qualified is None or QUALIFIED_NAME.fullmatch(qualified))
                and not any(key.lower() in taken for key in keys)):
            usable.append(schema)
            taken.update(key.lower() for key in keys)
        else:
            skipped.append(schema)
    return usable, skipped


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
        self._failure: tuple[float, Exception] | None = None
        self._skipped = ""  # what the last read skipped, as logged: logged again if it changes

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
        """The custom types, read again if older than ``max_age``. A failed read is
        remembered for `FAILURE_SECONDS` and raised again in that time: a missing scope or
        an outage of HubSpot costs a call a minute, not one (with its retries) a request."""
        with self._lock:
            now = self._clock()
            if self._custom is not None and now - self._custom[0] <= max_age:
                return self._custom[1]
            if self._failure is not None and now - self._failure[0] < FAILURE_SECONDS:
                # The same error again; its traceback is this raise's, not every one before.
                raise self._failure[1].with_traceback(None)
            try:
                schemas = self._read_schemas()
            # Whatever the reader raises: its own errors belong to the HubSpot layer, which
            # this one lies below. Not swallowed: remembered, and raised to the caller.
            except Exception as exc:
                self._failure = (now, exc)
                raise
            self._failure = None
            usable, skipped = trusted(schemas, self._standard.values())
            shown = ", ".join(_quoted(schema) for schema in skipped[:SKIPPED_SHOWN])
            summary = f"{len(skipped)}: {shown}{', ...' if len(skipped) > SKIPPED_SHOWN else ''}"
            if skipped and summary != self._skipped:
                log.warning("HubSpot's schemas list custom objects this service skips (an "
                            "objectTypeId, name or fullyQualifiedName not in HubSpot's format, "
                            "or a standard type's or an earlier entry's), %s", summary)
            self._skipped = summary
            self._custom = (now, [custom_type(schema, self._properties) for schema in usable])
            return self._custom[1]
