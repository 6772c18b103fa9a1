"""The sandbox's realistic property catalogues (Sandbox(realistic_catalogues=True)): a real
portal's size and kinds, every property shaped like HubSpot's Property."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from sandbox import Sandbox, SandboxServer

from .crm import Crm
from .sesam import T0
from .test_sandbox import deserialize

# HubSpot's Property schema, as its published API description states it
# (HubSpot/HubSpot-public-api-spec-collection,
# PublicApiSpecs/CRM/Properties/Rollouts/145899/v3/properties.json, components.schemas):
# the fields it requires, and the optional ones a real portal's catalogue answer carries.
PROPERTY_REQUIRED = {"name", "label", "type", "fieldType", "description", "groupName", "options"}
PROPERTY_SERVED = PROPERTY_REQUIRED | {
    "displayOrder", "calculated", "externalOptions", "hasUniqueValue", "hidden", "modificationMetadata",
    "formField", "dataSensitivity", "createdAt", "updatedAt", "archived"}
PROPERTY_FIELDS = PROPERTY_SERVED | {
    "hubspotDefined", "calculationFormula", "archivedAt", "createdUserId", "updatedUserId", "currencyPropertyName",
    "dateDisplayHint", "numberDisplayHint", "textDisplayHint", "referencedObjectType", "sensitiveDataCategories",
    "showCurrencySymbol"}
OPTION_REQUIRED = {"label", "value", "hidden"}  # its Option schema (displayOrder and description optional)
METADATA_REQUIRED = {"archivable", "readOnlyDefinition", "readOnlyValue"}  # PropertyModificationMetadata
DATA_SENSITIVITY = {"highly_sensitive", "non_sensitive", "sensitive"}
KINDS = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number"}


@pytest.fixture(name="crm", scope="module")
def _crm() -> Iterator[Crm]:
    sandbox = Sandbox(contacts=60, seed=3, now_ms=T0, realistic_catalogues=True)
    with SandboxServer(sandbox) as server:
        crm = Crm(server.url, sandbox.token)
        yield crm
        crm.session.close()


def catalogue(crm: Crm, object_type: str) -> list[dict]:
    response = crm.get(f"/crm/v3/properties/{object_type}")
    assert response.status_code == 200, response.text
    return response.json()["results"]


class TestRealisticCatalogue:
    def test_contacts_size_and_kinds(self, crm: Crm) -> None:
        """247 contact properties, 72 of them datetimes, of every kind HubSpot has; some
        calculated with a formula; names unique."""
        properties = catalogue(crm, "contacts")
        names = [p["name"] for p in properties]
        assert len(names) == 247 and len(set(names)) == 247, len(names)
        kinds = Counter(p["type"] for p in properties)
        assert kinds["datetime"] == 72, kinds
        assert set(kinds) == KINDS, kinds
        assert min(kinds.values()) >= 2 and kinds["enumeration"] >= 20 and kinds["number"] >= 20, kinds
        calculated = [p for p in properties if p["calculated"]]
        assert len(calculated) >= 5, len(calculated)
        assert all(p["calculationFormula"] and p["modificationMetadata"]["readOnlyValue"] for p in calculated)
        assert not any("calculationFormula" in p for p in properties if not p["calculated"])
        assert {"hs_lifecyclestage_customer_date", "hs_analytics_last_timestamp", "hs_time_in_lead",
                "custom_field_20", "email", "lastmodifieddate"} <= set(names)

    @pytest.mark.parametrize("object_type, size", [("contacts", 247), ("companies", 190), ("deals", 150)])
    def test_every_property_has_the_schemas_fields(self, crm: Crm, object_type: str, size: int) -> None:
        """Every property carries the schema's required fields and those a real portal serves,
        no field the schema lacks; enumerations and bools list options shaped like Option."""
        properties = catalogue(crm, object_type)
        assert len(properties) == size, len(properties)
        for prop in properties:
            assert PROPERTY_SERVED <= set(prop) <= PROPERTY_FIELDS, (prop["name"], set(prop) ^ PROPERTY_SERVED)
            assert prop["type"] in KINDS and prop["dataSensitivity"] in DATA_SENSITIVITY, prop
            assert set(prop["modificationMetadata"]) == METADATA_REQUIRED, prop
            if prop["type"] in ("enumeration", "bool") and prop["name"] != "hs_merged_object_ids":
                # (HubSpot's merged ids are a checkbox enumeration without options: ids, not choices.)
                assert prop["options"], f"{prop['name']}: an enumeration lists its options"
                assert all(OPTION_REQUIRED <= set(option) for option in prop["options"]), prop["options"]
            elif prop["type"] not in ("enumeration", "bool"):
                assert prop["options"] == [], prop
        orders = [prop["displayOrder"] for prop in properties]
        assert orders == sorted(set(orders)), "displayOrder numbers the properties"

    def test_matches_the_client_model(self, crm: Crm) -> None:
        """The catalogue deserializes into hubspot.crm.properties' CollectionResponsePropertyNoPaging."""
        text = crm.get("/crm/v3/properties/contacts").text
        collection = deserialize(text, "CollectionResponsePropertyNoPaging", "properties")
        assert len(collection.results) == 247 and sum(p.calculated for p in collection.results) >= 5

    def test_records_leave_most_unset(self, crm: Crm) -> None:
        """Asked for every property, a record answers each, most of them null (unset), as HubSpot does."""
        names = [p["name"] for p in catalogue(crm, "contacts")]
        response = crm.search_in("contacts", {"properties": names, "limit": 100})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results and all(set(r["properties"]) == set(names) for r in results)
        values = [v for r in results for v in r["properties"].values()]
        assert 0.2 < sum(v is not None for v in values) / len(values) < 0.6, "mostly unset, some set"

    def test_off_by_default(self) -> None:
        """Sandbox() without it keeps the small catalogues (a faster export for most tests)."""
        store = Sandbox(contacts=0, now_ms=T0)._stores["contacts"]
        assert len(store.catalogue) == 34, len(store.catalogue)
