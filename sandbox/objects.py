"""The records a portal holds: property catalogues, generated values and immutable record versions."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .common import DAY_MS, iso, mix
from .reference import DEAL_PIPELINES, DEAL_STAGES, OWNER_IDS, deal_pipeline, deal_stage


@dataclass(frozen=True)
class Property:
    name: str
    label: str
    type: str
    field_type: str
    group: str | None = None  # None: the object type's own information group
    options: tuple[str, ...] = ()
    hubspot_defined: bool = True
    formula: str | None = None  # a calculated property's calculationFormula
    # One of a realistic catalogue's many properties (see realistic_properties): most
    # records have no value for it, as in a real portal.
    sparse: bool = False
    external_options: bool = False  # options HubSpot fills from elsewhere (owners, pipelines)
    salt: int = field(init=False, repr=False, compare=False)  # the name's hash, for unset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "salt", zlib.crc32(self.name.encode()))

    def unset(self, tie: int) -> bool:
        """A sparse property has no value on three records in four: decided cheaply, as a
        realistic catalogue asks this some 200 times per record rendered."""
        return self.sparse and ((tie ^ self.salt) * 0x9E3779B97F4A7C15 >> 62) & 3 != 0

    def describe(self, order: int, object_type: ObjectType) -> dict:
        stamp = "2019-08-06T02:43:14.491Z" if self.hubspot_defined else "2023-05-02T08:00:00Z"
        read_only = self.name in object_type.read_only or self.formula is not None
        entry = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group or object_type.group,
            "description": f"The {object_type.singular}'s {self.label.lower()}.",
            "hidden": False,
            "calculated": self.formula is not None,
            "externalOptions": self.external_options,
            "hasUniqueValue": False,
            "formField": not read_only,
            "dataSensitivity": "non_sensitive",
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
        if self.formula is not None:
            entry["calculationFormula"] = self.formula
        if self.hubspot_defined:
            entry["hubspotDefined"] = True
        return entry


_STAGES = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
    "opportunity", "customer", "evangelist", "other",
)
_HUBSPOT_PROPERTIES = (
    Property("email", "Email", "string", "text"),
    Property("firstname", "First Name", "string", "text"),
    Property("lastname", "Last Name", "string", "text"),
    Property("phone", "Phone Number", "string", "phonenumber"),
    Property("company", "Company Name", "string", "text"),
    Property("website", "Website URL", "string", "text"),
    Property("city", "City", "string", "text"),
    Property("country", "Country/Region", "string", "text"),
    Property("jobtitle", "Job Title", "string", "text"),
    Property("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=_STAGES),
    Property("createdate", "Create Date", "datetime", "date"),
    Property("lastmodifieddate", "Last Modified Date", "datetime", "date"),
    Property("hs_object_id", "Record ID", "number", "number"),
    Property("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox"),
)
_CUSTOM_TYPES = (("string", "text"), ("number", "number"), ("enumeration", "select"), ("datetime", "date"))
_CUSTOM_OPTIONS = tuple(f"option_{n}" for n in range(1, 6))


def custom_property(number: int) -> Property:
    kind, field_type = _CUSTOM_TYPES[(number - 1) % len(_CUSTOM_TYPES)]
    return Property(
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
_CUSTOM_DATE_SPAN = 4 * 365 * DAY_MS
# One generated datetime value in this many is written as HubSpot also answers some:
# epoch milliseconds in a string, not ISO-8601 (a value set through an API in that form
# comes back so). A client must read both.
EPOCH_MS_SHARE = 4


def datetime_value(h: int) -> str:
    """A generated datetime property's value from hash ``h``: ISO-8601, or on one record in
    `EPOCH_MS_SHARE` epoch milliseconds as a string."""
    ms = _CUSTOM_DATE_BASE + h % _CUSTOM_DATE_SPAN
    return str(ms) if (h >> 40) % EPOCH_MS_SHARE == 0 else iso(ms)


def date_value(h: int) -> str:
    """A generated date property's value from hash ``h``: `YYYY-MM-DD`, or on one record in
    `EPOCH_MS_SHARE` epoch milliseconds at midnight UTC as a string (HubSpot's dates are
    midnight UTC, and answer either way)."""
    ms = _CUSTOM_DATE_BASE + h % (_CUSTOM_DATE_SPAN // DAY_MS) * DAY_MS
    return str(ms) if (h >> 40) % EPOCH_MS_SHARE == 0 else iso(ms)[:10]


def number_value(h: int, below: int) -> str:
    """A generated number property's value from hash ``h``: a whole number below ``below``,
    or on one record in four a decimal with cents, as HubSpot writes amounts ("2494.50")."""
    if (h >> 32) % 4:
        return str(h % below)
    cents = h % (below * 100)
    return f"{cents // 100}.{cents % 100:02d}"


def tie_hash(tie: int, name: str) -> int:
    """A record's hash for the value `name`, from its tie: what its generated values and seeded links draw on."""
    return mix(tie ^ zlib.crc32(name.encode()))


def _pick(tie: int, name: str, choices: Sequence[Any]) -> Any:
    return choices[(tie_hash(tie, name) >> 8) % len(choices)]


def _company(tie: int) -> str | None:
    return None if tie_hash(tie, "company") % 10 == 0 else _pick(tie, "company", _COMPANIES)


def _city(tie: int) -> tuple[str, str] | None:
    return None if tie_hash(tie, "city") % 12 == 0 else _pick(tie, "city", _CITIES)


def _email(cid: int, tie: int) -> str:
    first, last = (
        re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", name.lower()))
        for name in (_pick(tie, "firstname", _FIRST), _pick(tie, "lastname", _LAST))
    )
    # The id keeps generated addresses unique, as HubSpot requires of emails.
    return f"{first}.{last}.{cid}@{_pick(tie, 'email', _DOMAINS)}"


def _phone(tie: int) -> str | None:
    h = tie_hash(tie, "phone")
    return None if h % 6 == 0 else f"+1 555 {h % 10_000_000:07d}"


def _website(tie: int) -> str | None:
    company = _company(tie)
    if company is None or tie_hash(tie, "website") % 5 == 0:
        return None
    return f"https://www.{re.sub(r'[^a-z]', '', company.lower())}.example"


def _merged_ids(tie: int) -> str | None:
    h = tie_hash(tie, "hs_merged_object_ids")
    # Ids far beyond the live range: merged-away contacts no longer exist.
    return None if h % 100 else f"{900_000_000 + h % 50_000};{950_000_000 + (h >> 20) % 50_000}"


def _optional(name: str, choices: Sequence[str], every: int) -> Callable[[int, int], str | None]:
    """A picker that leaves one contact in `every` without a value."""
    return lambda cid, tie: None if tie_hash(tie, name) % every == 0 else _pick(tie, name, choices)


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


def custom_value(prop: Property, tie: int) -> str | None:
    h = tie_hash(tie, prop.name)
    if h % 5 == 0:
        return None
    h >>= 8
    if prop.type == "number":
        return str(h % 100_000)  # whole: the search tests compare these as integers
    if prop.type in ("enumeration", "bool"):
        return (prop.options or ("true", "false"))[h % max(len(prop.options), 2)]
    if prop.type == "datetime":
        return datetime_value(h)
    if prop.type == "date":
        return date_value(h)
    return f"value {h % 10_000}"


_NO_OVERRIDES: Mapping[str, str | None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Version:
    """One state of a contact.  Immutable, so the search index can keep an old one until the lag passes."""

    id: int
    tie: int  # hash of (seed, id): the shuffled order of equal sort values
    created: int
    modified: int
    archived_at: int | None = None
    # Values written explicitly (None = cleared); the rest are generated from the id.  Shared and read-only.
    overrides: Mapping[str, str | None] = field(default_factory=lambda: _NO_OVERRIDES)


@dataclass(frozen=True)
class ObjectType:
    """What sets one CRM object type apart: its names, properties, generated values and scope."""

    name: str  # as in the URL: contacts, companies, ...
    type_id: str  # HubSpot's objectTypeId: 0-1 for contacts, 2-... for custom objects
    singular: str
    group: str  # the property group of its built-in properties
    modified: str  # the modification property search sorts and filters on
    created: tuple[str, ...]  # the property (or properties) holding the creation time
    default_properties: tuple[str, ...]  # what list and search return when no properties are asked for
    properties: tuple[Property, ...]
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


CONTACTS = ObjectType(
    "contacts", "0-1", "contact", "contactinformation", "lastmodifieddate", ("createdate",),
    ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"),
    _HUBSPOT_PROPERTIES, MappingProxyType(_GENERATORS), ("firstname", "lastname", "email", "phone", "company"),
    ("crm.objects.contacts.read",), mergeable=True,
)


# --------------------------------------------------------------------------- the other object types


def generic_value(prop: Property, cid: int, tie: int) -> str | None:
    """A plausible value for a built-in property without a generator of its own."""
    h = tie_hash(tie, prop.name)
    if h % 9 == 0 or prop.unset(tie):  # a realistic catalogue's are mostly unset
        return None
    h >>= 8
    if prop.options:
        return prop.options[h % len(prop.options)]
    if prop.type == "number":
        return number_value(h, 5_000)
    if prop.type == "datetime":
        return datetime_value(h)
    if prop.type == "date":
        return date_value(h)
    if prop.type == "phone_number":
        return f"+47 {h % 100_000_000:08d}"
    return f"{prop.label} {cid}"


def _words(*names: str) -> Callable[[int, int], str | None]:
    """A generator joining a pick from each word list named (see _WORDS) into one text."""
    return lambda cid, tie: " ".join(_pick(tie, name, _WORDS[name]) for name in names)


_WORDS: dict[str, tuple[str, ...]] = {
    "adjective": ("Annual", "Premium", "Starter", "Enterprise", "Nordic", "Rapid", "Custom", "Cloud"),
    "thing": ("licence", "support plan", "onboarding", "integration", "hardware bundle", "training", "audit"),
    "problem": ("Cannot log in", "Invoice is wrong", "Export fails", "Slow dashboard", "Password reset",
                "Data missing after import", "Feature request"),
    "topic": ("Follow-up", "Demo", "Pricing", "Renewal", "Kick-off", "Quarterly review", "Intro"),
    "make": ("Volvo", "Tesla", "Toyota", "Volkswagen", "Polestar", "Ford", "Kia"),
    "model": ("XC40", "Model 3", "Corolla", "ID.4", "2", "Mustang Mach-E", "EV6"),
}


def _company_name(cid: int, tie: int) -> str:
    # The id keeps names apart: HubSpot does not require it, but it makes test output readable.
    return f"{_pick(tie, 'name', _COMPANIES)} {cid}"


def _domain(cid: int, tie: int) -> str:
    return f"{re.sub(r'[^a-z]', '', _pick(tie, 'name', _COMPANIES).lower())}{cid}.example"


def _props(*specs: tuple) -> tuple[Property, ...]:
    """Properties from (name, label, type, field_type[, options]) tuples."""
    return tuple(Property(*spec[:4], options=tuple(spec[4]) if len(spec) > 4 else ()) for spec in specs)


def _stamps(created: str, modified: str = "hs_lastmodifieddate") -> tuple[Property, ...]:
    return _props((created, "Create Date", "datetime", "date"), (modified, "Last Modified Date", "datetime", "date"),
                  ("hs_object_id", "Record ID", "number", "number"))


_ENGAGEMENT = ("crm.objects.contacts.read",)
_COMMERCE = ("e-commerce",)
_PRIORITIES = ("LOW", "MEDIUM", "HIGH")


def _object_type(name: str, type_id: str, singular: str, first_id: int, created: str, shown: tuple[str, ...],
                 properties: tuple[Property, ...], generators: dict, scopes: tuple[str, ...],
                 mergeable: bool = False) -> ObjectType:
    """A built-in type whose modification property is hs_lastmodifieddate, as for every type but contacts."""
    return ObjectType(
        name, type_id, singular, f"{singular.replace('_', '')}information", "hs_lastmodifieddate", (created,),
        (*shown, created, "hs_lastmodifieddate", "hs_object_id"), (*properties, *_stamps(created)),
        MappingProxyType(generators), shown[:3], scopes, first_id, mergeable,
    )


_STANDARD_TYPES = (
    _object_type(
        "companies", "0-2", "company", 1_000_001, "createdate", ("name", "domain"),
        (*_props(("name", "Company name", "string", "text"), ("domain", "Company Domain Name", "string", "text"),
                 ("industry", "Industry", "enumeration", "select",
                  ("COMPUTER_SOFTWARE", "RETAIL", "BANKING", "LOGISTICS_AND_SUPPLY_CHAIN", "HOSPITAL_HEALTH_CARE")),
                 ("phone", "Phone Number", "string", "phonenumber"), ("city", "City", "string", "text"),
                 ("country", "Country/Region", "string", "text"),
                 ("numberofemployees", "Number of Employees", "number", "number"),
                 ("annualrevenue", "Annual Revenue", "number", "number"),
                 ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", _STAGES)),
         Property("hs_merged_object_ids", "Merged Company IDs", "enumeration", "checkbox")),
        {"name": _company_name, "domain": _domain, "phone": lambda cid, tie: _phone(tie),
         "city": _city_part(0), "country": _city_part(1), "hs_merged_object_ids": lambda cid, tie: None},
        ("crm.objects.companies.read",), mergeable=True,
    ),
    _object_type(
        "deals", "0-3", "deal", 2_000_001, "createdate", ("dealname", "amount", "dealstage", "pipeline", "closedate"),
        (*_props(("dealname", "Deal Name", "string", "text"), ("amount", "Amount", "number", "number"),
               # Values that exist in the portal's reference data (sandbox.reference).
               ("dealstage", "Deal Stage", "enumeration", "radio", DEAL_STAGES),
               ("pipeline", "Pipeline", "enumeration", "select", tuple(DEAL_PIPELINES)),
               ("hubspot_owner_id", "Deal owner", "enumeration", "select", OWNER_IDS),
               ("closedate", "Close Date", "datetime", "date"),
               ("dealtype", "Deal Type", "enumeration", "radio", ("newbusiness", "existingbusiness")),
               ("hs_merged_object_ids", "Merged Deal IDs", "enumeration", "checkbox"),
               ("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", ("true", "false"))),
         Property("days_to_close", "Days to close", "number", "number", formula="(closedate - createdate) / 86400000")),
        {"dealname": _words("adjective", "thing"), "hs_merged_object_ids": lambda cid, tie: None,
         "pipeline": lambda cid, tie: deal_pipeline(tie), "dealstage": lambda cid, tie: deal_stage(tie)},
        ("crm.objects.deals.read",), mergeable=True,
    ),
    _object_type(
        "tickets", "0-5", "ticket", 3_000_001, "createdate", ("subject", "content", "hs_pipeline", "hs_pipeline_stage"),
        _props(("subject", "Ticket name", "string", "text"), ("content", "Ticket description", "string", "textarea"),
               ("hs_pipeline", "Pipeline", "enumeration", "select", ("0",)),
               ("hs_pipeline_stage", "Ticket status", "enumeration", "select", ("1", "2", "3", "4")),
               ("hs_ticket_priority", "Priority", "enumeration", "select", _PRIORITIES),
               ("hs_ticket_category", "Category", "enumeration", "checkbox",
                ("PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY")),
               ("hs_merged_object_ids", "Merged Ticket IDs", "enumeration", "checkbox")),
        {"subject": _words("problem"), "hs_merged_object_ids": lambda cid, tie: None}, ("tickets",), mergeable=True,
    ),
    _object_type(
        "products", "0-7", "product", 4_000_001, "createdate", ("name", "description", "price"),
        _props(("name", "Name", "string", "text"), ("description", "Description", "string", "textarea"),
               ("price", "Unit price", "number", "number"), ("hs_sku", "SKU", "string", "text")),
        {"name": _words("adjective", "thing")}, ("crm.objects.products.read", *_COMMERCE),
    ),
    _object_type(
        "line_items", "0-8", "line_item", 5_000_001, "createdate", ("name", "quantity", "price", "amount"),
        _props(("name", "Name", "string", "text"), ("quantity", "Quantity", "number", "number"),
               ("price", "Unit price", "number", "number"), ("amount", "Net price", "number", "number"),
               ("hs_product_id", "Product ID", "number", "number")),
        {"name": _words("adjective", "thing")}, ("crm.objects.line_items.read", *_COMMERCE),
    ),
    _object_type(
        "quotes", "0-14", "quote", 6_000_001, "hs_createdate", ("hs_title", "hs_expiration_date", "hs_status"),
        _props(("hs_title", "Quote name", "string", "text"),
               ("hs_expiration_date", "Expiration date", "datetime", "date"),
               ("hs_status", "Quote approval status", "enumeration", "select",
                ("DRAFT", "PENDING_APPROVAL", "APPROVED", "APPROVAL_NOT_NEEDED")),
               ("hs_quote_amount", "Quote amount", "number", "number")),
        {"hs_title": _words("adjective", "thing")}, ("crm.objects.quotes.read", *_COMMERCE),
    ),
    _object_type(
        "calls", "0-48", "call", 7_000_001, "hs_createdate", ("hs_call_title", "hs_timestamp"),
        _props(("hs_call_title", "Call Title", "string", "text"), ("hs_call_body", "Call notes", "string", "html"),
               ("hs_call_duration", "Call duration", "number", "number"),
               ("hs_call_direction", "Call direction", "enumeration", "select", ("INBOUND", "OUTBOUND")),
               ("hs_call_status", "Call status", "enumeration", "select",
                ("COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED")),
               ("hs_timestamp", "Activity date", "datetime", "date")),
        {"hs_call_title": _words("topic")}, _ENGAGEMENT,
    ),
    _object_type(
        "emails", "0-49", "email", 8_000_001, "hs_createdate", ("hs_email_subject", "hs_timestamp"),
        _props(("hs_email_subject", "Email subject", "string", "text"),
               ("hs_email_text", "Email body", "string", "text"),
               ("hs_email_direction", "Email direction", "enumeration", "select",
                ("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL")),
               ("hs_email_status", "Email send status", "enumeration", "select", ("SENT", "BOUNCED", "FAILED")),
               ("hs_timestamp", "Activity date", "datetime", "date")),
        {"hs_email_subject": _words("topic")}, (*_ENGAGEMENT, "sales-email-read"),
    ),
    _object_type(
        "meetings", "0-47", "meeting", 9_000_001, "hs_createdate", ("hs_meeting_title", "hs_timestamp"),
        _props(("hs_meeting_title", "Meeting name", "string", "text"),
               ("hs_meeting_body", "Meeting description", "string", "html"),
               ("hs_meeting_start_time", "Start time", "datetime", "date"),
               ("hs_meeting_end_time", "End time", "datetime", "date"),
               ("hs_meeting_outcome", "Meeting outcome", "enumeration", "select",
                ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED")),
               ("hs_timestamp", "Activity date", "datetime", "date")),
        {"hs_meeting_title": _words("topic")}, _ENGAGEMENT,
    ),
    _object_type(
        "notes", "0-46", "note", 10_000_001, "hs_createdate", ("hs_note_body", "hs_timestamp"),
        _props(("hs_note_body", "Note body", "string", "html"), ("hs_timestamp", "Activity date", "datetime", "date")),
        {"hs_note_body": _words("topic")}, _ENGAGEMENT,
    ),
    _object_type(
        "tasks", "0-27", "task", 11_000_001, "hs_createdate", ("hs_task_subject", "hs_task_status", "hs_timestamp"),
        _props(("hs_task_subject", "Task Title", "string", "text"), ("hs_task_body", "Notes", "string", "html"),
               ("hs_task_status", "Task Status", "enumeration", "select",
                ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")),
               ("hs_task_priority", "Priority", "enumeration", "select", _PRIORITIES),
               ("hs_timestamp", "Due date", "datetime", "date")),
        {"hs_task_subject": _words("topic")}, _ENGAGEMENT,
    ),
)

# The types HubSpot's search serves beyond those above (in the service since 0.2.0): a few
# properties each, in the shapes of HubSpot's catalogues. Scopes as HubSpot's API
# descriptions give them for search (any one of them grants reading).
_LINE_ITEMS = ("crm.objects.line_items.read", *_COMMERCE)
_UNPUBLISHED = "0-90"  # HubSpot publishes no objectTypeId for these: the sandbox's own, 0-90x


def _newer_type(name: str, type_id: str, number: int, title: str, extra: tuple[tuple, ...],
                scopes: tuple[str, ...]) -> ObjectType:
    """A newer built-in type: a title property of words (its first), ``extra`` properties of
    (name, label, type, field_type[, options]), created at hs_createdate."""
    singular = name.removesuffix("s") if name.endswith("s") and not name.endswith("ss") else name
    return _object_type(name, type_id, singular, 13_000_001 + number * 1_000_000, "hs_createdate",
                        (title, extra[0][0]) if extra else (title,),
                        _props((title, "Name", "string", "text"), *extra),
                        {title: _words("adjective", "thing")}, scopes)


_NEWER_TYPES = (
    _newer_type("leads", "0-136", 0, "hs_lead_name", (
        ("hs_lead_type", "Lead type", "enumeration", "select", ("NEW_BUSINESS", "UPSELL", "RE_ATTEMPTING")),
        ("hs_lead_label", "Lead label", "enumeration", "select", ("COLD", "WARM", "HOT")),
        ("hs_pipeline", "Pipeline", "enumeration", "select", ("lead-pipeline-id",)),
        ("hs_pipeline_stage", "Lead stage", "enumeration", "select",
         ("new-stage-id", "attempting-stage-id", "connected-stage-id", "qualified-stage-id")),
    ), ("crm.objects.leads.read",)),
    _newer_type("invoices", "0-53", 1, "hs_title", (
        ("hs_invoice_status", "Invoice status", "enumeration", "select", ("draft", "open", "paid", "voided")),
        ("hs_amount_billed", "Amount billed", "number", "number"),
        ("hs_balance_due", "Balance due", "number", "number"),
        ("hs_due_date", "Due date", "datetime", "date"),
        ("hs_currency", "Currency", "enumeration", "select", ("EUR", "NOK", "USD")),
        ("hs_number", "Invoice number", "string", "text"),
    ), ("crm.objects.invoices.read",)),
    _newer_type("appointments", "0-421", 2, "hs_appointment_name", (
        ("hs_appointment_start", "Start", "datetime", "date"),), ("crm.objects.appointments.read",)),
    _newer_type("carts", "0-142", 3, "hs_cart_name", (
        ("hs_total_price", "Total price", "number", "number"),), ("crm.objects.carts.read",)),
    _newer_type("commerce_payments", f"{_UNPUBLISHED}1", 4, "hs_reference_number", (
        ("hs_initial_amount", "Gross amount", "number", "number"),), ("crm.objects.commercepayments.read",)),
    _newer_type("communications", "0-18", 5, "hs_communication_body", (
        ("hs_communication_channel_type", "Channel type", "enumeration", "select",
         ("SMS", "WHATS_APP", "LINKEDIN_MESSAGE")),
    ), _ENGAGEMENT),
    _newer_type("courses", "0-410", 6, "hs_course_name", (
        ("hs_course_id", "Course ID", "string", "text"),), ("crm.objects.courses.read",)),
    _newer_type("discounts", "0-84", 7, "hs_label", (
        ("hs_value", "Value", "number", "number"),), _LINE_ITEMS),
    _newer_type("feedback_submissions", "0-19", 8, "hs_content", (
        ("hs_survey_type", "Survey type", "enumeration", "select", ("NPS", "CSAT", "CES")),),
        ("crm.objects.contacts.read", "crm.objects.feedback_submissions.read")),
    _newer_type("fees", "0-85", 9, "hs_label", (
        ("hs_value", "Value", "number", "number"),), _LINE_ITEMS),
    _newer_type("goal_targets", "0-74", 10, "hs_goal_name", (
        ("hs_target_amount", "Target amount", "number", "number"),), ("crm.objects.goals.read",)),
    _newer_type("listings", "0-420", 11, "hs_name", (
        ("hs_price", "Price", "number", "number"),), ("crm.objects.listings.read",)),
    _newer_type("orders", "0-123", 12, "hs_order_name", (
        ("hs_total_price", "Total price", "number", "number"),), ("crm.objects.orders.read",)),
    _newer_type("partner_clients", f"{_UNPUBLISHED}2", 13, "hs_name", (
        ("hs_domain", "Domain", "string", "text"),), ("crm.objects.partner-clients.read",)),
    _newer_type("partner_services", f"{_UNPUBLISHED}3", 14, "hs_name", (
        ("hs_status", "Status", "string", "text"),), ("crm.objects.partner-services.read",)),
    _newer_type("postal_mail", "0-116", 15, "hs_postal_mail_body", (
        ("hs_timestamp", "Activity date", "datetime", "date"),), _ENGAGEMENT),
    _newer_type("projects", "0-970", 16, "hs_name", (
        ("hs_status", "Status", "string", "text"),), ("crm.objects.projects.read",)),
    _newer_type("services", "0-162", 17, "hs_name", (
        ("hs_pipeline_stage", "Stage", "string", "text"),), ("crm.objects.services.read",)),
    _newer_type("subscriptions", "0-69", 18, "hs_name", (
        ("hs_status", "Status", "enumeration", "select", ("active", "canceled", "expired")),),
        ("crm.objects.subscriptions.read",)),
    _newer_type("taxes", "0-86", 19, "hs_label", (
        ("hs_value", "Value", "number", "number"),), ("crm.objects.line_items.read",)),
    _newer_type("users", "0-115", 20, "hs_email", (
        ("hs_given_name", "First name", "string", "text"),), ("crm.objects.users.read",)),
)

# The portal's custom object (its objectTypeId and name are the portal's own, like in HubSpot).
CUSTOM_OBJECT_SCOPE = "crm.objects.custom.read"
_CARS = _object_type(
    "cars", "2-3508482", "car", 12_000_001, "hs_createdate", ("vin", "make", "model"),
    # The portal defined these, not HubSpot.
    tuple(dataclasses.replace(prop, hubspot_defined=False) for prop in _props(
        ("vin", "VIN", "string", "text"), ("make", "Make", "string", "text"), ("model", "Model", "string", "text"),
        ("year", "Year", "number", "number"), ("price", "Price", "number", "number"),
        ("first_registration", "First registration", "date", "date"))),
    {"vin": lambda cid, tie: f"VIN{tie_hash(tie, 'vin') % 10**14:014d}", "make": _words("make"),
     "model": _words("model"), "year": lambda cid, tie: str(2012 + tie_hash(tie, 'year') % 14)},
    (CUSTOM_OBJECT_SCOPE,),
)
CUSTOM_TYPES = (_CARS,)
OBJECT_TYPES = (CONTACTS, *_STANDARD_TYPES, *_NEWER_TYPES, *CUSTOM_TYPES)
# How many of each type a portal of N contacts holds, unless asked for otherwise.
SHARE_OF_CONTACTS = {
    "companies": 10, "deals": 5, "tickets": 10, "products": 50, "line_items": 5, "quotes": 20,
    "calls": 10, "emails": 10, "meetings": 20, "notes": 10, "tasks": 10, "cars": 20,
    **{object_type.name: 50 for object_type in _NEWER_TYPES},
}


# --------------------------------------------------------------------------- realistic catalogues

# A real portal's contact catalogue holds about 247 properties, 72 of them datetimes (the
# analytics, email, sales-activity and lifecycle-stage dates HubSpot keeps); companies and
# deals hold fewer. With the 20 custom properties a Sandbox adds to contacts by default
# (5 of them datetimes) these targets make 247 and 72.
REALISTIC_SIZES: Mapping[str, tuple[int, int]] = MappingProxyType({
    "contacts": (227, 67), "companies": (190, 48), "deals": (150, 40)})  # (properties, datetimes)
_BOOL = ("true", "false")
_STAGE_LABELS = {"subscriber": "Subscriber", "lead": "Lead", "marketingqualifiedlead": "Marketing Qualified Lead",
                 "salesqualifiedlead": "Sales Qualified Lead", "opportunity": "Opportunity",
                 "customer": "Customer", "evangelist": "Evangelist", "other": "Other"}


def _stage_properties() -> tuple[Property, ...]:
    """HubSpot's per-lifecycle-stage dates and times (contacts and companies)."""
    dates = []
    times = []
    for stage, label in _STAGE_LABELS.items():
        dates += [Property(f"hs_lifecyclestage_{stage}_date", f"Became a {label} Date", "datetime", "date"),
                  Property(f"hs_date_entered_{stage}", f"Date entered '{label} (Lifecycle Stage Pipeline)'",
                           "datetime", "date"),
                  Property(f"hs_date_exited_{stage}", f"Date exited '{label} (Lifecycle Stage Pipeline)'",
                           "datetime", "date")]
        times.append(Property(
            f"hs_time_in_{stage}", f"Time in '{label} (Lifecycle Stage Pipeline)'", "number", "number",
            formula=f"if is_present(hs_date_exited_{stage}) then (hs_date_exited_{stage} - hs_date_entered_{stage}) "
                    f"else (now - hs_date_entered_{stage})"))
    return (*dates, *times)


_CONTACT_EXTRAS = (
    *_stage_properties(),
    *_props(
        ("hs_analytics_first_timestamp", "Time First Seen", "datetime", "date"),
        ("hs_analytics_last_timestamp", "Time Last Seen", "datetime", "date"),
        ("hs_analytics_first_visit_timestamp", "Time of First Session", "datetime", "date"),
        ("hs_analytics_last_visit_timestamp", "Time of Last Session", "datetime", "date"),
        ("hs_email_first_open_date", "First marketing email open date", "datetime", "date"),
        ("hs_email_last_open_date", "Last marketing email open date", "datetime", "date"),
        ("hs_email_first_click_date", "First marketing email click date", "datetime", "date"),
        ("hs_email_last_click_date", "Last marketing email click date", "datetime", "date"),
        ("hs_email_first_send_date", "First marketing email send date", "datetime", "date"),
        ("hs_email_last_send_date", "Last marketing email send date", "datetime", "date"),
        ("notes_last_contacted", "Last Contacted", "datetime", "date"),
        ("notes_last_updated", "Last Activity Date", "datetime", "date"),
        ("notes_next_activity_date", "Next Activity Date", "datetime", "date"),
        ("hs_last_sales_activity_timestamp", "Last Engagement Date", "datetime", "date"),
        ("hs_latest_meeting_activity", "Latest meeting activity", "datetime", "date"),
        ("hs_sales_email_last_opened", "Recent Sales Email Opened Date", "datetime", "date"),
        ("hs_sales_email_last_clicked", "Recent Sales Email Clicked Date", "datetime", "date"),
        ("hs_sales_email_last_replied", "Recent Sales Email Replied Date", "datetime", "date"),
        ("first_conversion_date", "First Conversion Date", "datetime", "date"),
        ("recent_conversion_date", "Recent Conversion Date", "datetime", "date"),
        ("first_deal_created_date", "First Deal Created Date", "datetime", "date"),
        ("recent_deal_close_date", "Recent Deal Close Date", "datetime", "date"),
        ("hubspot_owner_assigneddate", "Owner Assigned Date", "datetime", "date"),
        ("hs_lead_status", "Lead Status", "enumeration", "radio",
         ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED",
          "BAD_TIMING")),
        ("hs_analytics_source", "Original Traffic Source", "enumeration", "select",
         ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS", "OTHER_CAMPAIGNS",
          "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL")),
        ("hs_legal_basis", "Legal basis for processing contact's data", "enumeration", "checkbox",
         ("Legitimate interest – prospect/lead", "Legitimate interest - existing customer",
          "Performance of a contract", "Freely given consent from contact")),
        ("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox", _BOOL),
        ("hs_sequences_is_enrolled", "Currently in Sequence", "bool", "booleancheckbox", _BOOL),
        ("hs_whatsapp_phone_number", "WhatsApp Phone Number", "phone_number", "phonenumber"),
        ("mobilephone", "Mobile Phone Number", "string", "phonenumber"),
        ("address", "Street Address", "string", "text"),
        ("state", "State/Region", "string", "text"),
        ("zip", "Postal Code", "string", "text"),
        ("message", "Message", "string", "textarea"),
        ("hs_analytics_num_page_views", "Number of Pageviews", "number", "number"),
        ("hs_analytics_num_visits", "Number of Sessions", "number", "number"),
        ("hs_email_open", "Marketing emails opened", "number", "number"),
        ("hs_email_click", "Marketing emails clicked", "number", "number"),
        ("hs_email_delivered", "Marketing emails delivered", "number", "number"),
        ("num_contacted_notes", "Number of Sales Activities", "number", "number"),
        ("num_associated_deals", "Number of Associated Deals", "number", "number"),
    ),
    Property("hubspot_owner_id", "Contact owner", "enumeration", "select", options=("101", "102", "103"),
             external_options=True),
)
_NAMED_EXTRAS = {"contacts": _CONTACT_EXTRAS, "companies": _stage_properties()}
# The kinds the rest of a realistic catalogue cycles through, in roughly a real portal's mix.
_FILL_KINDS = (("string", "text"), ("number", "number"), ("enumeration", "select"), ("bool", "booleancheckbox"),
               ("string", "text"), ("enumeration", "radio"), ("number", "number"), ("string", "textarea"),
               ("date", "date"), ("enumeration", "checkbox"), ("phone_number", "phonenumber"), ("number", "number"))
_FILL_OPTIONS = ("alpha", "beta", "gamma", "delta")


def realistic_properties(object_type: ObjectType) -> tuple[Property, ...]:
    """The HubSpot-defined properties that make `object_type`'s catalogue a real portal's
    size and mix (see REALISTIC_SIZES): some with HubSpot's names, the rest generated
    (hs_sandbox_*), every one sparse. Empty for the types without a realistic size."""
    if object_type.name not in REALISTIC_SIZES:
        return ()
    total, datetimes = REALISTIC_SIZES[object_type.name]
    taken = {p.name for p in object_type.properties}
    named = [p for p in _NAMED_EXTRAS.get(object_type.name, ()) if p.name not in taken]
    have = len(object_type.properties) + len(named)
    have_datetimes = sum(p.type == "datetime" for p in (*object_type.properties, *named))
    fill: list[Property] = []
    for number in range(1, max(0, datetimes - have_datetimes) + 1):
        fill.append(Property(f"hs_sandbox_datetime_{number:02d}", f"Sandbox date {number:02d}", "datetime", "date"))
    for number in range(1, max(0, total - have - len(fill)) + 1):
        kind, field_type = _FILL_KINDS[(number - 1) % len(_FILL_KINDS)]
        options = _BOOL if kind == "bool" else _FILL_OPTIONS if kind == "enumeration" else ()
        # A few calculated ones, on a number property before them.
        formula = f"hs_sandbox_{number - 5:03d} * 2" if number % 12 == 7 else None
        fill.append(Property(f"hs_sandbox_{number:03d}", f"Sandbox {kind.replace('_', ' ')} {number:03d}", kind,
                             field_type, options=options, formula=formula))
    return tuple(dataclasses.replace(p, sparse=True) for p in (*named, *fill))
