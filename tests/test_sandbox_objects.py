"""Pins the sandbox's CRM beyond contacts: every object type HubSpot's search serves, a custom
object found through /crm/v3/schemas, and HubSpot's answer to a type the portal lacks.

The service exports every type with one engine, so each type must behave as contacts do
(list, search with lag, ties and the cap, archived records, single reads) and differ only
where HubSpot's types differ (the modification property, the creation property, merges).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from sandbox import Fault, Sandbox

from .crm import ROOT, Crm, modified_property, serve, since

NOW = 1_700_000_000_000
STANDARD = ("contacts", "companies", "deals", "tickets", "products", "line_items", "quotes",
            "calls", "emails", "meetings", "notes", "tasks",
            # HubSpot's newer types (0.2.0)
            "leads", "invoices", "appointments", "carts", "commerce_payments", "communications",
            "courses", "discounts", "feedback_submissions", "fees", "goal_targets", "listings",
            "orders", "partner_clients", "partner_services", "postal_mail", "projects", "services",
            "subscriptions", "taxes", "users")
CARS_ID = "2-3508482"


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    return Sandbox(contacts=400, now_ms=NOW)


@pytest.fixture(name="crm")
def _crm(sandbox: Sandbox) -> Iterator[Crm]:
    with serve(sandbox) as crm:
        yield crm


class TestEveryType:
    def test_the_portal_serves_every_type(self, sandbox: Sandbox) -> None:
        """The portal holds every standard type search serves plus a custom object, each seeded
        with live and archived records in proportion to the contacts asked for."""
        assert sandbox.object_types == [*STANDARD, "cars"], sandbox.object_types
        assert len(sandbox.live("companies")) + len(sandbox.archived("companies")) == 40, "companies: N/10"
        assert len(sandbox.live("deals")) + len(sandbox.archived("deals")) == 80, "deals: N/5"
        assert sandbox.archived("deals"), "deals include archived ones"

    def test_counts_can_be_given_per_type(self) -> None:
        """objects={type: count} overrides the share of contacts, for any type."""
        sandbox = Sandbox(contacts=10, objects={"deals": 1234, "cars": 0}, archived_fraction=0)
        assert (len(sandbox.live()), len(sandbox.live("deals")), len(sandbox.live("cars"))) == (10, 1234, 0)
        with pytest.raises(ValueError, match="widgets"):
            Sandbox(contacts=10, objects={"widgets": 3})

    @pytest.mark.parametrize("object_type", [*STANDARD, "cars"])
    def test_list_search_read_and_catalogue(self, crm: Crm, sandbox: Sandbox, object_type: str) -> None:
        """Each type answers list, search (on its own modification property), single read and
        its property catalogue, with exactly its live records and the type's own properties."""
        live = sandbox.live(object_type)
        assert crm.list_ids(object_type) == sorted(live, key=int), f"{object_type}: list shows every live record"
        found = crm.search_ids(object_type, since(object_type))
        assert sorted(found, key=int) == sorted(live, key=int), f"{object_type}: search finds every live record"
        times = [live[cid] for cid in found]
        assert times == sorted(times), f"{object_type}: search sorts by {modified_property(object_type)}"

        catalogue = crm.get(f"/crm/v3/properties/{object_type}")
        assert catalogue.status_code == 200, catalogue.text
        names = {entry["name"] for entry in catalogue.json()["results"]}
        assert {modified_property(object_type), "hs_object_id"} <= names, f"{object_type}: {sorted(names)}"
        if object_type == "contacts":
            assert "hs_lastmodifieddate" not in names, "contacts are modified on lastmodifieddate only"

        first = found[0]
        record = crm.get(f"/crm/v3/objects/{object_type}/{first}")
        assert record.status_code == 200, record.text
        body = record.json()
        assert body["id"] == first and body["properties"]["hs_object_id"] == first, body
        assert set(body["properties"]) <= names, f"{object_type}: default properties come from the catalogue"
        assert body["properties"][modified_property(object_type)] == sandbox.record(first, object_type)[
            "properties"][modified_property(object_type)], body

    def test_modification_and_creation_properties_are_hubspots(self, sandbox: Sandbox) -> None:
        """contacts: createdate/lastmodifieddate; companies, deals, tickets: createdate and
        hs_lastmodifieddate; activities, quotes and custom objects: hs_createdate."""
        expected = {"contacts": ("createdate", "lastmodifieddate"), "companies": ("createdate", "hs_lastmodifieddate"),
                    "tickets": ("createdate", "hs_lastmodifieddate"), "notes": ("hs_createdate", "hs_lastmodifieddate"),
                    "quotes": ("hs_createdate", "hs_lastmodifieddate"),
                    "cars": ("hs_createdate", "hs_lastmodifieddate")}
        for object_type, (created, modified) in expected.items():
            cid = next(iter(sandbox.live(object_type)))
            properties = sandbox.record(cid, object_type)["properties"]
            assert properties[created] and properties[modified], f"{object_type}: {properties}"

    def test_ids_belong_to_their_type(self, crm: Crm, sandbox: Sandbox) -> None:
        """A company's id is not a contact's: reading it as a contact is HubSpot's 404."""
        company = next(iter(sandbox.live("companies")))
        assert company not in sandbox.live() and company not in sandbox.archived(), "ids are per type"
        response = crm.get(f"/crm/v3/objects/contacts/{company}")
        assert response.status_code == 404 and response.json()["category"] == "OBJECT_NOT_FOUND", response.text

    def test_single_read_of_an_archived_record(self, crm: Crm, sandbox: Sandbox) -> None:
        """A single read finds an archived record only with archived=true, as HubSpot does."""
        deal = next(iter(sandbox.archived("deals")))
        assert crm.get(f"/crm/v3/objects/deals/{deal}").status_code == 404
        response = crm.get(f"/crm/v3/objects/deals/{deal}", archived="true")
        assert response.status_code == 200 and response.json()["archived"] is True, response.text


class TestCustomObject:
    def test_schemas_list_the_custom_object(self, crm: Crm) -> None:
        """/crm/v3/schemas describes the custom object in HubSpot's shape."""
        response = crm.get("/crm/v3/schemas")
        assert response.status_code == 200, response.text
        (schema,) = response.json()["results"]
        assert schema["objectTypeId"] == CARS_ID and schema["name"] == "cars", schema
        assert schema["fullyQualifiedName"].startswith("p") and schema["fullyQualifiedName"].endswith("_cars"), schema
        assert schema["labels"] == {"singular": "Car", "plural": "Cars"}, schema["labels"]
        by_name = {entry["name"]: entry for entry in schema["properties"]}
        assert {"hs_lastmodifieddate", "hs_object_id", schema["primaryDisplayProperty"]} <= by_name.keys(), by_name
        assert "hubspotDefined" not in by_name[schema["primaryDisplayProperty"]], "the portal defines its own"
        assert by_name["hs_lastmodifieddate"]["hubspotDefined"] is True, "HubSpot defines hs_ properties"

    def test_served_by_id_and_by_fully_qualified_name(self, crm: Crm, sandbox: Sandbox) -> None:
        """The custom object answers at its objectTypeId, its fully qualified name and its name alike."""
        name = crm.get("/crm/v3/schemas").json()["results"][0]["fullyQualifiedName"]
        expected = sorted(sandbox.live("cars"), key=int)
        for alias in (CARS_ID, name, "cars"):
            assert crm.list_ids(alias) == expected, f"list at {alias}"
            assert sorted(crm.search_ids(alias, since("cars")), key=int) == expected, f"search at {alias}"
        assert sandbox.live(CARS_ID) == sandbox.live(name) == sandbox.live("cars"), "the Python API takes every name"


class TestUnknownType:
    @pytest.mark.parametrize("method,path", [
        ("GET", "/crm/v3/objects/widgets"), ("POST", "/crm/v3/objects/widgets/search"),
        ("GET", "/crm/v3/objects/widgets/101"), ("GET", "/crm/v3/properties/widgets"),
        ("GET", "/crm/v3/objects/2-999")])
    def test_hubspots_400(self, crm: Crm, method: str, path: str) -> None:
        """A type the portal lacks is HubSpot's 400 'Unable to infer object type from: …'."""
        response = crm.session.request(method, crm.url + path, json={} if method == "POST" else None, timeout=10)
        body = response.json()
        assert response.status_code == 400 and body["category"] == "VALIDATION_ERROR", response.text
        assert body["message"] == f"Unable to infer object type from: {path.split('/')[4]}", body

    def test_python_api_names_the_types_it_has(self, sandbox: Sandbox) -> None:
        """The Python API's KeyError for an unknown type lists the types there are."""
        with pytest.raises(KeyError, match="companies"):
            sandbox.live("widgets")


class TestSameBehaviourAsContacts:
    def test_writes_reach_search_after_the_lag(self, crm: Crm, sandbox: Sandbox) -> None:
        """search_lag_ms applies to every type: a modified ticket shows in search only once the lag passed."""
        sandbox.search_lag_ms = 5_000
        ticket = next(iter(sandbox.live("tickets")))
        sandbox.advance(1_000)
        sandbox.modify([ticket], {"subject": "Renamed"}, object_type="tickets")
        assert ticket not in crm.search_ids("tickets", since("tickets", sandbox.now_ms())), "not yet"
        sandbox.advance(5_000)
        assert crm.search_ids("tickets", since("tickets", sandbox.now_ms() - 5_000)) == [ticket], "after the lag"

    def test_archived_records_list_and_leave_search(self, crm: Crm, sandbox: Sandbox) -> None:
        """Archiving a note removes it from list and search and lists it with archived=true."""
        note = next(iter(sandbox.live("notes")))
        sandbox.archive([note], object_type="notes")
        assert note not in crm.list_ids("notes") and note not in crm.search_ids("notes", since("notes"))
        assert note in crm.list_ids("notes", archived="true"), "listed as archived"
        sandbox.restore([note], object_type="notes")
        assert note in crm.list_ids("notes"), "restored"

    def test_more_than_10000_deals_on_one_millisecond(self, crm: Crm) -> None:
        """10,050 deals created on one ms are all found by search on that ms, but no query
        pages past 10,000 results: the cap applies to every type."""
        sandbox = Sandbox(contacts=0, objects={"deals": 0}, now_ms=NOW)
        with serve(sandbox) as big:
            ids = sandbox.create(10_050, object_type="deals")
            same_ms = {"filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": str(NOW)}]}]}
            first = big.search_in("deals", {**same_ms, "limit": 200})
            assert first.status_code == 200 and first.json()["total"] == 10_050, first.text[:300]
            last = big.search_in("deals", {**same_ms, "limit": 200, "after": 9_800})
            assert last.status_code == 200 and len(last.json()["results"]) == 200, last.text[:300]
            beyond = big.search_in("deals", {**same_ms, "limit": 200, "after": 9_900})
            assert beyond.status_code == 400 and "10000" in beyond.json()["message"], beyond.text
            by_id = {"filterGroups": [{"filters": [
                {"propertyName": "hs_object_id", "operator": "GT", "value": ids[9_999]}]}]}
            assert big.search_ids("deals", by_id) == ids[10_000:], "a keyset on hs_object_id reaches the rest"

    def test_ties_are_shuffled_for_every_type(self, crm: Crm, sandbox: Sandbox) -> None:
        """Tasks created on one millisecond come back in a shuffled order, and with
        reorder_ties_per_request in a new order on every request, as contacts do."""
        ids = sandbox.create(50, object_type="tasks")
        same_ms = {"filterGroups": [{"filters": [
            {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": str(sandbox.now_ms())}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
        first = crm.search_ids("tasks", same_ms)
        assert sorted(first, key=int) == ids and first != ids, "all of them, not in id order"
        assert crm.search_ids("tasks", same_ms) == first, "the same order while the knob is off"
        sandbox.reorder_ties_per_request = True
        assert crm.search_ids("tasks", same_ms) != first, "a new order on another request"

    def test_faults_hit_every_type(self, crm: Crm, sandbox: Sandbox) -> None:
        """A fault on an endpoint hits it whatever the object type."""
        sandbox.inject(Fault("search", status=502))
        assert crm.search_in("companies", since("companies")).status_code == 502
        assert crm.search_in("companies", since("companies")).status_code == 200


class TestMerges:
    def test_companies_merge_like_contacts(self, crm: Crm, sandbox: Sandbox) -> None:
        """Merging a company: the secondary vanishes without being archived, a read of it answers
        with the survivor, and the survivor's hs_merged_object_ids lists it."""
        primary, secondary = list(sandbox.live("companies"))[:2]
        sandbox.merge(primary, secondary, object_type="companies")
        assert secondary not in crm.list_ids("companies"), "not listed"
        assert secondary not in crm.list_ids("companies", archived="true"), "not archived either"
        assert secondary not in crm.search_ids("companies", since("companies")), "gone from search"
        read = crm.get(f"/crm/v3/objects/companies/{secondary}", properties="hs_merged_object_ids")
        assert read.status_code == 200 and read.json()["id"] == primary, read.text
        assert read.json()["properties"]["hs_merged_object_ids"] == secondary, read.json()
        assert sandbox.merged("companies") == {primary: [secondary]}

    def test_other_types_do_not_merge(self, crm: Crm, sandbox: Sandbox) -> None:
        """HubSpot merges contacts, companies, deals and tickets only (its descriptions have a
        merge endpoint for these); the admin surface says so with a 400."""
        first, second = list(sandbox.live("products"))[:2]
        response = crm.admin("POST", "merge", {"type": "products", "primary": first, "secondary": second})
        assert response.status_code == 400 and "tickets" in response.json()["message"], response.text


class TestAdminSurface:
    def test_record_changes_take_a_type(self, crm: Crm, sandbox: Sandbox) -> None:
        """The admin surface creates, modifies, archives and reports the truth of any type via "type"."""
        created = crm.admin("POST", "objects", {"type": "tickets", "count": 2})
        assert created.status_code == 200, created.text
        ids = created.json()["ids"]
        assert set(ids) <= set(sandbox.live("tickets")) and not set(ids) & set(sandbox.live()), ids
        assert crm.admin("POST", "archive", {"type": "tickets", "ids": ids[:1]}).status_code == 204
        truth = crm.admin("GET", "truth?type=tickets").json()
        assert ids[0] in truth["archived"] and ids[1] in truth["live"], truth.keys()
        assert crm.admin("GET", "truth").json()["live"] == sandbox.live(), "contacts by default"


class TestScopes:
    # A type's read scopes, any one of which grants it (as HubSpot's descriptions give them).
    REQUIRED = {"contacts": "crm.objects.contacts.read", "companies": "crm.objects.companies.read",
                "deals": "crm.objects.deals.read", "tickets": "tickets",
                "products": "crm.objects.products.read e-commerce",
                "line_items": "crm.objects.line_items.read e-commerce",
                "quotes": "crm.objects.quotes.read e-commerce", "calls": "crm.objects.contacts.read",
                "emails": "crm.objects.contacts.read sales-email-read",
                "notes": "crm.objects.contacts.read", "leads": "crm.objects.leads.read",
                "invoices": "crm.objects.invoices.read", "0-162": "crm.objects.services.read",
                CARS_ID: "crm.objects.custom.read"}

    @staticmethod
    def assert_missing(response: requests.Response, scope: str) -> None:
        assert response.status_code == 403, response.text
        body = response.json()
        assert body["category"] == "MISSING_SCOPES" and body["status"] == "error", body
        named = [error["context"]["requiredGranularScopes"] for error in body["errors"]]
        assert scope.split() in named, f"the 403 does not name {scope} in errors[].context: {body}"

    def test_all_read_scopes_by_default(self, crm: Crm) -> None:
        """The default token reads every type, the schemas and associations."""
        for object_type in [*STANDARD, CARS_ID]:
            assert crm.get(f"/crm/v3/objects/{object_type}").status_code == 200, object_type
        assert crm.get("/crm/v3/schemas").status_code == 200

    @pytest.mark.parametrize("object_type,scope", REQUIRED.items())
    def test_a_missing_scope_is_hubspots_403(self, crm: Crm, sandbox: Sandbox, object_type: str, scope: str) -> None:
        """Without its scopes a type's list, search, read and catalogue are 403 MISSING_SCOPES naming
        them, while the other types stay readable."""
        sandbox.scopes.difference_update(scope.split())
        for response in (crm.get(f"/crm/v3/objects/{object_type}"), crm.search_in(object_type, {}),
                         crm.get(f"/crm/v3/objects/{object_type}/101"), crm.get(f"/crm/v3/properties/{object_type}")):
            self.assert_missing(response, scope)
        still = "companies" if "crm.objects.companies.read" not in scope else "contacts"
        assert crm.get(f"/crm/v3/objects/{still}").status_code == 200, f"{still} needs no {scope}"

    def test_schemas_and_associations_need_their_scopes(self, crm: Crm, sandbox: Sandbox) -> None:
        """/crm/v3/schemas needs crm.schemas.custom.read; an association read needs the scopes of
        both its types."""
        assert crm.admin("POST", "config", {"scopes": ["crm.objects.contacts.read"]}).status_code == 200
        self.assert_missing(crm.get("/crm/v3/schemas"), "crm.schemas.custom.read")
        response = crm.post("/crm/v4/associations/contacts/companies/batch/read", {"inputs": [{"id": "101"}]})
        self.assert_missing(response, "crm.objects.companies.read")
        assert crm.get("/crm/v3/objects/contacts").status_code == 200, "contacts stay readable"


def test_summary_says_what_the_portal_holds() -> None:
    """summary() (the quick start's first line) counts every type's records and deleted ones,
    the same before and after a type is first used."""
    sandbox = Sandbox(contacts=500)
    before = sandbox.summary()
    expected = ", ".join(f"{len(sandbox.live(name)) + len(sandbox.archived(name))} {name} "
                         f"({len(sandbox.archived(name))} deleted)" for name in sandbox.object_types)
    assert before == expected == sandbox.summary(), before
    assert before.startswith("500 contacts (10 deleted), 50 companies (1 deleted)"), before


def test_cli_sizes_each_type() -> None:
    """`python -m sandbox --objects deals=7` serves 7 deals and says what it holds per type."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--contacts", "20", "--objects", "deals=7"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert "20 contacts" in line and "7 deals" in line and "cars" in line, line
        url = next(word for word in line.split() if word.startswith("http://127.0.0.1:"))
        with requests.Session() as session:
            session.headers["Authorization"] = "Bearer sandbox-token"
            deals = session.get(f"{url}/crm/v3/objects/deals", params={"limit": 100}, timeout=5)
        assert len(deals.json()["results"]) == 7, deals.text[:300]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
