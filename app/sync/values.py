"""Typed values (opt-in, `values=typed` or HUBSPOT_VALUES=typed): HubSpot's property values,
which it sends as strings, in Sesam's own types, by the type each property has in HubSpot's
property catalogue.

What this relies on, from Sesam's "Entity Data Model" page (docs.sesam.io, and its source in
the datanav/docs repository): entities are JSON, with the JSON types (an integer's range is
unlimited; a float is an IEEE double) and Transit-encoded extension types written as strings
that start with `~` and a tag: a datetime is `"~t<date>T<time>Z"` (UTC, `Z` mandatory, the
fraction of a second optional, years 0001 to 9999), a decimal of arbitrary precision
`"~f<digits>"`. So a string value that itself starts with `~` is written with one more `~`
in front (Transit's escape, `~~`), or Sesam would read it as a typed value.

The conversion, per the catalogue's type of a property:

- ``number``: a JSON integer when the value is a whole number within ±(2^53 − 1), the range
  every JSON reader keeps exactly; otherwise (a fraction, or a whole number beyond it) a
  decimal, `~f` and the value's digits, normalised (`1.50` → `~f1.5`) but exact
  (`decimal.Decimal`, never a float).
- ``bool``: `true` or `false` (HubSpot writes its options, exactly "true" and "false").
- ``date``: `~t<date>T00:00:00Z` (HubSpot writes `YYYY-MM-DD`, or epoch ms at midnight UTC).
- ``datetime``: `~t<UTC time with milliseconds>Z` (ISO-8601 with or without milliseconds or an
  offset, or epoch milliseconds, as `app.timestamps` reads them).
- every other type (string, enumeration, multi-valued `a;b` included, phone_number, json,
  object_coordinates, a type this service does not know) and a property the catalogue does
  not list: the string as it came, `~`-escaped.

null stays null and an empty string (HubSpot's "cleared") stays empty. A value that does not
read as its type stays the string it was (escaped) and is counted as unparsed: nothing is
dropped. A value with white space around it is not HubSpot's way of writing a number, a
bool or a date, so it is unparsed too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ..config import VALUE_MODES
from ..timestamps import format_ms, parse_timestamp

Entity = dict[str, Any]
STRINGS, TYPED = VALUE_MODES

MAX_SAFE_INTEGER = 2**53 - 1  # the largest whole number a JSON reader with doubles keeps
# A number as HubSpot (and Java's Double.toString, for the very large) writes it: digits, an
# optional fraction, an optional exponent of at most three digits, so a decimal's text stays
# under about a thousand characters.
NUMBER = re.compile(r"-?[0-9]{1,100}(?:\.[0-9]{1,100})?(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
EPOCH_MS = re.compile(r"-?[0-9]{1,15}", re.ASCII)
# A UTC time as HubSpot usually writes it, which is written back from its own text (formatting
# every value anew took most of the time of typing a record of a real portal's catalogue).
ISO_UTC = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,3}))?Z", re.ASCII)
DAY_MS = 86_400_000
EPOCH = date(1970, 1, 1)
# The record's own times beside its properties; `_id`, `_updated` and `id` never change.
RECORD_TIMES = ("createdAt", "updatedAt", "archivedAt")
ESCAPED_FIELDS = ("url",)  # other text of the record (not its ids): escaped like a string value


class Unparsed(ValueError):
    """A value that does not read as its property's type."""


def escape(text: str) -> str:
    """A string value as Sesam reads it back unchanged: one more `~` before a leading `~`."""
    return "~" + text if text.startswith("~") else text


def number(text: str) -> int | str:
    """A number property's value: an int within ±MAX_SAFE_INTEGER, else `~f` and its exact
    decimal digits, normalised."""
    if not NUMBER.fullmatch(text):
        raise Unparsed(text)
    value = Decimal(text)
    if value == value.to_integral_value() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)  # -0 is 0
    digits = format(value, "f")  # exact: no context's precision applies
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return "~f" + digits


def boolean(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise Unparsed(text)


def day(text: str) -> str:
    """A date property's value as a Sesam datetime at midnight UTC."""
    match = DATE.fullmatch(text)
    if match:
        try:
            found = date(*map(int, match.groups()))
        except ValueError:
            raise Unparsed(text) from None
    elif EPOCH_MS.fullmatch(text):
        days, rest = divmod(int(text), DAY_MS)
        if rest:
            raise Unparsed(text)  # not midnight: no date HubSpot writes
        try:
            found = EPOCH + timedelta(days=days)
        except OverflowError:
            raise Unparsed(text) from None
    else:
        raise Unparsed(text)
    return f"~t{found.isoformat()}T00:00:00Z"


def moment(text: str) -> str:
    """A datetime property's value as a Sesam datetime, UTC with milliseconds."""
    try:
        ms = parse_timestamp(text)
    except ValueError:
        raise Unparsed(text) from None
    utc = ISO_UTC.fullmatch(text)
    if utc:  # HubSpot's usual form, read above: its own text, the fraction to milliseconds
        return f"~t{utc[1]}.{(utc[2] or '').ljust(3, '0')}Z"
    return "~t" + format_ms(ms)  # epoch ms, an offset, no zone


CONVERSIONS: Mapping[str, Callable[[str], Any]] = {
    "number": number, "bool": boolean, "date": day, "datetime": moment}


def typed_value(declared: str | None, value: Any) -> tuple[Any, bool]:
    """``value`` of a property of type ``declared`` (None: not in the catalogue) in Sesam's
    typed JSON, and whether it read as its type (False: it is counted as unparsed)."""
    if value is None:
        return None, True
    if not isinstance(value, str):
        return value, False  # HubSpot sends text or null: passed on, counted
    if value == "":
        return value, True
    convert = CONVERSIONS.get(declared or "")
    if convert is None:
        return escape(value), True
    if value != value.strip():
        return escape(value), False
    try:
        return convert(value), True
    except Unparsed:
        return escape(value), False


def typed_entity(entity: Entity, types: Mapping[str, str]) -> tuple[Entity, int]:
    """``entity`` with typed values (a new dict; its associations as they were), and how many
    of its values did not read as their type."""
    typed = dict(entity)
    unparsed = 0
    properties = entity.get("properties")
    if isinstance(properties, dict):
        converted: dict[str, Any] = {}
        for name, value in properties.items():
            if value is None:  # most of a real portal's properties are unset
                converted[name] = None
                continue
            converted[name], parsed = typed_value(types.get(name), value)
            unparsed += not parsed
        typed["properties"] = converted
    for name in RECORD_TIMES:
        if name in typed:
            typed[name], parsed = typed_value("datetime", typed[name])
            unparsed += not parsed
    for name in ESCAPED_FIELDS:
        if isinstance(typed.get(name), str):
            typed[name] = escape(typed[name])
    return typed, unparsed


def typed_entities(entities: Iterator[Entity], types: Callable[[], Mapping[str, str]],
                   count: Callable[[int], None]) -> Iterator[Entity]:
    """``entities`` with typed values, one at a time. ``types`` (the catalogue's, name → type)
    is asked for once, at the first entity; ``count`` hears of each entity's unparsed values.
    Closing this closes ``entities`` at once."""
    try:
        known: Mapping[str, str] | None = None
        for entity in entities:
            if known is None:
                known = types()
            typed, unparsed = typed_entity(entity, known)
            if unparsed:
                count(unparsed)
            yield typed
    finally:
        close = getattr(entities, "close", None)
        if close is not None:
            close()
