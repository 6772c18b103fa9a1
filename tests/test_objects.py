"""Object types and association reads, at the seams the HTTP tests reach only with effort:
which names resolve (and when HubSpot's schemas are read again), and how a batch of records
gets all its associations from HubSpot's v4 batch answers (per-record pages, 207 answers,
the 1,000-input limit, answers that leave ids out)."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import ConfigError, load
from app.hubspot import Associations, HubSpotError
from app.hubspot.answers import associations as parse_associations
from app.hubspot.answers import required_scopes
from app.hubspot.answers import schemas as parse_schemas
from app.object_types import (
    FAILURE_SECONDS,
    STANDARD_NAMES,
    ObjectTypes,
    Schema,
    UnknownObjectType,
    standard_types,
)
from app.sync import ExportStats
from app.sync.associations import ASSOCIATION_BATCH, AssociationReader

CARS = {"objectTypeId": "2-77", "name": "cars", "fullyQualifiedName": "p9_cars",
        "labels": {"singular": "Car", "plural": "Cars"}}


class Schemas:
    """HubSpot's schemas API, counted; what it answers can change between reads."""

    def __init__(self, *schemas: dict) -> None:
        self.schemas = list(schemas)
        self.reads = 0

    def __call__(self) -> list[Schema]:
        self.reads += 1
        return parse_schemas({"results": list(self.schemas)})


def types(schemas: Schemas, clock: list[float], properties: dict | None = None) -> ObjectTypes:
    properties = properties or {}
    return ObjectTypes(standard_types("lastmodifieddate", properties), schemas, properties,
                       cache_seconds=600, clock=lambda: clock[0])


class TestObjectTypes:
    def test_standard_types_resolve_without_asking_hubspot(self) -> None:
        """The standard types are known: naming one costs no HubSpot call. Contacts keep
        the tutorial's modification property; every other type uses hs_lastmodifieddate;
        contacts and companies are the types HubSpot merges."""
        schemas = Schemas(CARS)
        known = types(schemas, [0.0])
        resolved = {name: known.resolve(name) for name in STANDARD_NAMES}
        assert schemas.reads == 0, "a standard type must not read the schemas"
        assert resolved["contacts"].modified_property == "lastmodifieddate"
        assert {k.modified_property for n, k in resolved.items() if n != "contacts"} == {"hs_lastmodifieddate"}
        assert {n for n, k in resolved.items() if k.merges} == {"contacts", "companies", "deals", "tickets"}
        assert resolved["tickets"].scope == "tickets" and resolved["companies"].path == "companies"

    def test_custom_object_by_id_or_qualified_name_is_one_type(self) -> None:
        """A custom object is found by its objectTypeId and by its fully qualified name,
        both the same type (HubSpot's URLs use the id); the schemas are read once."""
        schemas = Schemas(CARS)
        known = types(schemas, [0.0], {"p9_cars": ("model",)})
        by_id, by_name = known.resolve("2-77"), known.resolve("p9_cars")
        assert by_id == by_name and by_id.path == "2-77", (by_id, by_name)
        assert by_id.properties == ("model",), "properties configured by qualified name apply"
        assert by_id.scope == "crm.objects.custom.read" and not by_id.merges
        assert schemas.reads == 1, f"the schemas were read {schemas.reads} times"

    def test_unknown_type_lists_what_the_portal_has(self) -> None:
        """An unknown name is refused with the list of the portal's types, custom ones with
        the names HubSpot accepts for them."""
        with pytest.raises(UnknownObjectType) as caught:
            types(Schemas(CARS), [0.0]).resolve("2-78")
        message = str(caught.value)
        assert "'2-78'" in message and "deals" in message and "cars (2-77, p9_cars)" in message, message

    def test_a_new_custom_object_is_found_within_a_minute_and_a_scan_stays_cheap(self) -> None:
        """A name missing from the cache reads the schemas again, but at most once a minute,
        so a custom object made a moment ago is found soon, and a scan of names costs at
        most one schemas read a minute."""
        schemas, clock = Schemas(), [0.0]
        known = types(schemas, clock)
        for name in ("2-1", "2-2", "2-3"):
            with pytest.raises(UnknownObjectType):
                known.resolve(name)
        assert schemas.reads == 1, f"three misses within a minute cost {schemas.reads} reads"
        schemas.schemas.append(CARS)
        clock[0] = 61.0
        assert known.resolve("p9_cars").path == "2-77", "a new object must be found after a minute"
        assert schemas.reads == 2


class TestSchemasReadFailures:
    def test_a_failure_is_remembered_for_a_minute_then_read_again(self) -> None:
        """A failed schemas read is raised again, the same error, without asking HubSpot, for
        `FAILURE_SECONDS`; then the schemas are read again, and a success clears it."""
        failure, clock, reads = HubSpotError(503, "HubSpot unavailable", "schemas"), [0.0], []

        def read() -> list[Schema]:
            reads.append(clock[0])
            if len(reads) == 1:
                raise failure
            return parse_schemas({"results": [CARS]})

        known = ObjectTypes(standard_types("lastmodifieddate", {}), read, {}, cache_seconds=600,
                            clock=lambda: clock[0])
        for now in (0.0, 1.0, FAILURE_SECONDS - 1):
            clock[0] = now
            with pytest.raises(HubSpotError) as caught:
                known.resolve("2-77")
            assert caught.value is failure, f"at {now} s: {caught.value!r}"
        assert reads == [0.0], f"the schemas were read at {reads}"
        clock[0] = FAILURE_SECONDS
        assert known.resolve("2-77").path == "2-77", "the schemas must be read again after the interval"
        assert reads == [0.0, FAILURE_SECONDS], reads

    def test_the_first_of_two_entries_with_one_name_wins(self) -> None:
        """Two entries sharing an id or a name: the second is skipped, so a name always
        means the type it meant first and the export of an id is of one type."""
        schemas = Schemas(CARS, {"objectTypeId": "2-77", "name": "trucks", "fullyQualifiedName": "p9_trucks"},
                          {"objectTypeId": "2-78", "name": "cars", "fullyQualifiedName": "p9_cars2"})
        known = types(schemas, [0.0])
        assert known.resolve("2-77").name == "cars"
        for name in ("p9_trucks", "p9_cars2", "2-78"):
            with pytest.raises(UnknownObjectType):
                known.resolve(name)


class FakeAssociations:
    """HubSpot's v4 batch read: ``truth`` maps record id to its associated ids; at most
    ``page`` of them per record per answer; ids without associations go in ``errors``."""

    def __init__(self, truth: dict[str, list[int]], page: int = 3, leave_out: str | None = None) -> None:
        self.truth = truth
        self.page = page
        self.leave_out = leave_out
        self.requests: list[list[dict]] = []

    def associations(self, source: Any, target: Any, inputs: list[dict]) -> Associations:
        """The answer, parsed as the client parses HubSpot's."""
        return parse_associations(self.answer(inputs), "association (deals to contacts)", 1)

    def answer(self, inputs: list[dict]) -> dict:
        assert len(inputs) <= ASSOCIATION_BATCH, f"{len(inputs)} inputs in one request"
        self.requests.append(inputs)
        results, errors = [], []
        for item in inputs:
            if item["id"] == self.leave_out:
                continue
            targets = self.truth.get(item["id"], [])
            if not targets:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": "No associations found", "context": {"fromObjectId": [item["id"]]}})
                continue
            begin = int(item.get("after", 0))
            result = {"from": {"id": item["id"]}, "to": [
                {"toObjectId": t, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}]}
                for t in targets[begin:begin + self.page]]}
            if begin + self.page < len(targets):
                result["paging"] = {"next": {"after": str(begin + self.page)}}
            results.append(result)
        return {"status": "COMPLETE", "results": results, **({"errors": errors} if errors else {})}


def attach(fake: FakeAssociations, entities: list[dict]) -> tuple[list[dict], ExportStats]:
    known = standard_types("lastmodifieddate", {})
    stats = ExportStats()
    reader = AssociationReader(fake, known["deals"], (known["contacts"],), stats)  # type: ignore[arg-type]
    return reader.attach(entities), stats


class TestAssociationReads:
    def test_every_association_of_every_record_across_pages(self) -> None:
        """Each live record gets all its associations, in id order, also when HubSpot pages
        them per record; records without any get an empty list (HubSpot's 207 errors);
        deletions get none. Calls: one per 1,000 records plus one per extra page."""
        truth = {"1": [9, 3, 7, 5, 11, 2, 8], "2": [], "3": [4]}
        fake = FakeAssociations(truth, page=3)
        entities = [{"id": "1"}, {"id": "2"}, {"id": "9", "_deleted": True}, {"id": "3"}]
        out, stats = attach(fake, entities)
        got = {e["id"]: [a["id"] for a in e.get("associations", {}).get("contacts", [])] for e in out}
        assert got == {"1": ["2", "3", "5", "7", "8", "9", "11"], "2": [], "9": [], "3": ["4"]}, got
        assert "associations" not in out[2], "a deletion carries no associations"
        assert len(fake.requests) == 3 and stats.upstream_calls == 3, fake.requests
        assert fake.requests[1] == [{"id": "1", "after": "3"}], "the next page is asked by record"

    def test_batches_respect_hubspots_limit(self) -> None:
        """More records than HubSpot takes in one request are read in requests of at most
        1,000 inputs, and the record paging that follows is batched too."""
        truth = {str(i): [i, i + 1] for i in range(1, 2502)}
        fake = FakeAssociations(truth, page=1)
        out, stats = attach(fake, [{"id": str(i)} for i in range(1, 2502)])
        assert all(len(e["associations"]["contacts"]) == 2 for e in out)
        sizes = [len(r) for r in fake.requests]
        assert sum(sizes) == 2 * 2501 and len(sizes) == 6, f"5,002 inputs must take 6 requests: {sizes}"

    def test_an_answer_that_leaves_a_record_out_is_an_error(self) -> None:
        """A record HubSpot says nothing of (neither result nor error) is not taken to have no
        associations: that would lose them silently. It is HubSpot's failure, a 502."""
        fake = FakeAssociations({"1": [2], "2": [3]}, leave_out="2")
        with pytest.raises(HubSpotError) as caught:
            attach(fake, [{"id": "1"}, {"id": "2"}])
        assert caught.value.status == 502 and "'2'" in caught.value.detail, caught.value.detail

    def test_an_answer_of_the_wrong_shape_is_an_error(self) -> None:
        """A result without ``from`` is HubSpot's failure, told as such, not a crash."""
        class Broken(FakeAssociations):
            def answer(self, inputs: list[dict]) -> dict:
                return {"results": [{"to": []}]}
        with pytest.raises(HubSpotError) as caught:
            attach(Broken({}), [{"id": "1"}])
        assert caught.value.status == 502 and "could not be used" in caught.value.detail


class TestScopes:
    def test_required_scopes_come_from_hubspots_answer(self) -> None:
        """A MISSING_SCOPES answer names the scopes in errors[].context; those are the ones
        the service names (HubSpot knows best), at most five, each once."""
        body = {"category": "MISSING_SCOPES", "errors": [
            {"message": "One or more of the following scopes are required.",
             "context": {"requiredGranularScopes": ["crm.objects.companies.read", "crm.objects.companies.read"]}}]}
        assert required_scopes(body) == ["crm.objects.companies.read"]
        assert required_scopes({"errors": [{"context": {"id": ["5"]}}]}) == []
        assert required_scopes({"errors": "nonsense"}) == []


class TestObjectProperties:
    def test_properties_per_type(self) -> None:
        """HUBSPOT_OBJECT_PROPERTIES configures the properties of other types, each once."""
        settings = load({"HUBSPOT_OBJECT_PROPERTIES": "companies=name,domain; deals=dealname;"})
        assert settings.object_properties == (("companies", ("name", "domain")), ("deals", ("dealname",)))

    @pytest.mark.parametrize("value", ["companies", "companies=", "contacts=email", "deals=a;deals=b",
                                       "com panies=name", ";", "deals=amount,a b"])
    def test_malformed_values_are_refused(self, value: str) -> None:
        """A type without names, a type given twice, contacts (HUBSPOT_PROPERTIES has them)
        or a malformed name stops the service with the variable named."""
        with pytest.raises(ConfigError, match="^HUBSPOT_OBJECT_PROPERTIES="):
            load({"HUBSPOT_OBJECT_PROPERTIES": value})
