"""Typed values (`values=typed`, HUBSPOT_VALUES=typed): each HubSpot property value in Sesam's
own type by the property catalogue's type, the `~` escape of text, unparsed values kept as
text and counted; and the default, text as HubSpot sends it, unchanged."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from app.config import ConfigError, load
from app.hubspot.answers import property_types
from app.sync.values import MAX_SAFE_INTEGER, typed_entities, typed_entity, typed_value
from app.timestamps import format_ms, parse_timestamp
from sandbox import Sandbox, SandboxServer
from sandbox.objects import CUSTOM_TYPES

from .conftest import make_service, sandbox_clock
from .sesam import SETTLE_SECONDS, T0, SesamPipe, assert_in_sync, settle
from .test_operations import metric

UNPARSED = "hubspot_sesam_values_unparsed_total"

# (declared type, HubSpot's value) -> (what Sesam gets, whether it read as its type)
CONVERSIONS = [
    # number: a JSON integer when whole and within +-(2^53 - 1), else an exact decimal
    ("number", "2494", 2494, True),
    ("number", "-17", -17, True),
    ("number", "0", 0, True),
    ("number", "-0", 0, True),
    ("number", "0012", 12, True),
    ("number", "12.00", 12, True),
    ("number", "1e3", 1000, True),
    ("number", "1.5E2", 150, True),
    ("number", "2494.50", "~f2494.5", True),
    ("number", "1.50", "~f1.5", True),
    ("number", "-0.50", "~f-0.5", True),
    ("number", "1.5e-7", "~f0.00000015", True),
    ("number", "0.1", "~f0.1", True),
    ("number", str(MAX_SAFE_INTEGER), MAX_SAFE_INTEGER, True),
    ("number", str(-MAX_SAFE_INTEGER), -MAX_SAFE_INTEGER, True),
    ("number", str(MAX_SAFE_INTEGER + 1), f"~f{MAX_SAFE_INTEGER + 1}", True),
    ("number", "123456789012345678901234567890", "~f123456789012345678901234567890", True),
    ("number", "1.0E20", "~f100000000000000000000", True),
    # more digits than a float or Decimal's default context keep: exact all the same
    ("number", "3.14159265358979323846264338327950288", "~f3.14159265358979323846264338327950288", True),
    ("number", "NaN", "NaN", False),
    ("number", "Infinity", "Infinity", False),
    ("number", "-Infinity", "-Infinity", False),
    ("number", " 5", " 5", False),
    ("number", "5 ", "5 ", False),
    ("number", "+5", "+5", False),
    ("number", "1,5", "1,5", False),
    ("number", "1_000", "1_000", False),
    ("number", ".5", ".5", False),
    ("number", "5.", "5.", False),
    ("number", "0x10", "0x10", False),
    ("number", "\uff15", "\uff15", False),  # a fullwidth 5: not ASCII digits
    ("number", "1e1000", "1e1000", False),  # an exponent of four digits: no number HubSpot writes
    ("number", "n/a", "n/a", False),
    ("number", "~1", "~~1", False),  # unparsed text is still escaped
    # bool: exactly HubSpot's option values
    ("bool", "true", True, True),
    ("bool", "false", False, True),
    ("bool", "TRUE", "TRUE", False),
    ("bool", "True", "True", False),
    ("bool", "1", "1", False),
    ("bool", "yes", "yes", False),
    # date: midnight UTC as a Sesam datetime
    ("date", "2024-06-01", "~t2024-06-01T00:00:00Z", True),
    ("date", "2024-02-29", "~t2024-02-29T00:00:00Z", True),
    ("date", "1899-12-31", "~t1899-12-31T00:00:00Z", True),
    ("date", "1717200000000", "~t2024-06-01T00:00:00Z", True),  # epoch ms at midnight UTC
    ("date", "-86400000", "~t1969-12-31T00:00:00Z", True),
    ("date", "0", "~t1970-01-01T00:00:00Z", True),
    ("date", "1717200000001", "1717200000001", False),  # not midnight: no date
    ("date", "2023-02-29", "2023-02-29", False),
    ("date", "2024-13-01", "2024-13-01", False),
    ("date", "0000-01-01", "0000-01-01", False),
    ("date", "01.06.2024", "01.06.2024", False),
    ("date", "2024-06-01T00:00:00Z", "2024-06-01T00:00:00Z", False),
    ("date", "999999999999999", "999999999999999", False),  # beyond year 9999
    # datetime: UTC with milliseconds, from ISO (with or without them, Z or an offset) or epoch ms
    ("datetime", "2024-06-01T00:00:10.123Z", "~t2024-06-01T00:00:10.123Z", True),
    ("datetime", "2024-06-01T00:00:10Z", "~t2024-06-01T00:00:10.000Z", True),
    ("datetime", "2024-06-01T00:00:10.5Z", "~t2024-06-01T00:00:10.500Z", True),
    ("datetime", "2024-06-01T00:00:10.12Z", "~t2024-06-01T00:00:10.120Z", True),
    ("datetime", "2024-06-01T00:00:10.123456Z", "~t2024-06-01T00:00:10.123Z", True),  # HubSpot's precision: ms
    ("datetime", "2024-06-01T02:00:10+02:00", "~t2024-06-01T00:00:10.000Z", True),
    ("datetime", "2024-06-01T00:00:10", "~t2024-06-01T00:00:10.000Z", True),  # zoneless: UTC
    ("datetime", "1717200010123", "~t2024-06-01T00:00:10.123Z", True),
    ("datetime", "2024-06-31T00:00:00Z", "2024-06-31T00:00:00Z", False),
    ("datetime", "yesterday", "yesterday", False),
    ("datetime", "-1", "-1", False),  # before 1970: outside what the service reads
    ("datetime", " 2024-06-01T00:00:10Z", " 2024-06-01T00:00:10Z", False),
    ("datetime", "~t2024-06-01T00:00:10Z", "~~t2024-06-01T00:00:10Z", False),
    # every other type stays text, escaped
    ("string", "Ada", "Ada", True),
    ("string", "~tomorrow", "~~tomorrow", True),
    ("string", "~", "~~", True),
    ("string", "a~b", "a~b", True),
    ("string", "2494", "2494", True),
    ("enumeration", "a;b", "a;b", True),
    ("enumeration", "~x;y", "~~x;y", True),
    ("phone_number", "+47 12345678", "+47 12345678", True),
    ("json", '{"a": 1}', '{"a": 1}', True),
    ("object_coordinates", "~f1", "~~f1", True),
    (None, "~f1", "~~f1", True),  # a property the catalogue does not list
    (None, "2494", "2494", True),
    # null and HubSpot's "cleared" of every type
    ("number", None, None, True),
    ("datetime", None, None, True),
    ("string", None, None, True),
    ("number", "", "", True),
    ("date", "", "", True),
    ("bool", "", "", True),
    # not text: passed on as it came, counted
    ("number", 5, 5, False),
    ("string", ["a"], ["a"], False),
]


class TestConversion:
    @pytest.mark.parametrize("declared, value, expected, parsed", CONVERSIONS,
                             ids=[f"{d}:{v!r}" for d, v, _, _ in CONVERSIONS])
    def test_the_table(self, declared: str | None, value: Any, expected: Any, parsed: bool) -> None:
        """Each HubSpot type's values as Sesam gets them in typed mode, and whether the value
        counts as unparsed (kept as the text it was, escaped)."""
        got = typed_value(declared, value)
        assert got == (expected, parsed), f"{declared} {value!r}: got {got}, want {(expected, parsed)}"
        assert type(got[0]) is type(expected), f"{declared} {value!r}: {type(got[0])}, not {type(expected)}"

    def test_a_record(self) -> None:
        """A record's properties by their types, its createdAt/updatedAt/archivedAt as Sesam
        datetimes, its url escaped like text; `_id`, `_updated`, `id`, `archived` and its
        associations exactly as they came; the entity given is not changed."""
        associations = {"contacts": [{"id": "101", "types": [{"label": "~t2024-06-01T00:00:00Z"}]}]}
        entity = {"_id": "7", "_updated": "2024-06-01T00:00:10.000Z_0000000000000000007", "id": "7",
                  "properties": {"amount": "2494.50", "closedate": "1717200000000", "name": "~x",
                                 "flag": "maybe", "new_one": "~y"},
                  "createdAt": "2024-06-01T00:00:00Z", "updatedAt": "2024-06-01T00:00:10.5Z",
                  "archivedAt": "bad", "archived": False, "url": "~u", "associations": associations}
        before = orjson.dumps(entity)
        types = {"amount": "number", "closedate": "datetime", "name": "string", "flag": "bool"}
        typed, unparsed = typed_entity(entity, types)
        assert typed == {
            "_id": "7", "_updated": "2024-06-01T00:00:10.000Z_0000000000000000007", "id": "7",
            "properties": {"amount": "~f2494.5", "closedate": "~t2024-06-01T00:00:00.000Z", "name": "~~x",
                           "flag": "maybe", "new_one": "~~y"},
            "createdAt": "~t2024-06-01T00:00:00.000Z", "updatedAt": "~t2024-06-01T00:00:10.500Z",
            "archivedAt": "bad", "archived": False, "url": "~~u", "associations": associations,
        }, typed
        assert unparsed == 2, "flag 'maybe' and archivedAt 'bad' do not read as their types"
        assert orjson.dumps(entity) == before, "the entity handed in must stay as it was"

    def test_a_deletion(self) -> None:
        """A deleted record's entity: its archivedAt a Sesam datetime, the rest as it was."""
        deleted = {"_id": "9", "_updated": "2024-06-01T00:00:10.001Z_0000000000000000009", "_deleted": True,
                   "id": "9", "archived": True, "archivedAt": "2024-06-01T00:00:10.001Z"}
        typed, unparsed = typed_entity(deleted, {})
        assert typed == {**deleted, "archivedAt": "~t2024-06-01T00:00:10.001Z"} and unparsed == 0, typed

    def test_the_catalogue_is_read_once_at_the_first_entity_and_closing_closes(self) -> None:
        """The stream asks for the types once, at its first entity (an empty export asks
        nothing), counts each entity's unparsed values, and closing it closes what it reads."""
        asked: list[int] = []
        counted: list[int] = []
        closed: list[bool] = []

        def source():
            try:
                for n in range(3):
                    yield {"_id": str(n), "properties": {"n": "x" * n}}
            finally:
                closed.append(True)

        def types() -> dict[str, str]:
            asked.append(1)
            return {"n": "number"}

        inner = source()  # held here, so that only an explicit close can close it
        stream = typed_entities(inner, types, counted.append)
        assert asked == [], "the catalogue must not be read before the first entity"
        assert next(stream)["properties"] == {"n": ""} and asked == [1]
        assert next(stream)["properties"] == {"n": "x"}
        stream.close()
        assert closed == [True], "closing the typed stream must close the export it reads"
        assert asked == [1] and counted == [1], (asked, counted)
        empty = typed_entities(iter([]), types, counted.append)
        assert list(empty) == [] and asked == [1], "an empty export must not read the catalogue"


class TestCatalogueTypes:
    def test_types_from_an_untrusted_catalogue(self) -> None:
        """Each property's type as HubSpot states it; a missing, unknown or non-text type is
        text ("string"); entries without a name are skipped; the first of a repeated name
        counts."""
        data = {"results": [
            {"name": "amount", "type": "number"}, {"name": "closedate", "type": "datetime"},
            {"name": "flag", "type": "bool"}, {"name": "born", "type": "date"},
            {"name": "odd", "type": "currency_v2"}, {"name": "nested", "type": {"x": 1}},
            {"name": "untyped"}, {"type": "number"}, "junk", {"name": 5, "type": "number"},
            {"name": "amount", "type": "string"}, {"name": "where", "type": "object_coordinates"},
        ]}
        assert property_types(data) == {
            "amount": "number", "closedate": "datetime", "flag": "bool", "born": "date",
            "odd": "string", "nested": "string", "untyped": "string", "where": "object_coordinates"}


# -- through the HTTP surface -----------------------------------------------------------


def entities(response: Any, context: str) -> list[dict]:
    assert response.status_code == 200, f"{context}: {response.status_code} {response.text[:500]}"
    body = orjson.loads(response.content)
    assert isinstance(body, list), f"{context}: not an array"
    return body


def by_id(items: list[dict]) -> dict[str, dict]:
    return {item["_id"]: item for item in items}


class TestStringsByDefault:
    def test_the_default_is_hubspots_text_unchanged(self, service: TestClient, sandbox: Sandbox) -> None:
        """Without `values` (and HUBSPOT_VALUES unset) every property value is HubSpot's text
        as it came, createdAt as HubSpot wrote it; `values=strings` is the same body, byte for
        byte, and so is `/get_contacts` against `/objects/contacts`."""
        [cid] = sandbox.create(1, {"firstname": "~tomorrow"})
        settle(sandbox)
        default = service.get("/get_contacts")
        body = entities(default, "default")
        for path in ("/get_contacts?values=strings", "/objects/contacts", "/objects/contacts?values=strings"):
            assert service.get(path).content == default.content, f"{path} differs from the default"
        record = by_id(body)[cid]
        truth = sandbox.record(cid)
        assert record["properties"]["firstname"] == "~tomorrow", "strings mode must not escape"
        assert record["properties"] == {name: truth["properties"][name] for name in record["properties"]}
        assert record["createdAt"] == truth["createdAt"] and record["updatedAt"] == truth["updatedAt"]
        values = [value for item in body for value in item["properties"].values()]
        assert all(value is None or isinstance(value, str) for value in values), "only text and null"


class TestTypedExport:
    def test_deals(self, service: TestClient, sandbox: Sandbox) -> None:
        """`/objects/deals?values=typed`: amount a JSON integer or an exact decimal, closedate
        (ISO or epoch ms) a Sesam datetime, the bool a JSON boolean, enumerations and names
        text, the record's times Sesam datetimes; `_id`, `_updated` and `id` as in strings
        mode; nothing unparsed."""
        deals = sorted(sandbox.live("deals"), key=int)[:4]
        sandbox.modify(deals[:1], {"amount": "2494.50", "closedate": "1717200010123",
                                   "hs_is_closed_won": "true"}, object_type="deals")
        sandbox.modify(deals[1:2], {"amount": "2494", "closedate": "2024-06-01T00:00:10Z",
                                    "hs_is_closed_won": "false", "dealname": "~Renewal"},
                       object_type="deals")
        settle(sandbox)
        typed = by_id(entities(service.get("/objects/deals?values=typed"), "typed"))
        text = by_id(entities(service.get("/objects/deals"), "strings"))
        assert typed.keys() == text.keys() and len(typed) > 50, (len(typed), len(text))
        first, second = typed[deals[0]], typed[deals[1]]
        assert first["properties"]["amount"] == "~f2494.5", first["properties"]
        assert first["properties"]["closedate"] == "~t2024-06-01T00:00:10.123Z", first["properties"]
        assert first["properties"]["hs_is_closed_won"] is True, first["properties"]
        assert second["properties"]["amount"] == 2494, second["properties"]
        assert second["properties"]["closedate"] == "~t2024-06-01T00:00:10.000Z", second["properties"]
        assert second["properties"]["hs_is_closed_won"] is False, second["properties"]
        assert second["properties"]["dealname"] == "~~Renewal", "a text beginning with ~ is escaped"
        assert text[deals[1]]["properties"]["dealname"] == "~Renewal", "only typed mode escapes"
        for deal_id, deal in typed.items():
            assert (deal["_id"], deal["_updated"], deal["id"]) == (
                text[deal_id]["_id"], text[deal_id]["_updated"], text[deal_id]["id"]), deal_id
            props = deal["properties"]
            assert props["hs_object_id"] == int(deal_id), props
            assert props["dealstage"] is None or isinstance(props["dealstage"], str), props
            assert props["amount"] is None or type(props["amount"]) is int or props["amount"].startswith("~f"), props
            for name in ("closedate", "createdate", "hs_lastmodifieddate"):
                assert props[name] is None or (props[name].startswith("~t") and props[name].endswith("Z")), props
            assert deal["createdAt"].startswith("~t") and deal["updatedAt"].startswith("~t"), deal
        amounts = [deal["properties"]["amount"] for deal in typed.values()]
        assert any(type(a) is int for a in amounts) and any(isinstance(a, str) for a in amounts), (
            "the sandbox's amounts are whole numbers and decimals both")

    def test_contacts_and_the_escape(self, service: TestClient, sandbox: Sandbox) -> None:
        """`/get_contacts?values=typed`: the modification time a Sesam datetime that reads
        back as the record's, the record id a JSON integer, text escaped where it begins
        with `~` and only there."""
        [cid] = sandbox.create(1, {"firstname": "~tomorrow", "lastname": "Berg~"})
        settle(sandbox)
        contact = by_id(entities(service.get("/get_contacts?values=typed"), "typed"))[cid]
        props = contact["properties"]
        assert props["firstname"] == "~~tomorrow" and props["lastname"] == "Berg~", props
        assert props["hs_object_id"] == int(cid), props
        truth = sandbox.record(cid)
        assert props["lastmodifieddate"] == "~t" + _ms_iso(truth["properties"]["lastmodifieddate"]), props
        assert contact["url"] == truth["url"], "the url does not begin with ~: unchanged"

    def test_associations_stay_as_they_are(self, service: TestClient, sandbox: Sandbox) -> None:
        """With associations, the typed record carries them exactly as the strings export."""
        typed = entities(service.get("/objects/deals?values=typed&associations=contacts&limit=20"), "typed")
        text = entities(service.get("/objects/deals?associations=contacts&limit=20"), "strings")
        assert [e["associations"] for e in typed] == [e["associations"] for e in text]
        assert any(e["associations"]["contacts"] for e in typed), "some deal has contacts"
        assert all(isinstance(e["properties"]["hs_object_id"], int) for e in typed), "and typed values"

    def test_unparsed_values_stay_text_and_are_counted(self, service: TestClient, sandbox: Sandbox,
                                                      caplog: pytest.LogCaptureFixture) -> None:
        """A value a portal holds that does not read as its type (written unchecked, as an
        import can leave it) reaches Sesam as the text it was, escaped, and is counted: in
        the export's summary line and in hubspot_sesam_values_unparsed_total per type."""
        deal, other = sorted(sandbox.live("deals"), key=int)[:2]
        sandbox.modify([deal], {"amount": "n/a", "closedate": "31.02.2024", "hs_is_closed_won": "TRUE"},
                       object_type="deals", raw=True)
        sandbox.modify([other], {"amount": "~3"}, object_type="deals", raw=True)
        settle(sandbox)
        with caplog.at_level(logging.INFO, logger="app.web.stream"):
            body = by_id(entities(service.get("/objects/deals?values=typed"), "typed"))
        assert body[deal]["properties"]["amount"] == "n/a", body[deal]["properties"]
        assert body[deal]["properties"]["closedate"] == "31.02.2024", body[deal]["properties"]
        assert body[deal]["properties"]["hs_is_closed_won"] == "TRUE", body[deal]["properties"]
        assert body[other]["properties"]["amount"] == "~~3", body[other]["properties"]
        [summary] = [r for r in caplog.records if r.name == "app.web.stream" and "export of" in r.getMessage()]
        assert (summary.values, summary.unparsed_values) == ("typed", 4), summary.__dict__
        assert metric(service, UNPARSED, object_type="deals") == 4
        # The same export as text counts nothing: nothing is read as a type.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="app.web.stream"):
            text = by_id(entities(service.get("/objects/deals"), "strings"))
        assert text[deal]["properties"]["amount"] == "n/a"
        [summary] = [r for r in caplog.records if r.name == "app.web.stream" and "export of" in r.getMessage()]
        assert (summary.values, summary.unparsed_values) == ("strings", 0), summary.__dict__
        assert metric(service, UNPARSED, object_type="deals") == 4

    def test_no_extra_catalogue_read(self, service: TestClient, sandbox: Sandbox) -> None:
        """The types come from the catalogue the export reads anyway (cached): a typed export
        asks HubSpot for it no more than a strings export does."""
        sandbox.reset_counters()
        entities(service.get("/objects/deals?values=typed"), "typed")
        entities(service.get("/objects/deals"), "strings")
        entities(service.get("/objects/deals?values=typed"), "typed again")
        assert sandbox.request_counts()["properties"] == 1, sandbox.request_counts()

    def test_configured_properties_are_typed_too(self, configure, sandbox: Sandbox) -> None:
        """With the properties configured (HUBSPOT_OBJECT_PROPERTIES), the catalogue is read
        for their types, once: amount is still a number."""
        service = configure(object_properties=(("deals", ("amount", "dealname")),), values="typed")
        deal = sorted(sandbox.live("deals"), key=int)[0]
        sandbox.modify([deal], {"amount": "12.5"}, object_type="deals")
        settle(sandbox)
        sandbox.reset_counters()
        first = by_id(entities(service.get("/objects/deals"), "typed"))
        entities(service.get("/objects/deals"), "typed again")
        assert first[deal]["properties"]["amount"] == "~f12.5", first[deal]["properties"]
        assert sandbox.request_counts()["properties"] == 1, sandbox.request_counts()


class TestConfiguration:
    def test_hubspot_values_default_and_the_request_wins(self, configure, sandbox: Sandbox) -> None:
        """HUBSPOT_VALUES=typed makes typed the default of every export; a request's
        `values=strings` wins over it (and `values=typed` over the default strings)."""
        typed_service = configure(values="typed")
        plain = configure()
        assert isinstance(entities(typed_service.get("/get_contacts?limit=3"), "configured")[0]
                          ["properties"]["hs_object_id"], int), "HUBSPOT_VALUES=typed is the default"
        assert isinstance(entities(typed_service.get("/get_contacts?limit=3&values=strings"), "asked")[0]
                          ["properties"]["hs_object_id"], str), "the request's strings wins"
        assert isinstance(entities(plain.get("/objects/contacts?limit=3&values=typed"), "asked")[0]
                          ["properties"]["hs_object_id"], int), "the request's typed wins"

    @pytest.mark.parametrize("raw, loaded", [("strings", "strings"), ("typed", "typed"), ("TYPED", "typed")])
    def test_the_variable(self, raw: str, loaded: str) -> None:
        """HUBSPOT_VALUES is strings (the default) or typed, in any case."""
        assert load({}).values == "strings"
        assert load({"HUBSPOT_VALUES": raw}).values == loaded

    @pytest.mark.parametrize("raw", ["typd", "string", "json", "true"])
    def test_anything_else_is_refused(self, raw: str) -> None:
        with pytest.raises(ConfigError, match="^HUBSPOT_VALUES=.*strings or typed"):
            load({"HUBSPOT_VALUES": raw})

    @pytest.mark.parametrize("query", ["values=", "values=Typed", "values=typed&values=strings", "values=raw"])
    def test_a_bad_parameter_is_a_400(self, service: TestClient, sandbox: Sandbox, query: str) -> None:
        """A `values` other than strings or typed, or given twice, is a 400 naming it, before
        HubSpot is asked."""
        sandbox.reset_counters()
        response = service.get(f"/objects/deals?{query}")
        assert response.status_code == 400 and "values" in response.json()["detail"], response.text
        assert sum(sandbox.request_counts().values()) == 0, sandbox.request_counts()


class TestSandboxValues:
    def test_every_generated_value_reads_as_its_type(self) -> None:
        """The sandbox's catalogues state the types of the values it generates (numbers whole
        and with cents, bools, dates as YYYY-MM-DD and epoch ms, datetimes as ISO and epoch
        ms), in its realistic catalogues too: a typed export of every type counts no
        unparsed value, and shows each kind."""
        sandbox = Sandbox(contacts=200, seed=11, now_ms=T0, realistic_catalogues=True)
        seen: set[str] = set()
        with SandboxServer(sandbox) as server:
            settings = load({"HUBSPOT_ACCESS_TOKEN": sandbox.token, "HUBSPOT_BASE_URL": server.url,
                             "HUBSPOT_SEARCH_SETTLE_SECONDS": str(int(SETTLE_SECONDS)),
                             "HUBSPOT_SEARCH_RATE_PER_SECOND": "100", "HUBSPOT_RATE_PER_10_SECONDS": "1000"})
            with make_service(settings, sandbox_clock(sandbox)) as service:
                custom = {object_type.name: object_type.type_id for object_type in CUSTOM_TYPES}
                for kind in sandbox.object_types:
                    body = entities(service.get(f"/objects/{custom.get(kind, kind)}?values=typed"), kind)
                    assert body, f"no {kind}"
                    counted = [line for line in service.get("/metrics").text.splitlines()
                               if line.startswith(UNPARSED + "{")]
                    assert counted == [], (
                        f"{kind}: the sandbox generates values its catalogue's types do not read: {counted}")
                    for entity in body:
                        for value in entity["properties"].values():
                            seen.add(_kind(value))
        assert seen >= {"int", "decimal", "bool", "datetime", "midnight", "text", "null"}, seen


# -- an emulated Sesam pipe --------------------------------------------------------------


@pytest.mark.parametrize("strategy, page_size", [("max", 0), ("chronological", 7)])
def test_a_pipe_with_typed_values(strategy: str, page_size: int, configure, sandbox: Sandbox) -> None:
    """A Sesam pipe reading deals typed: a full run, then changes and deletions on
    incremental runs, in sync with HubSpot each time; every `_updated` exactly the one of the
    strings export (continuation does not depend on the values), deletions' archivedAt a
    Sesam datetime."""
    service = configure(values="typed")
    kwargs = {"path": "/objects/deals", "modified_property": "hs_lastmodifieddate",
              "page_size": page_size or 100}
    pipe = SesamPipe(service, strategy, **kwargs)
    text_pipe = SesamPipe(service, strategy, values="strings", **kwargs)
    settle(sandbox)
    for round_ in range(3):
        pipe.run()
        text_pipe.run()
        assert_in_sync(pipe, sandbox, f"round {round_}", object_type="deals")
        assert {k: v["_updated"] for k, v in pipe.dataset.items()} == {
            k: v["_updated"] for k, v in text_pipe.dataset.items()}, f"round {round_}: _updated differ"
        assert pipe.offset == text_pipe.offset
        live = sorted(sandbox.live("deals"), key=int)
        sandbox.modify(live[round_ * 3:round_ * 3 + 3], {"amount": f"{round_}.25"}, object_type="deals")
        sandbox.archive(live[-1 - round_:], object_type="deals")
        sandbox.create(2, object_type="deals")
        settle(sandbox)
    pipe.run()
    assert_in_sync(pipe, sandbox, "last round", object_type="deals")
    deleted = [e for e in pipe.dataset.values() if e.get("_deleted")]
    assert deleted and all(e["archivedAt"].startswith("~t") for e in deleted), deleted[:2]
    changed = pipe.dataset[sorted(sandbox.live("deals"), key=int)[6]]
    assert changed["properties"]["amount"] == "~f2.25", changed["properties"]


# -- helpers -----------------------------------------------------------------------------


def _ms_iso(value: str) -> str:
    return format_ms(parse_timestamp(value))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if value.startswith("~f"):
        return "decimal"
    if value.startswith("~t"):
        return "midnight" if value.endswith("T00:00:00Z") else "datetime"
    return "text"

