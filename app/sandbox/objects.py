"""The records a portal holds: property catalogues, generated values and immutable record versions."""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .common import _DAY_MS, _iso, _mix


@dataclass(frozen=True)
class _Property:
    name: str
    label: str
    type: str
    field_type: str
    group: str | None = None  # None: the object type's own information group
    options: tuple[str, ...] = ()
    hubspot_defined: bool = True

    def describe(self, order: int, object_type: _ObjectType) -> dict:
        stamp = "2019-08-06T02:43:14.491Z" if self.hubspot_defined else "2023-05-02T08:00:00Z"
        read_only = self.name in object_type.read_only
        entry = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group or object_type.group,
            "description": f"The {object_type.singular}'s {self.label.lower()}.",
            "hidden": False,
            "calculated": False,
            "hasUniqueValue": False,
            "formField": not read_only,
            "displayOrder": order,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "options": [
                {"label": value.replace("_", " ").title(), "value": value, "displayOrder": position, "hidden": False}
                for position, value in enumerate(self.options)
            ],
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": read_only,
            },
        }
        if self.hubspot_defined:
            entry["hubspotDefined"] = True
        return entry


_STAGES = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
    "opportunity", "customer", "evangelist", "other",
)
_HUBSPOT_PROPERTIES = (
    _Property("email", "Email", "string", "text"),
    _Property("firstname", "First Name", "string", "text"),
    _Property("lastname", "Last Name", "string", "text"),
    _Property("phone", "Phone Number", "string", "phonenumber"),
    _Property("company", "Company Name", "string", "text"),
    _Property("website", "Website URL", "string", "text"),
    _Property("city", "City", "string", "text"),
    _Property("country", "Country/Region", "string", "text"),
    _Property("jobtitle", "Job Title", "string", "text"),
    _Property("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=_STAGES),
    _Property("createdate", "Create Date", "datetime", "date"),
    _Property("lastmodifieddate", "Last Modified Date", "datetime", "date"),
    _Property("hs_object_id", "Record ID", "number", "number"),
    _Property("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox"),
)
_CUSTOM_TYPES = (("string", "text"), ("number", "number"), ("enumeration", "select"), ("datetime", "date"))
_CUSTOM_OPTIONS = tuple(f"option_{n}" for n in range(1, 6))


def _custom_property(number: int) -> _Property:
    kind, field_type = _CUSTOM_TYPES[(number - 1) % len(_CUSTOM_TYPES)]
    return _Property(
        f"custom_field_{number:02d}", f"Custom Field {number:02d}", kind, field_type,
        group="custom_fields", options=_CUSTOM_OPTIONS if kind == "enumeration" else (), hubspot_defined=False,
    )


# --------------------------------------------------------------------------- generated values

_FIRST = ("Ada", "Bjørn", "Chloé", "Dmitri", "Emeka", "Fatima", "Giulia", "Hiro", "Ingrid", "José",
          "Kari", "Liam", "Mei", "Nora", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq")
_LAST = ("Andersen", "Berg", "Costa", "Dahl", "Eze", "Fischer", "García", "Haugen", "Ivanova", "Johansen",
         "Kim", "Larsen", "Müller", "Nakamura", "O'Brien", "Pettersen", "Quist", "Rossi", "Singh", "Tanaka")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
_COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay Industries",
              "Stark Industries", "Wayne Enterprises", "Nordic Fjord AS", "Tyrell")
_CITIES = (("Oslo", "Norway"), ("Bergen", "Norway"), ("Stockholm", "Sweden"), ("Copenhagen", "Denmark"),
           ("Berlin", "Germany"), ("Lagos", "Nigeria"), ("Tokyo", "Japan"), ("Boston", "United States"),
           ("São Paulo", "Brazil"), ("Pune", "India"))
_TITLES = ("CEO", "CTO", "Data Engineer", "Sales Manager", "Marketing Lead", "Accountant", "Consultant")
# Weighted towards the stages most contacts sit in.
_STAGE_WEIGHTS = ("subscriber", "lead", "lead", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                  "opportunity", "customer", "customer", "evangelist", "other")
_CUSTOM_DATE_BASE = 1_577_836_800_000  # 2020-01-01
_CUSTOM_DATE_SPAN = 4 * 365 * _DAY_MS


def _hash(tie: int, name: str) -> int:
    return _mix(tie ^ zlib.crc32(name.encode()))


def _pick(tie: int, name: str, choices: Sequence[Any]) -> Any:
    return choices[(_hash(tie, name) >> 8) % len(choices)]


def _company(tie: int) -> str | None:
    return None if _hash(tie, "company") % 10 == 0 else _pick(tie, "company", _COMPANIES)


def _city(tie: int) -> tuple[str, str] | None:
    return None if _hash(tie, "city") % 12 == 0 else _pick(tie, "city", _CITIES)


def _email(cid: int, tie: int) -> str:
    first, last = (
        re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", name.lower()))
        for name in (_pick(tie, "firstname", _FIRST), _pick(tie, "lastname", _LAST))
    )
    # The id keeps generated addresses unique, as HubSpot requires of emails.
    return f"{first}.{last}.{cid}@{_pick(tie, 'email', _DOMAINS)}"


def _phone(tie: int) -> str | None:
    h = _hash(tie, "phone")
    return None if h % 6 == 0 else f"+1 555 {h % 10_000_000:07d}"


def _website(tie: int) -> str | None:
    company = _company(tie)
    if company is None or _hash(tie, "website") % 5 == 0:
        return None
    return f"https://www.{re.sub(r'[^a-z]', '', company.lower())}.example"


def _merged_ids(tie: int) -> str | None:
    h = _hash(tie, "hs_merged_object_ids")
    # Ids far beyond the live range: merged-away contacts no longer exist.
    return None if h % 100 else f"{900_000_000 + h % 50_000};{950_000_000 + (h >> 20) % 50_000}"


def _optional(name: str, choices: Sequence[str], every: int) -> Callable[[int, int], str | None]:
    """A picker that leaves one contact in `every` without a value."""
    return lambda cid, tie: None if _hash(tie, name) % every == 0 else _pick(tie, name, choices)


def _city_part(part: int) -> Callable[[int, int], str | None]:
    return lambda cid, tie: None if (city := _city(tie)) is None else city[part]


_GENERATORS: dict[str, Callable[[int, int], str | None]] = {
    "email": _email,
    "firstname": lambda cid, tie: _pick(tie, "firstname", _FIRST),
    "lastname": lambda cid, tie: _pick(tie, "lastname", _LAST),
    "phone": lambda cid, tie: _phone(tie),
    "company": lambda cid, tie: _company(tie),
    "website": lambda cid, tie: _website(tie),
    "city": _city_part(0),
    "country": _city_part(1),
    "jobtitle": _optional("jobtitle", _TITLES, 4),
    "lifecyclestage": _optional("lifecyclestage", _STAGE_WEIGHTS, 50),
    "hs_merged_object_ids": lambda cid, tie: _merged_ids(tie),
}


def _custom_value(prop: _Property, tie: int) -> str | None:
    h = _hash(tie, prop.name)
    if h % 5 == 0:
        return None
    h >>= 8
    if prop.type == "number":
        return str(h % 100_000)
    if prop.type == "enumeration":
        return prop.options[h % len(prop.options)]
    if prop.type == "datetime":
        return _iso(_CUSTOM_DATE_BASE + h % _CUSTOM_DATE_SPAN)
    return f"value {h % 10_000}"


_NO_OVERRIDES: Mapping[str, str | None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Version:
    """One state of a contact.  Immutable, so the search index can keep an old one until the lag passes."""

    id: int
    tie: int  # hash of (seed, id): the shuffled order of equal sort values
    created: int
    modified: int
    archived_at: int | None = None
    # Values written explicitly (None = cleared); the rest are generated from the id.  Shared and read-only.
    overrides: Mapping[str, str | None] = field(default_factory=lambda: _NO_OVERRIDES)


@dataclass(frozen=True)
class _ObjectType:
    """What sets one CRM object type apart: its names, properties, generated values and scope."""

    name: str  # as in the URL: contacts, companies, ...
    type_id: str  # HubSpot's objectTypeId: 0-1 for contacts, 2-... for custom objects
    singular: str
    group: str  # the property group of its built-in properties
    modified: str  # the modification property search sorts and filters on
    created: tuple[str, ...]  # the property (or properties) holding the creation time
    default_properties: tuple[str, ...]  # what list and search return when no properties are asked for
    properties: tuple[_Property, ...]
    generators: Mapping[str, Callable[[int, int], str | None]]
    query_properties: tuple[str, ...]  # what search's free-text `query` looks in
    scopes: tuple[str, ...]  # any one of them grants reading this type
    first_id: int = 101
    mergeable: bool = False

    @property
    def always(self) -> tuple[str, ...]:
        """Properties every response carries, asked for or not."""
        return (*self.created, self.modified, "hs_object_id")

    @property
    def read_only(self) -> frozenset[str]:
        return frozenset(self.always)

    @property
    def indexed(self) -> tuple[str, str]:
        """The properties search keeps sorted indexes on."""
        return (self.modified, "hs_object_id")


CONTACTS = _ObjectType(
    "contacts", "0-1", "contact", "contactinformation", "lastmodifieddate", ("createdate",),
    ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"),
    _HUBSPOT_PROPERTIES, MappingProxyType(_GENERATORS), ("firstname", "lastname", "email", "phone", "company"),
    ("crm.objects.contacts.read",), mergeable=True,
)
