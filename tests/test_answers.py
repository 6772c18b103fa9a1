"""HubSpot's answers at the boundary: what the parsers take, and what they refuse as HubSpot's
failure (a 502 that names what was wrong) instead of letting it reach the service's logic."""

from __future__ import annotations

from typing import Any

import pytest

from app.hubspot import HubSpotError
from app.hubspot.answers import (
    archived_page,
    associations,
    catalogue,
    record,
    schemas,
    search_page,
    server_ms,
)
from app.object_types import Schema, standard_types

TYPES = standard_types("lastmodifieddate", {})
CONTACTS, DEALS = TYPES["contacts"], TYPES["deals"]
WHEN = "2024-03-05T10:11:12.345Z"
WHEN_MS = 1709633472345


def contact(**changes: Any) -> dict[str, Any]:
    return {"id": "42", "properties": {"lastmodifieddate": WHEN}, **changes}


def refused(parse: Any, *args: Any) -> HubSpotError:
    with pytest.raises(HubSpotError) as caught:
        parse(*args)
    assert caught.value.status == 502 and caught.value.title == "HubSpot answer unusable", caught.value
    return caught.value


class TestRecords:
    def test_a_record_is_its_id_time_merged_ids_and_what_hubspot_sent(self) -> None:
        """A search result becomes a record: its id and modification time (by the type's
        property), the ids merged into it, and the object as HubSpot sent it, for Sesam."""
        item = contact(properties={"lastmodifieddate": WHEN, "hs_merged_object_ids": "7;42;3"})
        parsed = record(item, CONTACTS)
        assert (parsed.id, parsed.modified_ms, parsed.merged_ids) == (42, WHEN_MS, [3, 7]), parsed
        assert parsed.key == (WHEN_MS, 42) and parsed.data is item

    def test_merged_ids_only_for_types_hubspot_merges(self) -> None:
        """A product carries no merged ids, whatever its properties say (HubSpot merges
        contacts, companies, deals and tickets only); a deal does."""
        item = {"id": "5", "properties": {"hs_lastmodifieddate": WHEN, "hs_merged_object_ids": "7"}}
        assert record(item, TYPES["products"]).merged_ids == []
        assert record(item, DEALS).merged_ids == [7]

    @pytest.mark.parametrize("item,names", [
        ({"properties": {"lastmodifieddate": WHEN}}, "has no usable id"),
        (contact(id="4 2"), "has no usable id"),
        (contact(id=42), "has no usable id"),
        (contact(id="1" * 20), "has no usable id"),
        (contact(properties={}), "'lastmodifieddate': it is missing"),
        (contact(properties={"lastmodifieddate": 5}), "'lastmodifieddate': it is int"),
        (contact(properties={"lastmodifieddate": "soon"}), "not an ISO-8601 timestamp"),
        (contact(properties=None), "'lastmodifieddate': it is missing"),
        (contact(properties={"lastmodifieddate": WHEN, "hs_merged_object_ids": 7}), "hs_merged_object_ids"),
        ("42", "has no usable id"),
    ])
    def test_what_a_record_cannot_be_used_without(self, item: Any, names: str) -> None:
        """A result without a usable id (digits, at most 19 of them: the width of the
        tokens) or modification time, or with merged ids that are not text, is refused,
        naming the record and what it lacks."""
        error = refused(record, item, CONTACTS)
        assert error.detail.startswith("HubSpot's search answer could not be used: ") and names in error.detail, (
            error.detail)


class TestPages:
    def test_a_search_page(self) -> None:
        """Its records, whether more follow, HubSpot's total (when it is a number), its
        clock and the requests it took."""
        page = search_page({"total": 9, "results": [contact()], "paging": {"next": {"after": "1"}}},
                           CONTACTS, 7, 2)
        assert ([r.id for r in page.records], page.has_more, page.total, page.server_ms, page.calls) == (
            [42], True, 9, 7, 2)
        last = search_page({"total": "9", "results": []}, CONTACTS, 7, 1)
        assert (last.records, last.has_more, last.total) == ([], False, None)

    @pytest.mark.parametrize("data", [{"results": {}}, {"results": [], "paging": "next"},
                                      {"results": [], "paging": {"next": "200"}}])
    def test_a_search_page_of_the_wrong_shape(self, data: dict[str, Any]) -> None:
        """Results that are not a list, paging that is not HubSpot's paging object."""
        error = refused(search_page, data, CONTACTS, 0, 1)
        assert "'results'" in error.detail or "'paging'" in error.detail, error.detail

    def test_an_archived_page_takes_unreadable_times_as_unknown(self) -> None:
        """Where a deletion sits does not depend on its times alone, so a missing or
        unreadable archivedAt or modification time is unknown, not a failure; an id still is."""
        data = {"results": [{"id": "1", "archivedAt": "garbage", "properties": {}},
                            {"id": "2", "archivedAt": WHEN, "properties": {"lastmodifieddate": WHEN}}],
                "paging": {"next": {"after": 3}}}
        page = archived_page(data, CONTACTS, 0, 1)
        assert [(r.id, r.archived_ms, r.modified_ms) for r in page.records] == [
            (1, None, None), (2, WHEN_MS, WHEN_MS)]
        assert page.after == "3"
        error = refused(archived_page, {"results": [{"archivedAt": WHEN}]}, DEALS, 0, 1)
        assert "list of archived deals" in error.detail, error.detail

    def test_catalogue_and_schemas(self) -> None:
        """Property names, and custom objects, are what HubSpot lists of them; entries
        that name nothing are skipped; a list that is not a list is refused."""
        assert catalogue({"results": [{"name": "email"}, {"label": "x"}, "y", {"name": 5}]}) == ["email"]
        assert schemas({"results": [{"objectTypeId": "2-1", "name": "cars", "fullyQualifiedName": "p1_cars"},
                                    {"objectTypeId": "2-2"}, 7]}) == [Schema("2-1", "cars", "p1_cars")]
        assert "property catalogue" in refused(catalogue, {"results": 5}).detail
        assert "schemas" in refused(schemas, {"results": "cars"}).detail


class TestAssociations:
    def test_an_answer_with_pages_and_records_without_any(self) -> None:
        """Each record's associations (ids as numbers or digits), where its next page
        begins, and the ids a 207 names as having none."""
        data = {"results": [{"from": {"id": "1"}, "to": [
            {"toObjectId": 9, "associationTypes": [{"typeId": 1}]}, {"toObjectId": "3"}],
            "paging": {"next": {"after": "2"}}}],
            "errors": [{"context": {"fromObjectId": ["5"]}}]}
        answer = associations(data, "association (deals to contacts)", 1)
        ((source, linked, after),) = answer.found
        assert (source, [a.entity() for a in linked], after) == (
            "1", [{"id": "9", "types": [{"typeId": 1}]}, {"id": "3", "types": []}], "2")
        assert answer.without == {"5"}

    @pytest.mark.parametrize("result", [{"to": []}, {"from": {"id": "1"}, "to": [{"toObjectId": [1]}]},
                                        {"from": {"id": "1"}, "to": "9"}, "1"])
    def test_an_answer_of_the_wrong_shape(self, result: Any) -> None:
        """A result without its record, or with associated ids that are not ids."""
        error = refused(associations, {"results": [result]}, "association (deals to contacts)", 1)
        assert "association (deals to contacts)" in error.detail, error.detail


class TestClock:
    def test_hubspots_clock(self) -> None:
        """HubSpot's Date header in epoch ms; without one, the service's own clock; a
        date before HubSpot existed is HubSpot's failure (the export would be empty)."""
        assert server_ms("Tue, 05 Mar 2024 10:11:12 GMT") == 1709633472000
        assert server_ms(None, now=lambda: 12.5) == 12500
        with pytest.raises(HubSpotError, match="clock unusable"):
            server_ms("Thu, 01 Jan 1970 00:00:00 GMT")
