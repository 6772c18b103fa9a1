"""GET /objects/{objectType} through the HTTP surface: the same export as /get_contacts for
every CRM object type, with associations, and the answers a pipe gets when it names a type
or an association the portal lacks."""

from __future__ import annotations

import threading

import orjson
import pytest
from starlette.testclient import TestClient

from app.sync.workers import REQUEST_THREADS
from sandbox import Sandbox, SandboxServer
from sandbox.associations import PAGE_SIZE as ASSOCIATION_PAGE

from .crm import Crm, modified_property, objects, problem
from .sesam import T0, settle


class TestContacts:
    def test_objects_contacts_is_get_contacts(self, service: TestClient, sandbox: Sandbox) -> None:
        """/objects/contacts is the tutorial's /get_contacts: the same entities in the same
        order, full and incremental (deletions and merges included), so either path can
        take the other's offset."""
        full = objects(service, "contacts")
        assert full == orjson.loads(service.get("/get_contacts").content), "full exports differ"
        offset = full[-1]["_updated"]
        live = sorted(sandbox.live(), key=int)
        sandbox.advance(10_000)
        sandbox.modify(live[:3])
        sandbox.archive(live[3:4])
        sandbox.merge(live[4], live[5])
        settle(sandbox)
        changed = objects(service, "contacts", since=offset)
        assert changed == orjson.loads(service.get("/get_contacts", params={"since": offset}).content)
        assert {e["_id"] for e in changed} >= {*live[:4], live[5]}, changed


class TestRefusals:
    @pytest.mark.parametrize("url", ["/objects/_contacts", "/objects/2-", "/objects/0-x", "/objects/con-tacts",
                                     "/objects/" + "c" * 101,
                                     "/objects/deals?associations=contacts,,companies",
                                     "/objects/deals?associations=" + ",".join(["contacts"] * 13)])
    def test_malformed_names_are_a_400(self, service: TestClient, sandbox: Sandbox, url: str) -> None:
        """A type or an association list the spec's patterns refuse is a 400 that names
        the parameter, before HubSpot is asked anything."""
        before = len(sandbox.request_log)
        body = problem(service, url, 400)
        assert "objectType" in body["detail"] or "associations" in body["detail"], body
        assert len(sandbox.request_log) == before, "HubSpot was called for a malformed request"

    def test_head_is_refused_without_calling_hubspot(self, service: TestClient, sandbox: Sandbox) -> None:
        """HEAD on any export path is a 405 with Allow: GET: it would cost an export."""
        before = len(sandbox.request_log)
        response = service.head("/objects/deals")
        assert response.status_code == 405 and response.headers["allow"] == "GET", response.headers
        assert len(sandbox.request_log) == before

    def test_every_type_shares_one_metric_label(self, service: TestClient) -> None:
        """Requests to /objects/... count under one path label, so that naming types cannot
        grow the metrics without end."""
        service.get("/objects/contacts", params={"limit": 1})
        service.get("/objects/-Bad")
        service.get("/objects/Bad")
        metrics = service.get("/metrics").text
        assert 'path="/objects/{objectType}",status="200"' in metrics, metrics
        assert 'path="/objects/{objectType}",status="400"' in metrics, metrics
        assert 'path="/objects/{objectType}",status="404"' in metrics, metrics


STANDARD = ["contacts", "companies", "deals", "tickets", "products", "line_items", "quotes",
            "calls", "emails", "meetings", "notes", "tasks"]


class TestEveryType:
    @pytest.mark.parametrize("kind", STANDARD)
    def test_a_full_export_is_every_live_record_in_order(self, service: TestClient, sandbox: Sandbox,
                                                         kind: str) -> None:
        """Every standard type exports each of its live records once, in strictly increasing
        `_updated` order built from the type's own modification property."""
        entities = objects(service, kind)
        ids = [e["_id"] for e in entities]
        truth = sandbox.live(kind)
        assert truth, f"the sandbox holds no {kind}: the test would prove nothing"
        assert len(ids) == len(set(ids)) and set(ids) == set(truth), (
            f"{kind}: missing {sorted(set(truth) - set(ids))[:5]}, extra {sorted(set(ids) - set(truth))[:5]}")
        updates = [e["_updated"] for e in entities]
        assert updates == sorted(set(updates)), f"{kind}: not strictly increasing"
        prop = modified_property(kind)
        assert all(prop in e["properties"] for e in entities), f"{kind}: {prop} missing"

    def test_every_type_sends_its_searches_on_one_pool_of_threads(self, service: TestClient) -> None:
        """Exporting every type does not leave a pool of idle threads per type behind: the
        exports of all types send their searches on one pool of at most REQUEST_THREADS."""
        before = set(threading.enumerate())  # other tests' services may have left theirs
        for kind in STANDARD:
            objects(service, kind)
        pages = [thread.name for thread in set(threading.enumerate()) - before
                 if thread.name.startswith("hubspot-request")]
        assert 0 < len(pages) <= REQUEST_THREADS, (
            f"{len(pages)} search threads after exporting {len(STANDARD)} types (most {REQUEST_THREADS})")
        # A pool numbers its threads from 0: a name twice means a pool per type.
        assert len(pages) == len(set(pages)), f"search threads of several pools: {sorted(pages)}"

    @pytest.mark.parametrize("kind", ["deals", "tickets", "notes"])
    def test_incremental_exports_carry_changes_and_deletions(self, service: TestClient,
                                                             sandbox: Sandbox, kind: str) -> None:
        """After a full run, the next one carries exactly what changed in that type: the
        modified records live, the deleted ones `_deleted`; other types' changes stay out."""
        offset = objects(service, kind)[-1]["_updated"]
        live = sorted(sandbox.live(kind), key=int)
        sandbox.advance(10_000)
        sandbox.modify(live[:4], object_type=kind)
        sandbox.archive(live[4:6], object_type=kind)
        sandbox.modify(sorted(sandbox.live("contacts"), key=int)[:3])
        settle(sandbox)
        changed = objects(service, kind, since=offset)
        kinds = {e["_id"]: bool(e.get("_deleted")) for e in changed}
        assert kinds == {**dict.fromkeys(live[:4], False), **dict.fromkeys(live[4:6], True)}, kinds

    def test_merged_companies_arrive_deleted_before_their_survivor(self, service: TestClient,
                                                                  sandbox: Sandbox) -> None:
        """HubSpot merges companies too: the merged-away company is `_deleted` with
        `mergedInto`, just before its survivor."""
        offset = objects(service, "companies")[-1]["_updated"]
        survivor, merged = sorted(sandbox.live("companies"), key=int)[:2]
        sandbox.advance(10_000)
        sandbox.merge(survivor, merged, object_type="companies")
        settle(sandbox)
        changed = objects(service, "companies", since=offset)
        positions = {e["_id"]: i for i, e in enumerate(changed)}
        gone = changed[positions[merged]]
        assert gone.get("_deleted") and gone.get("mergedInto") == survivor, gone
        assert positions[merged] < positions[survivor], [e["_id"] for e in changed]

    def test_a_custom_object_by_id_or_qualified_name(self, service: TestClient, sandbox: Sandbox,
                                                     sandbox_server: SandboxServer) -> None:
        """A custom object is exported by its objectTypeId and by its fully qualified name
        (as HubSpot's schemas list them), the same records either way."""
        (schema,) = custom_schemas(sandbox_server, sandbox)
        by_id = objects(service, schema["objectTypeId"])
        by_name = objects(service, schema["fullyQualifiedName"])
        assert by_id == by_name and {e["_id"] for e in by_id} == set(sandbox.live(schema["name"])), (
            len(by_id), len(by_name))

    def test_an_unknown_type_is_a_404_listing_the_portals_types(
            self, service: TestClient, sandbox: Sandbox, sandbox_server: SandboxServer) -> None:
        """A custom object the portal does not have is a 404 problem that lists every type
        it has, custom ones with their ids."""
        (schema,) = custom_schemas(sandbox_server, sandbox)
        body = problem(service, "/objects/2-1", 404)
        assert body["title"] == "Unknown object type", body
        for name in [*STANDARD, schema["objectTypeId"], schema["fullyQualifiedName"]]:
            assert name in body["detail"], f"{name} is not listed: {body['detail']}"

    def test_an_unknown_association_type_is_a_404(self, service: TestClient) -> None:
        """Asking for associations with a type the portal lacks is a 404 naming the
        parameter and the type, as for an unknown objectType."""
        body = problem(service, "/objects/deals?associations=contacts,2-1", 404)
        assert "associations" in body["detail"] and "2-1" in body["detail"], body


def custom_schemas(server: SandboxServer, sandbox: Sandbox) -> list[dict]:
    """The portal's custom object schemas, as HubSpot's schemas API lists them."""
    answer = Crm(server.url, sandbox.token).get("/crm/v3/schemas")
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


class TestAssociations:
    @pytest.fixture(name="sandbox")
    def _sandbox(self) -> Sandbox:
        """A portal big enough for a company with more contacts than one v4 page (its
        biggest company holds half of them)."""
        return Sandbox(contacts=1200, seed=7, now_ms=T0, custom_properties=2)

    def test_every_entity_carries_all_its_associations(self, service: TestClient,
                                                      sandbox: Sandbox) -> None:
        """With `associations`, every live company carries all its associated contacts and
        deals, as HubSpot holds them (ids and association types, labels included), also the
        companies with more associations than one page of HubSpot's answer."""
        entities = objects(service, "companies", associations="contacts,deals")
        assert entities, "no companies"
        for kind in ("contacts", "deals"):
            for entity in entities:
                truth = sorted(sandbox.associations("companies", entity["id"], kind), key=lambda a: int(a[0]))
                got = [(a["id"], a["types"]) for a in entity["associations"][kind]]
                assert [i for i, _ in got] == [str(i) for i, _ in truth], (
                    f"company {entity['id']} {kind}: {[i for i, _ in got][:10]} vs truth {[i for i, _ in truth][:10]}")
                assert [t for _, t in got] == [list(t) for _, t in truth], f"company {entity['id']} {kind} types"
        sizes = [len(e["associations"][kind]) for e in entities for kind in ("contacts", "deals")]
        assert max(sizes) > ASSOCIATION_PAGE and min(sizes) == 0, (
            f"the portal must hold a company with more than a page of contacts and one without "
            f"deals or contacts (HubSpot's 207): {max(sizes)}, {min(sizes)}")

    def test_association_reads_cost_a_call_per_thousand_records(self, service: TestClient,
                                                                sandbox: Sandbox) -> None:
        """Association reads cost one v4 call per 1,000 records per type, plus one per
        extra page of a record with many."""
        sandbox.reset_counters()
        entities = objects(service, "companies", associations="contacts")
        extra_pages = sum(max(0, -(-len(e["associations"]["contacts"]) // ASSOCIATION_PAGE) - 1)
                          for e in entities)
        calls = [r for r in sandbox.request_log if "/crm/v4/associations/" in r["path"]]
        assert len(calls) <= -(-len(entities) // 1000) + extra_pages, (
            f"{len(calls)} association calls for {len(entities)} companies and {extra_pages} extra pages")

    def test_a_changed_association_comes_with_the_records_next_change(self, service: TestClient,
                                                                     sandbox: Sandbox) -> None:
        """Associating does not move a record's modification time (as in HubSpot), so an
        incremental run does not carry it; the record's next change carries it."""
        offset = objects(service, "deals")[-1]["_updated"]
        deal = sorted(sandbox.live("deals"), key=int)[0]
        contact = next(c for c in sorted(sandbox.live("contacts"), key=int)
                       if c not in {str(i) for i, _ in sandbox.associations("deals", deal, "contacts")})
        sandbox.advance(10_000)
        sandbox.associate("deals", deal, "contacts", contact)
        settle(sandbox)
        assert not objects(service, "deals", since=offset, associations="contacts"), \
            "an association change alone moved the deal"
        sandbox.modify([deal], object_type="deals")
        settle(sandbox)
        (entity,) = objects(service, "deals", since=offset, associations="contacts")
        assert contact in {a["id"] for a in entity["associations"]["contacts"]}, entity["associations"]


class TestScopes:
    def test_a_missing_scope_is_named(self, configure, sandbox: Sandbox) -> None:
        """A token without a type's read scope gets a 502 problem that names the scope
        HubSpot wants for that type."""
        sandbox.scopes = set(sandbox.scopes) - {"tickets"}
        body = problem(configure(), "/objects/tickets", 502)
        assert body["title"] == "HubSpot access token lacks a scope" and "tickets" in body["detail"], body
