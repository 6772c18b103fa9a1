"""HubSpot's CRM object types: what the export needs to know of each, and which the portal has.

Every type is exported by the same engine; a type differs only in where HubSpot serves it,
the property its modification time is in, whether HubSpot merges its records, the scope a
token needs to read it, and the properties configured for it. The standard types are fixed;
custom objects are discovered from HubSpot's schemas (`/crm/v3/schemas`), so a pipe can name
one without configuration, by its `objectTypeId` (``2-1234567``), its fully qualified name
(``p1234567_cars``) or its name (``cars``); a standard type by its name (``deals``) or its
objectTypeId (``0-3``).
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
STANDARD_ID = re.compile(r"0-[0-9]{1,12}")  # HubSpot's own types: no custom object is named so
CUSTOM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")  # HubSpot: letters, digits, _; a letter first
QUALIFIED_NAME = re.compile(r"p[0-9]{1,12}_[A-Za-z][A-Za-z0-9_]{0,99}")

LISTED_TYPES = 50  # a 404 lists at most this many of the portal's types ...
LISTED_CHARS = 4000  # ... in at most this many characters, then says how many more there are
SKIPPED_SHOWN = 5  # a log of skipped schemas quotes at most this many ...
SKIPPED_CHARS = 60  # ... of at most this many characters each

Properties = Mapping[str, tuple[str, ...]]
"""Configured properties by type name (or a type's other names); empty: all."""


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type, as the export reads it."""

    name: str  # as pipes name it: "contacts", "deals", a custom object's name
    path: str  # as HubSpot's URLs name it: "contacts", "0-162", "2-1234567"
    modified_property: str = MODIFIED
    scope: str = CUSTOM_SCOPE  # the read scope(s) HubSpot wants for it: "a" or "a or b"
    merges: bool = False  # HubSpot merges its records (hs_merged_object_ids)
    properties: tuple[str, ...] = ()  # the configured ones; empty: HubSpot's whole catalogue
    # Other names HubSpot accepts: a standard type's objectTypeId, a custom object's id and
    # fully qualified name.
    aliases: tuple[str, ...] = field(default=(), compare=False)

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


# Every type HubSpot's search API serves (its published API descriptions have a
# `/crm/v3/objects/<type>/search` for each): (name, objectTypeId, read scope, path).
# - objectTypeId: from HubSpot's object table ("Using the object APIs"); None where HubSpot
#   publishes none (those are addressed by name only).
# - scope: the read scope(s) the description's `security` gives its search, any one of
#   them enough ("a or b"); what a 403 names when HubSpot's own answer does not.
# - path: how the service names the type in HubSpot's URLs: the name, or the objectTypeId
#   for the types whose descriptions only use that (services, courses, listings) or serve
#   them under the generic `{objectType}` path (appointments, projects).
_ENGAGEMENTS = "crm.objects.contacts.read"
_COMMERCE = "crm.objects.line_items.read or e-commerce"
_STANDARD: tuple[tuple[str, str | None, str, str | None], ...] = (
    ("contacts", "0-1", "crm.objects.contacts.read", None),
    ("companies", "0-2", "crm.objects.companies.read", None),
    ("deals", "0-3", "crm.objects.deals.read", None),
    ("tickets", "0-5", "tickets", None),
    ("products", "0-7", "crm.objects.products.read or e-commerce", None),
    ("line_items", "0-8", _COMMERCE, None),
    ("quotes", "0-14", "crm.objects.quotes.read or e-commerce", None),
    ("calls", "0-48", _ENGAGEMENTS, None),
    ("emails", "0-49", f"{_ENGAGEMENTS} or sales-email-read", None),
    ("meetings", "0-47", _ENGAGEMENTS, None),
    ("notes", "0-46", _ENGAGEMENTS, None),
    ("tasks", "0-27", _ENGAGEMENTS, None),
    # The types added in 0.2.0.
    ("leads", "0-136", "crm.objects.leads.read", None),
    ("invoices", "0-53", "crm.objects.invoices.read", None),
    ("appointments", "0-421", "crm.objects.appointments.read", "0-421"),
    ("carts", "0-142", "crm.objects.carts.read", None),
    ("commerce_payments", None, "crm.objects.commercepayments.read", None),
    ("communications", "0-18", _ENGAGEMENTS, None),
    ("courses", "0-410", "crm.objects.courses.read", "0-410"),
    ("discounts", "0-84", _COMMERCE, None),
    ("feedback_submissions", "0-19", f"{_ENGAGEMENTS} or crm.objects.feedback_submissions.read", None),
    ("fees", "0-85", _COMMERCE, None),
    ("goal_targets", "0-74", "crm.objects.goals.read", None),
    ("listings", "0-420", "crm.objects.listings.read", "0-420"),
    ("orders", "0-123", "crm.objects.orders.read", None),
    ("partner_clients", None, "crm.objects.partner-clients.read", None),
    ("partner_services", None, "crm.objects.partner-services.read", None),
    ("postal_mail", "0-116", _ENGAGEMENTS, None),
    ("projects", "0-970", "crm.objects.projects.read", "0-970"),
    ("services", "0-162", "crm.objects.services.read", "0-162"),
    ("subscriptions", "0-69", "crm.objects.subscriptions.read", None),
    ("taxes", "0-86", "crm.objects.line_items.read", None),
    ("users", "0-115", "crm.objects.users.read", None),
)
STANDARD_NAMES = tuple(name for name, *_ in _STANDARD)
STANDARD_IDS = {name: type_id for name, type_id, *_ in _STANDARD if type_id is not None}
# The types HubSpot merges: those whose descriptions have `POST /crm/v3/objects/<type>/merge`
# (a merged-away record vanishes; the survivor's hs_merged_object_ids names it).
_MERGED = frozenset({"contacts", "companies", "deals", "tickets"})


def standard_types(contacts_modified: str, properties: Properties) -> dict[str, ObjectType]:
    """The standard types by name, each with its objectTypeId as an alias (properties
    configured under either name apply). Contacts keep the tutorial's `since-field`
    setting."""
    kinds = {}
    for name, type_id, scope, path in _STANDARD:
        aliases = (type_id,) if type_id is not None else ()
        configured = next((properties[a] for a in (name, *aliases) if a in properties), ())
        kinds[name] = ObjectType(name, path or name,
                                 contacts_modified if name == CONTACTS else MODIFIED, scope,
                                 name in _MERGED, configured, aliases)
    return kinds


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
        # Every name of a standard type: its own and its objectTypeId. Exact, as HubSpot's
        # URLs take them (an objectTypeId has no case; names are HubSpot's, lower case).
        self._standard_names = {key: kind for kind in standard.values()
                                for key in (kind.name, *kind.aliases)}
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
        if name in self._standard_names:
            return self._standard_names[name]
        if STANDARD_ID.fullmatch(name):  # not one of HubSpot's types, and no custom object
            raise UnknownObjectType(name, [*self._standard.values(), *self._customs_if_readable()])
        custom = self._customs(self._cache_seconds)
        found = _named(custom, name)
        if found is None:
            custom = self._customs(min(self._cache_seconds, MISS_REFRESH_SECONDS))
            found = _named(custom, name)
        if found is None:
            raise UnknownObjectType(name, [*self._standard.values(), *custom])
        return found

    def _customs_if_readable(self) -> list[ObjectType]:
        """The custom types for a 404's listing, or none if HubSpot's schemas cannot be read
        (a token without `SCHEMAS_SCOPE` is no reason to fail a name that is no custom
        object's)."""
        try:
            return self._customs(self._cache_seconds)
        except Exception:  # the reader's errors belong to the HubSpot layer; a listing does without
            return []

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
