"""Every object type HubSpot's search serves, by every name a pipe may use, through the HTTP
surface: the types added in 0.2.0 (leads, invoices and the rest) exported full and
incrementally, a standard type by its objectTypeId, a custom object by its name, id or fully
qualified name, the 404 that lists every type with its other names, and the scope a 403
names for each type.

The tables below are written from HubSpot's published API descriptions (each type's
`POST /crm/v3/objects/<type>/search` and the `security` it gives) and HubSpot's object
type ID table, independently of the service's own table, so that a wrong entry there fails
here.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from app.object_types import LISTED_CHARS
from sandbox import Fault, Sandbox
from sandbox.portal import PORTAL_ID

from .crm import objects, problem
from .sesam import SesamPipe, assert_in_sync, settle

# name -> (objectTypeId, or None where HubSpot publishes none; the read scopes of its search,
# any one of which is enough)
TYPES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "contacts": ("0-1", ("crm.objects.contacts.read",)),
    "companies": ("0-2", ("crm.objects.companies.read",)),
    "deals": ("0-3", ("crm.objects.deals.read",)),
    "tickets": ("0-5", ("tickets",)),
    "products": ("0-7", ("crm.objects.products.read", "e-commerce")),
    "line_items": ("0-8", ("crm.objects.line_items.read", "e-commerce")),
    "quotes": ("0-14", ("crm.objects.quotes.read", "e-commerce")),
    "calls": ("0-48", ("crm.objects.contacts.read",)),
    "emails": ("0-49", ("crm.objects.contacts.read", "sales-email-read")),
    "meetings": ("0-47", ("crm.objects.contacts.read",)),
    "notes": ("0-46", ("crm.objects.contacts.read",)),
    "tasks": ("0-27", ("crm.objects.contacts.read",)),
    "leads": ("0-136", ("crm.objects.leads.read",)),
    "invoices": ("0-53", ("crm.objects.invoices.read",)),
    "appointments": ("0-421", ("crm.objects.appointments.read",)),
    "carts": ("0-142", ("crm.objects.carts.read",)),
    "commerce_payments": (None, ("crm.objects.commercepayments.read",)),
    "communications": ("0-18", ("crm.objects.contacts.read",)),
    "courses": ("0-410", ("crm.objects.courses.read",)),
    "discounts": ("0-84", ("crm.objects.line_items.read", "e-commerce")),
    "feedback_submissions": ("0-19", ("crm.objects.contacts.read", "crm.objects.feedback_submissions.read")),
    "fees": ("0-85", ("crm.objects.line_items.read", "e-commerce")),
    "goal_targets": ("0-74", ("crm.objects.goals.read",)),
    "listings": ("0-420", ("crm.objects.listings.read",)),
    "orders": ("0-123", ("crm.objects.orders.read",)),
    "partner_clients": (None, ("crm.objects.partner-clients.read",)),
    "partner_services": (None, ("crm.objects.partner-services.read",)),
    "postal_mail": ("0-116", ("crm.objects.contacts.read",)),
    "projects": ("0-970", ("crm.objects.projects.read",)),
    "services": ("0-162", ("crm.objects.services.read",)),
    "subscriptions": ("0-69", ("crm.objects.subscriptions.read",)),
    "taxes": ("0-86", ("crm.objects.line_items.read",)),
    "users": ("0-115", ("crm.objects.users.read",)),
}
NEW = list(TYPES)[list(TYPES).index("leads"):]
WITH_IDS = [name for name, (type_id, _) in TYPES.items() if type_id is not None]
CARS_ID, CARS_FQN = "2-3508482", f"p{PORTAL_ID}_cars"
MISSING_SCOPES = {"status": "error", "category": "MISSING_SCOPES",
                  "message": "This app hasn't been granted all required scopes to make this call."}



class TestNewTypes:
    @pytest.mark.parametrize("kind", NEW)
    def test_full_then_incremental_export(self, service: TestClient, sandbox: Sandbox, kind: str) -> None:
        """Each newer type exports every live record once, in `_updated` order; the next
        run from its offset brings exactly the records created, modified and deleted since
        (before 0.2.0 each of these paths was a 400)."""
        full = objects(service, kind)
        truth = sandbox.live(kind)
        assert truth, f"the sandbox holds no {kind}: the test would prove nothing"
        ids = [e["_id"] for e in full]
        assert sorted(ids, key=int) == sorted(truth, key=int), f"{kind}: the full export is not the live records"
        updates = [e["_updated"] for e in full]
        assert updates == sorted(set(updates)), f"{kind}: not in strictly increasing order"
        assert all("hs_lastmodifieddate" in e["properties"] for e in full), f"{kind}: {full[0]}"

        live = sorted(truth, key=int)
        sandbox.advance(10_000)
        sandbox.modify(live[:1], object_type=kind)
        sandbox.advance(1)
        sandbox.archive(live[1:2], object_type=kind)
        sandbox.advance(1)
        created = sandbox.create(object_type=kind)
        settle(sandbox)
        changed = objects(service, kind, since=full[-1]["_updated"])
        assert {e["_id"]: bool(e.get("_deleted")) for e in changed} == {
            live[0]: False, live[1]: True, created[0]: False}, f"{kind}: {changed}"

    @pytest.mark.parametrize("kind", ["leads", "invoices"])
    @pytest.mark.parametrize("strategy", ["max", "chronological"])
    def test_a_sesam_pipe_stays_in_sync(self, configure: Callable[..., TestClient], sandbox: Sandbox,
                                        kind: str, strategy: str) -> None:
        """An emulated Sesam pipe on leads or invoices, with their contacts, over rounds of
        creates, changes, deletions and restores with search lag, ends holding exactly
        HubSpot's live records."""
        rng = random.Random(f"{kind}-{strategy}")
        sandbox.search_lag_ms = 1500
        service = configure(search_page_size=5)
        pipe = SesamPipe(service, strategy, page_size=4, path=f"/objects/{kind}",
                         modified_property="hs_lastmodifieddate", associations="contacts")
        of = {"object_type": kind}
        for _ in range(5):
            pipe.run()
            live, archived = sorted(sandbox.live(kind), key=int), sorted(sandbox.archived(kind), key=int)
            sandbox.create(rng.randint(1, 3), **of)
            sandbox.modify(rng.sample(live, k=2), **of)
            sandbox.archive(rng.sample(live, k=1), **of)
            if archived:
                sandbox.restore(archived[:1], **of)
            sandbox.advance(rng.choice([0, 1, 900, 3000]))
        settle(sandbox)
        pipe.run()
        assert_in_sync(pipe, sandbox, f"{kind} pipe ({strategy}, {pipe.requests} requests)", kind)
        held = [e for e in pipe.dataset.values() if not e.get("_deleted")]
        assert all("contacts" in e["associations"] for e in held), f"{kind}: associations missing"


    @pytest.mark.parametrize("kind", ["deals", "tickets"])
    def test_merged_deals_and_tickets_arrive_deleted(self, service: TestClient, sandbox: Sandbox,
                                                     kind: str) -> None:
        """HubSpot merges deals and tickets too (its descriptions have their merge
        endpoints): the merged-away record is `_deleted` with `mergedInto`, just before its
        survivor (before, it stayed in the pipe as a live record)."""
        offset = objects(service, kind)[-1]["_updated"]
        survivor, merged = sorted(sandbox.live(kind), key=int)[:2]
        sandbox.advance(10_000)
        sandbox.merge(survivor, merged, object_type=kind)
        settle(sandbox)
        changed = objects(service, kind, since=offset)
        positions = {e["_id"]: i for i, e in enumerate(changed)}
        assert merged in positions, f"{kind}: the merged-away {merged} is not in {changed}"
        gone = changed[positions[merged]]
        assert gone.get("_deleted") and gone.get("mergedInto") == survivor, gone
        assert positions[merged] < positions[survivor], [e["_id"] for e in changed]


class TestNames:
    @pytest.mark.parametrize("kind", WITH_IDS)
    def test_a_standard_type_by_its_object_type_id(self, service: TestClient, kind: str) -> None:
        """`/objects/0-3` is `/objects/deals`: the same entities, for every standard type
        HubSpot gives an objectTypeId (before, a 400)."""
        type_id = TYPES[kind][0]
        assert type_id is not None
        by_name = objects(service, kind, limit="5")
        assert by_name, f"{kind}: nothing exported, the comparison would prove nothing"
        assert objects(service, type_id, limit="5") == by_name, f"{type_id} is not {kind}"

    def test_one_offset_serves_both_names(self, service: TestClient, sandbox: Sandbox) -> None:
        """A pipe may switch from `leads` to `0-136` with its offset: one type, one export."""
        offset = objects(service, "leads")[-1]["_updated"]
        lead = min(sandbox.live("leads"), key=int)
        sandbox.advance(10_000)
        sandbox.modify([lead], object_type="leads")
        settle(sandbox)
        assert [e["_id"] for e in objects(service, "0-136", since=offset)] == [lead]

    def test_a_custom_object_by_name_id_or_qualified_name(self, service: TestClient, sandbox: Sandbox) -> None:
        """A custom object is one type by its name (`cars`, as the 404 lists it; before, a
        400), its objectTypeId and its fully qualified name."""
        by_name = objects(service, "cars")
        assert {e["_id"] for e in by_name} == set(sandbox.live("cars")), "cars by name"
        assert objects(service, CARS_ID) == by_name, "cars by objectTypeId"
        assert objects(service, CARS_FQN) == by_name, "cars by fully qualified name"

    def test_names_as_configured_properties(self, configure: Callable[..., TestClient]) -> None:
        """HUBSPOT_OBJECT_PROPERTIES may name a standard type by its objectTypeId: its
        properties hold for the type under either name."""
        service = configure(object_properties=(("0-136", ("hs_lead_name",)),))
        for name in ("leads", "0-136"):
            entity = objects(service, name, limit="1")[0]
            assert set(entity["properties"]) == {"hs_lead_name", "hs_createdate", "hs_lastmodifieddate",
                                                 "hs_object_id"}, f"{name}: {entity['properties']}"

    @pytest.mark.parametrize("name", ["Contacts", "LEADS", "0-999999", "p1_nothing", "widgets"])
    def test_a_well_formed_unknown_name_is_a_404_listing_every_name(self, service: TestClient, name: str) -> None:
        """A name of HubSpot's forms that the portal does not have (names are matched
        exactly: `Contacts` is not `contacts`) is a 404 listing each type with its other
        names, standard ones with their objectTypeId, in a bounded text."""
        detail = problem(service, f"/objects/{name}", 404)["detail"]
        for shown in ("contacts (0-1)", "deals (0-3)", "leads (0-136)", "invoices (0-53)", "commerce_payments,",
                      f"cars ({CARS_ID}, {CARS_FQN})"):
            assert shown in detail, f"{shown!r} not in the 404: {detail}"
        assert len(detail) < LISTED_CHARS + 200, f"a 404 of {len(detail)} characters"

    def test_an_unknown_object_type_id_is_a_404_even_without_the_schemas_scope(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """`0-…` names only HubSpot's own types, so an unknown one is a 404 listing the
        standard types whether or not the token may read the custom objects' schemas, not
        a 502 asking for a scope the name does not need."""
        sandbox.scopes -= {"crm.schemas.custom.read"}
        detail = problem(service, "/objects/0-999", 404)["detail"]
        assert "contacts (0-1)" in detail and "leads (0-136)" in detail, detail

    def test_associations_by_object_type_id(self, service: TestClient, sandbox: Sandbox) -> None:
        """`associations=` takes every name `objectType` does: by objectTypeId the same
        associations, under the type's name, as by name; a lead carries its contacts."""
        by_name = objects(service, "deals", associations="contacts,companies", limit="5")
        assert objects(service, "deals", associations="0-1,0-2", limit="5") == by_name
        leads = objects(service, "0-136", associations="0-1", limit="5")
        assert leads == objects(service, "leads", associations="contacts", limit="5")
        for lead in leads:
            truth = [to_id for to_id, _ in sandbox.associations("leads", lead["id"], "contacts")]
            assert [a["id"] for a in lead["associations"]["contacts"]] == truth, lead
        assert any(lead["associations"]["contacts"] for lead in leads), "no lead has a contact"
        detail = problem(service, "/objects/deals?associations=contacts,0-999", 404)["detail"]
        assert detail.startswith("query parameter 'associations': '0-999'"), detail


class TestScopes:
    @pytest.mark.parametrize("kind", list(TYPES))
    def test_the_403_names_the_scope_hubspot_asks_for(self, service: TestClient, sandbox: Sandbox,
                                                     kind: str) -> None:
        """A token without any of a type's read scopes gets a 502 that names them, as
        HubSpot's 403 does."""
        sandbox.scopes -= set(TYPES[kind][1])
        detail = problem(service, f"/objects/{kind}", 502)["detail"]
        assert all(scope in detail for scope in TYPES[kind][1]), f"{kind}: {detail}"

    @pytest.mark.parametrize("kind", list(TYPES))
    def test_the_403_names_the_types_scope_when_hubspot_does_not(self, service: TestClient,
                                                                 sandbox: Sandbox, kind: str) -> None:
        """A 403 without the scopes in it (HubSpot's answers have varied) still names the
        type's own read scope(s), from HubSpot's description of the type."""
        sandbox.inject(Fault("any", status=403, body=MISSING_SCOPES, times=None))
        detail = problem(service, f"/objects/{kind}", 502)["detail"]
        assert f"needs the {' or '.join(TYPES[kind][1])} scope" in detail, f"{kind}: {detail}"
