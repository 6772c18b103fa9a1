"""Reference data through the HTTP surface: owners (/owners, with `since`), pipelines and
their stages (/pipelines/{objectType}[/stages]) and property definitions
(/properties/{objectType}), as a Sesam pipe reads them, against the sandbox."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.hubspot.answers import MAX_ID, owner_page, pipelines, property_definitions, property_groups
from app.object_types import standard_types
from app.sync import parse_since
from sandbox import Fault, Sandbox
from sandbox.reference import OWNERS_SCOPE, RENEWALS

from .sesam import SETTLE_SECONDS, SesamPipe, settle
from .test_untrusted_answers import ANSWERS, PROPERTY_RUNS, VALUES, value_or_hubspot_error

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STAGES = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                  "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"]


def entities(service: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = service.get(path, params=params)
    assert response.status_code == 200, f"{path} {params}: {response.status_code} {response.text[:300]}"
    found = orjson.loads(response.content)
    assert isinstance(found, list), f"{path}: not a JSON array"
    return found


def problem(service: TestClient, path: str, status: int, **params: Any) -> dict[str, Any]:
    response = service.get(path, params=params)
    assert response.status_code == status, f"{path}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    return body


def assert_in_order(found: list[dict[str, Any]], context: str) -> None:
    updates = [entity["_updated"] for entity in found]
    assert all(isinstance(u, str) for u in updates), f"{context}: an _updated is no string"
    assert updates == sorted(set(updates)), f"{context}: _updated not strictly increasing: {updates}"
    ids = [entity["_id"] for entity in found]
    assert len(ids) == len(set(ids)), f"{context}: an _id twice: {ids}"


def held(pipe: SesamPipe) -> set[str]:
    """The ids a pipe holds as live (not deleted) entities."""
    return {key for key, entity in pipe.dataset.items() if not entity.get("_deleted")}


def full_run(pipe: SesamPipe) -> int:
    """A run of a pipe without supports_since: no `since`, and what the run does not return
    counts as deleted (Sesam's deletion tracking)."""
    pipe.reset()
    return pipe.run()


class TestOwners:
    def test_every_owner_with_teams_deactivated_ones_deleted(self, service: TestClient,
                                                              sandbox: Sandbox) -> None:
        """A full export holds every active owner, with names, e-mail and teams, and every
        deactivated one as a _deleted entity that keeps its fields; in strictly increasing
        _updated order, each _updated one `since` accepts back."""
        settle(sandbox)
        found = entities(service, "/owners")
        assert_in_order(found, "/owners")
        active, gone = sandbox.reference.owners(), sandbox.reference.owners(archived=True)
        assert len(active) >= 8 and len(gone) == 2, "the sandbox's owners are not as documented"
        by_id = {entity["_id"]: entity for entity in found}
        assert set(by_id) == set(active) | set(gone), f"owners missing or extra: {sorted(by_id)}"
        for owner_id, owner in active.items():
            entity = by_id[owner_id]
            assert not entity.get("_deleted"), f"active owner {owner_id} sent as deleted"
            assert (entity["email"], entity["firstName"], entity["teams"]) == (
                owner["email"], owner["firstName"], owner["teams"]), entity
        for owner_id, owner in gone.items():
            entity = by_id[owner_id]
            assert entity.get("_deleted") is True, f"deactivated owner {owner_id} not _deleted: {entity}"
            assert entity["email"] == owner["email"] and entity["lastName"] == owner["lastName"], (
                f"a deactivated owner lost its fields: {entity}")
        assert any(len(entity.get("teams", [])) > 1 for entity in found), "no owner in two teams"
        for entity in found:
            parse_since(entity["_updated"])

    def test_since_returns_changes_and_every_deactivation(self, service: TestClient,
                                                           sandbox: Sandbox) -> None:
        """After an offset, an export returns the owners changed or added since, and every
        deactivated owner, the one just deactivated included, although deactivating it did
        not move its updatedAt; owners not changed are not sent again."""
        settle(sandbox)
        offset = entities(service, "/owners")[-1]["_updated"]
        sandbox.advance(60_000)
        reference = sandbox.reference
        reference.deactivation_moves_updated_at = False
        reference.update_owner("61000101", lastName="Haugen-Berg")
        reference.deactivate_owner("61000102")
        added = reference.add_owner("Ada", "Eze")
        settle(sandbox)
        found = entities(service, "/owners", since=offset)
        assert_in_order(found, f"/owners?since={offset}")
        assert all(entity["_updated"] > offset for entity in found), "an owner at or before since"
        by_id = {entity["_id"]: entity for entity in found}
        assert by_id["61000101"]["lastName"] == "Haugen-Berg", by_id.get("61000101")
        assert added in by_id and not by_id[added].get("_deleted"), f"the new owner {added} is missing"
        deleted = {key for key, entity in by_id.items() if entity.get("_deleted")}
        assert deleted == {"61000102", "61000109", "61000110"}, (
            f"every deactivated owner must come again, the new one included: {sorted(deleted)}")
        assert set(by_id) == {"61000101", added} | deleted, f"unchanged owners sent: {sorted(by_id)}"

    def test_an_owner_changed_within_the_settle_time_comes_with_a_later_export(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """An owner changed less than the settle time before HubSpot's clock is left for a
        later export: the offset never passes a moment HubSpot may still add changes to."""
        settle(sandbox)
        offset = entities(service, "/owners")[-1]["_updated"]
        sandbox.advance(60_000)
        sandbox.reference.update_owner("61000103", firstName="Mei-Li")
        sandbox.advance(int(SETTLE_SECONDS * 1000) // 2)
        early = {e["_id"]: e for e in entities(service, "/owners", since=offset)}
        assert "61000103" not in early, "an owner changed within the settle time was sent already"
        offset = max(e["_updated"] for e in early.values())
        settle(sandbox)
        later = {e["_id"]: e for e in entities(service, "/owners", since=offset)}
        assert later.get("61000103", {}).get("firstName") == "Mei-Li", sorted(later)

    def test_owners_page_after_page(self, configure, sandbox: Sandbox) -> None:
        """Owners come from every page of HubSpot's list (and of its deactivated list)."""
        settle(sandbox)
        service = configure(list_page_size=3)
        sandbox.reset_counters()
        found = entities(service, "/owners")
        pages = sandbox.request_counts()["owners"]
        everyone = set(sandbox.reference.owners()) | set(sandbox.reference.owners(archived=True))
        assert {entity["_id"] for entity in found} == everyone, "owners of a later page are missing"
        assert pages >= 4, f"ten owners in pages of three took {pages} requests"

    def test_a_repeated_cursor_stops_the_export(self, service: TestClient, sandbox: Sandbox) -> None:
        """HubSpot giving the same cursor again (its paging would not end) is a 502 that says
        so, after a bounded number of requests."""
        page = {"results": [{"id": "61000101", "updatedAt": "2024-01-01T00:00:00Z", "archived": False}],
                "paging": {"next": {"after": "again"}}}
        sandbox.inject(Fault("owners", status=200, body=page, times=None))
        sandbox.reset_counters()
        body = problem(service, "/owners", 502)
        assert body["title"] == "HubSpot paging does not end" and "twice" in body["detail"], body
        assert sandbox.request_counts()["owners"] == 2, sandbox.request_counts()

    def test_an_unusable_owner_is_hubspots_failure(self, service: TestClient, sandbox: Sandbox) -> None:
        """An owner without a usable id or updatedAt is HubSpot's unusable answer, not a
        skipped owner."""
        sandbox.inject(Fault("owners", status=200, times=None,
                             body={"results": [{"id": "61000101", "updatedAt": "soon"}]}))
        body = problem(service, "/owners", 502)
        assert body["title"] == "HubSpot answer unusable" and "updatedAt" in body["detail"], body

    def test_a_missing_scope_is_named(self, service: TestClient, sandbox: Sandbox) -> None:
        sandbox.scopes = set(sandbox.scopes) - {OWNERS_SCOPE}
        body = problem(service, "/owners", 502)
        assert body["title"] == "HubSpot access token lacks a scope", body
        assert OWNERS_SCOPE in body["detail"], body

    @pytest.mark.parametrize("path", ["/owners", "/pipelines/deals", "/pipelines/deals/stages",
                                      "/properties/deals"])
    def test_hubspot_failing_is_the_usual_problem(self, path: str, service: TestClient,
                                                  sandbox: Sandbox) -> None:
        """HubSpot answering 500 on every retry is a 502 problem, 503 a 503 with
        Retry-After: never an empty array."""
        sandbox.inject(Fault("any", status=500, times=None))
        body = problem(service, path, 502)
        assert body["title"] == "HubSpot failed" and "500" in body["detail"], body
        sandbox.clear_faults()
        sandbox.inject(Fault("any", status=503, times=None))
        response = service.get(path)
        assert response.status_code == 503 and "Retry-After" in response.headers, response.text

    def test_since_is_checked_and_limit_not_taken(self, service: TestClient) -> None:
        """A malformed `since` is a 400 naming it; `limit` is no parameter of /owners (a pipe
        of owners needs no page_size)."""
        assert "since" in problem(service, "/owners", 400, since="yesterday")["detail"]
        assert "limit" in problem(service, "/owners", 400, limit=5)["detail"]

    def test_a_pipe_keeps_in_step_with_the_owners(self, service: TestClient, sandbox: Sandbox) -> None:
        """An emulated Sesam pipe (supports_since, max strategy) holds exactly the active
        owners after every run, through additions, changes and deactivations, whether or not
        a deactivation moves updatedAt; a full rescan gives the same."""
        pipe = SesamPipe(service, "max", path="/owners")
        reference = sandbox.reference
        settle(sandbox)
        for round_number, moves in enumerate((False, True, False)):
            reference.deactivation_moves_updated_at = moves
            sandbox.advance(1_000)
            reference.add_owner("New", f"Owner{round_number}")
            active = sorted(reference.owners(), key=int)
            reference.update_owner(active[0], firstName=f"Changed{round_number}")
            reference.deactivate_owner(active[-2])
            settle(sandbox)
            pipe.run()
            assert held(pipe) == set(reference.owners()), (
                f"round {round_number}: the pipe holds {sorted(held(pipe))}, HubSpot's active "
                f"owners are {sorted(reference.owners())}")
            assert pipe.dataset[active[0]]["firstName"] == f"Changed{round_number}", round_number
        full = SesamPipe(service, "max", path="/owners")
        full.run()
        assert held(full) == held(pipe), "a full run disagrees with the incremental ones"


    def test_a_reactivated_owner_comes_back_by_the_next_change_or_the_rescan(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """An owner reactivated without a new updatedAt may not be sent by an incremental
        export (nothing says it changed): the pipe's full rescan brings it back, as the
        example pipe's rescan_cron_expression schedules; one whose updatedAt moved comes with
        the next export."""
        pipe = SesamPipe(service, "max", path="/owners")
        settle(sandbox)
        pipe.run()
        assert "61000109" not in held(pipe)
        sandbox.advance(60_000)
        sandbox.reference.deactivation_moves_updated_at = False
        sandbox.reference.reactivate_owner("61000109")
        settle(sandbox)
        pipe.run()
        pipe.reset()
        pipe.run()
        assert held(pipe) == set(sandbox.reference.owners()), "the rescan did not bring it back"
        sandbox.reference.deactivation_moves_updated_at = True
        sandbox.reference.deactivate_owner("61000109")
        settle(sandbox)
        pipe.run()
        sandbox.advance(60_000)
        sandbox.reference.reactivate_owner("61000109")
        settle(sandbox)
        pipe.run()
        assert "61000109" in held(pipe), "a reactivation that moved updatedAt was not sent"


class TestPipelines:
    def test_deal_pipelines_with_their_stages(self, service: TestClient) -> None:
        """One entity per pipeline, its stages nested in order with HubSpot's metadata."""
        found = entities(service, "/pipelines/deals")
        assert_in_order(found, "/pipelines/deals")
        by_id = {entity["_id"]: entity for entity in found}
        assert set(by_id) == {"default", RENEWALS}, sorted(by_id)
        default = by_id["default"]
        assert [stage["id"] for stage in default["stages"]] == DEFAULT_STAGES, default["stages"]
        won = next(stage for stage in default["stages"] if stage["id"] == "closedwon")
        assert won["metadata"] == {"probability": "1.0", "isClosed": "true"}, won
        assert default["label"] == "Sales Pipeline" and not default.get("_deleted"), default

    def test_stages_one_entity_each_with_their_pipeline(self, service: TestClient) -> None:
        found = entities(service, "/pipelines/tickets/stages")
        assert_in_order(found, "/pipelines/tickets/stages")
        assert [entity["_id"] for entity in found] == ["1", "2", "3", "4"], found
        assert {(e["pipelineId"], e["pipelineLabel"]) for e in found} == {("0", "Support Pipeline")}
        assert [e["metadata"]["ticketState"] for e in found] == ["OPEN", "OPEN", "OPEN", "CLOSED"]
        deal_stages = {e["_id"]: e for e in entities(service, "/pipelines/deals/stages")}
        assert set(DEFAULT_STAGES) <= set(deal_stages), sorted(deal_stages)
        assert deal_stages["contractsent"]["pipelineId"] == "default", deal_stages["contractsent"]

    def test_full_runs_follow_an_archived_or_vanished_pipeline(self, service: TestClient,
                                                                sandbox: Sandbox) -> None:
        """Pipes of pipelines and stages run without since: a pipeline HubSpot archives and
        still lists becomes _deleted, with its stages; one that vanishes from HubSpot's list
        is dropped by the next full run (Sesam's deletion tracking)."""
        pipelines = SesamPipe(service, "max", path="/pipelines/deals")
        stages = SesamPipe(service, "max", path="/pipelines/deals/stages")
        full_run(pipelines), full_run(stages)
        assert held(pipelines) == {"default", RENEWALS}
        renewal_stages = {key for key, e in stages.dataset.items() if e["pipelineId"] == RENEWALS}
        assert len(renewal_stages) == 4, renewal_stages
        sandbox.reference.archive_pipeline("deals", RENEWALS)
        full_run(pipelines), full_run(stages)
        assert held(pipelines) == {"default"} and pipelines.dataset[RENEWALS]["_deleted"] is True
        assert not renewal_stages & held(stages), "stages of an archived pipeline are not deleted"
        sandbox.reference.archive_pipeline("tickets", "0", vanish=True)
        tickets = SesamPipe(service, "max", path="/pipelines/tickets")
        assert full_run(tickets) == 0 and held(tickets) == set(), tickets.dataset

    def test_a_type_without_pipelines_is_a_404(self, service: TestClient, sandbox: Sandbox) -> None:
        """A type HubSpot has no pipelines for (it answers 400, or 404) is a 404 that says
        so; a type the portal lacks is the same 404 as on /objects."""
        for path in ("/pipelines/contacts", "/pipelines/companies/stages"):
            body = problem(service, path, 404)
            assert body["title"] == "No pipelines" and "pipelines" in body["detail"], body
        sandbox.inject(Fault("pipelines", status=404, times=None))
        assert problem(service, "/pipelines/deals", 404)["title"] == "No pipelines"
        for path in ("/pipelines/2-999", "/pipelines/2-999/stages", "/properties/p1_nothing"):
            body = problem(service, path, 404)
            assert body["title"] == "Unknown object type" and "2-3508482" in body["detail"], body

    def test_a_custom_object_is_named_as_on_objects(self, service: TestClient) -> None:
        """The custom object resolves by its objectTypeId and its fully qualified name."""
        by_id = entities(service, "/properties/2-3508482")
        assert {"vin", "make"} <= {entity["_id"] for entity in by_id}, by_id
        qualified = entities(service, "/properties/p24601042_cars")
        assert by_id == qualified

    def test_the_types_scope_is_named(self, service: TestClient, sandbox: Sandbox) -> None:
        sandbox.scopes = set(sandbox.scopes) - {"crm.objects.deals.read"}
        for path in ("/pipelines/deals", "/properties/deals"):
            body = problem(service, path, 502)
            assert body["title"] == "HubSpot access token lacks a scope", body
            assert "crm.objects.deals.read" in body["detail"], body

    def test_no_since_is_taken(self, service: TestClient) -> None:
        """A pipe that sends since to a full-run export is told so (400), not ignored."""
        for path in ("/pipelines/deals", "/pipelines/deals/stages", "/properties/deals"):
            assert "since" in problem(service, path, 400, since="2024-01-01T00:00:00Z")["detail"]


class TestPropertyDefinitions:
    def test_definitions_with_options_groups_and_archived_ones(self, service: TestClient,
                                                               sandbox: Sandbox) -> None:
        found = entities(service, "/properties/deals")
        assert_in_order(found, "/properties/deals")
        by_name = {entity["_id"]: entity for entity in found}
        catalogue = {p["name"] for p in sandbox._store("deals").catalogue}
        assert catalogue <= set(by_name), sorted(catalogue - set(by_name))
        stage = by_name["dealstage"]
        assert stage["type"] == "enumeration" and stage["groupLabel"] == "Deal information", stage
        stages = {e["_id"] for e in entities(service, "/pipelines/deals/stages")}
        assert {option["value"] for option in stage["options"]} == stages, (
            "dealstage's options and the deal pipelines' stages disagree")
        calculated = [e for e in found if e.get("calculated")]
        assert calculated and all(e.get("calculationFormula") for e in calculated), calculated
        legacy = by_name["legacy_region"]
        assert legacy.get("_deleted") is True and legacy["options"], legacy
        live = [e for e in found if not e.get("_deleted")]
        assert all(e["groupLabel"] for e in live), [e["_id"] for e in live if not e["groupLabel"]]

    def test_a_full_run_drops_what_hubspot_no_longer_lists(self, service: TestClient,
                                                           sandbox: Sandbox) -> None:
        """Property definitions are read in full runs: the pipe holds exactly the live
        definitions, and the archived ones as deleted."""
        pipe = SesamPipe(service, "max", path="/properties/contacts")
        assert full_run(pipe) > 10
        catalogue = {p["name"] for p in sandbox._store("contacts").catalogue}
        assert held(pipe) == catalogue, sorted(held(pipe) ^ catalogue)
        assert pipe.dataset["legacy_lead_score"]["_deleted"] is True

    def test_an_unusable_definition_is_hubspots_failure(self, service: TestClient,
                                                        sandbox: Sandbox) -> None:
        sandbox.inject(Fault("property_groups", status=200, times=None,
                             body={"results": [{"name": "dealinformation", "label": 7}]}))
        body = problem(service, "/properties/deals", 502)
        assert body["title"] == "HubSpot answer unusable" and "label" in body["detail"], body


class TestTheEnrichedDealsExample:
    def test_every_deal_joins_as_the_example_pipe_joins(self, service: TestClient) -> None:
        """examples/sesam/pipe-deals-enriched.json joins a deal to its stage and its owner by
        the fields its hops name: on the service's own answers, every deal finds its stage
        (with a label) and every deal with an owner finds the owner (with a name)."""
        pipe = orjson.loads((ROOT / "examples" / "sesam" / "pipe-deals-enriched.json").read_bytes())
        hops = [rule[2][1][1] for rule in pipe["transform"]["rules"]["default"]
                if rule[0] == "add" and isinstance(rule[2], list) and rule[2][0] == "first"]
        found = {"hubspot-deal-stages-collect": entities(service, "/pipelines/deals/stages"),
                 "hubspot-owners-collect": entities(service, "/owners")}
        deals = entities(service, "/objects/deals")
        assert len(hops) == 2 and deals
        for hop in hops:
            dataset, alias = hop["datasets"][0].split()
            (_, source, target), = hop["where"]
            assert source.startswith("_S.") and target.startswith(f"{alias}.")
            index = {entity[target.split(".", 1)[1]]: entity for entity in found[dataset]}
            for deal in deals:
                key = deal
                for part in source.split(".")[1:]:
                    key = key.get(part) if isinstance(key, dict) else None
                if key is None and "owner" in source:
                    continue  # a deal without an owner
                joined = index.get(key)
                assert joined is not None, f"deal {deal['_id']}: {source}={key!r} joins no {dataset}"
                assert joined.get("label") or joined.get("firstName"), joined


OWNER_ANSWERS = st.builds(
    lambda results, paging: {"results": results, "paging": paging},
    st.lists(st.one_of(VALUES, st.fixed_dictionaries(
        {"id": st.one_of(st.integers(), st.text(max_size=25), VALUES),
         "updatedAt": st.one_of(st.sampled_from(["2024-01-01T00:00:00Z", "0", "99999999999999"]), VALUES),
         "archived": st.one_of(st.booleans(), VALUES), "teams": VALUES})), max_size=4),
    st.one_of(VALUES, st.builds(lambda after: {"next": {"after": after}}, VALUES)))
PIPELINE_ANSWERS = st.builds(lambda results: {"results": results}, st.lists(st.one_of(VALUES, st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=3), VALUES), "label": VALUES, "archived": st.one_of(st.booleans(), VALUES),
     "updatedAt": VALUES, "stages": st.one_of(VALUES, st.lists(st.fixed_dictionaries(
         {"id": st.one_of(st.text(max_size=3), VALUES), "archived": VALUES, "updatedAt": VALUES}), max_size=3)),
     "name": VALUES, "groupName": VALUES})), max_size=4))


class TestParsersOnRandomShapes:
    @PROPERTY_RUNS
    @given(st.one_of(ANSWERS, OWNER_ANSWERS, PIPELINE_ANSWERS))
    def test_reference_answers(self, data: dict[str, Any]) -> None:
        """owner_page, pipelines, property_definitions, property_groups: a checked value or
        "HubSpot answer unusable", whatever the shape, depth, numbers or text."""
        deals = standard_types("hs_lastmodifieddate", {})["deals"]
        for archived in (False, True):
            page = value_or_hubspot_error(lambda archived=archived: owner_page(data, 0, 1, archived))
            if page is not None:
                assert all(0 < owner.id <= MAX_ID for owner in page.records), page
            value_or_hubspot_error(lambda archived=archived: property_definitions(data, deals, archived))
        value_or_hubspot_error(lambda: pipelines(data, deals))
        value_or_hubspot_error(lambda: property_groups(data, deals))


class TestTheHttpEdge:
    @pytest.mark.parametrize("path, label", [
        ("/owners", "/owners"), ("/pipelines/deals", "/pipelines/{objectType}"),
        ("/pipelines/tickets/stages", "/pipelines/{objectType}/stages"),
        ("/properties/contacts", "/properties/{objectType}")])
    def test_head_is_refused_and_requests_are_counted_by_path(
            self, path: str, label: str, service: TestClient, sandbox: Sandbox) -> None:
        """HEAD on a reference export is a 405 that reads nothing of HubSpot (it would cost an
        export for no body); a GET is counted under its path's template, not as "other"."""
        sandbox.reset_counters()
        refused = service.head(path)
        assert refused.status_code == 405 and refused.headers["allow"] == "GET", refused.headers
        assert sum(sandbox.request_counts().values()) == 0, sandbox.request_counts()
        assert service.get(path).status_code == 200
        metrics = service.get("/metrics").text
        assert f'hubspot_sesam_requests_total{{path="{label}",status="200"}} 1.0' in metrics, (
            [line for line in metrics.splitlines() if "requests_total{" in line])

    def test_a_type_without_pipelines_is_logged_once_as_a_warning(
            self, service: TestClient, caplog: pytest.LogCaptureFixture) -> None:
        """Asking for the pipelines of a type that has none is the caller's mistake: one
        summary line, a warning, not an error that would page an operator."""
        with caplog.at_level(logging.INFO, logger="app"):
            problem(service, "/pipelines/contacts", 404)
        lines = [r for r in caplog.records if r.name == "app.web.stream"]
        assert [(r.levelno, r.getMessage()) for r in lines] == [
            (logging.WARNING, "export of contacts pipelines failed")], [
            (r.levelname, r.getMessage()) for r in caplog.records]
