"""The sandbox's reference data in the shapes of HubSpot's published API descriptions (the
owners, pipelines and properties APIs of HubSpot's public spec collection): the fields those
descriptions require, with the types they give; its paging and limits; its admin routes; and
deals whose owners, pipelines and stages exist in it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from sandbox import Sandbox
from sandbox.reference import OWNERS_SCOPE

from .crm import Crm, serve

T0 = 1717200000000

# Required fields and their JSON types, as HubSpot's descriptions give them (PublicOwner,
# PublicTeam, Pipeline, PipelineStage, Property, Option, PropertyGroup,
# PropertyModificationMetadata); "date-time" is a string in ISO-8601.
OWNER = {"id": str, "type": str, "archived": bool, "createdAt": "date-time", "updatedAt": "date-time"}
OWNER_OPTIONAL = {"email": str, "firstName": str, "lastName": str, "userId": int,
                  "userIdIncludingInactive": int, "teams": list}
TEAM = {"id": str, "name": str, "primary": bool}
PIPELINE = {"id": str, "label": str, "displayOrder": int, "archived": bool, "stages": list,
            "createdAt": "date-time", "updatedAt": "date-time"}
STAGE = {"id": str, "label": str, "displayOrder": int, "archived": bool, "metadata": dict,
         "createdAt": "date-time", "updatedAt": "date-time"}
PROPERTY = {"name": str, "label": str, "type": str, "fieldType": str, "groupName": str,
            "description": str, "options": list}
PROPERTY_OPTIONAL = {"calculated": bool, "calculationFormula": str, "hasUniqueValue": bool,
                     "hidden": bool, "formField": bool, "modificationMetadata": dict,
                     "createdAt": "date-time", "updatedAt": "date-time", "archived": bool,
                     "displayOrder": int}
OPTION = {"label": str, "value": str, "hidden": bool}
GROUP = {"name": str, "label": str, "displayOrder": int, "archived": bool}
MODIFICATION = {"archivable": bool, "readOnlyDefinition": bool, "readOnlyValue": bool}


def conforms(item: Any, required: dict[str, Any], optional: dict[str, Any] | None = None,
             context: str = "") -> None:
    assert isinstance(item, dict), f"{context}: {item!r} is not an object"
    missing = sorted(set(required) - set(item))
    assert not missing, f"{context}: required fields {missing} missing from {item}"
    for name, kind in {**(optional or {}), **required}.items():
        if name not in item:
            continue
        value = item[name]
        if kind == "date-time":
            assert isinstance(value, str), f"{context}: {name} {value!r} is not a date-time"
            datetime.fromisoformat(value)
        else:
            is_bool = isinstance(value, bool)
            right = isinstance(value, kind) and (kind is bool or not is_bool)
            assert right, f"{context}: {name} {value!r} is not {kind.__name__}"


@pytest.fixture(name="crm")
def _crm():
    sandbox = Sandbox(contacts=100, seed=3, now_ms=T0)
    with serve(sandbox) as crm:
        crm.sandbox = sandbox  # type: ignore[attr-defined]
        yield crm


def owners(crm: Crm, **params: Any) -> list[dict]:
    found: list[dict] = []
    after = None
    for _ in range(100):
        response = crm.get("/crm/v3/owners", **params, **({"after": after} if after else {}))
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["results"]
        if "paging" not in page:
            return found
        after = page["paging"]["next"]["after"]
        assert isinstance(after, str) and after, page["paging"]
    raise AssertionError("the owners' paging does not end")


class TestShapes:
    def test_owners_as_hubspot_describes_them(self, crm: Crm) -> None:
        active, gone = owners(crm), owners(crm, archived="true")
        assert 8 <= len(active) + len(gone) <= 12 and len(gone) == 2, (len(active), len(gone))
        for owner in active + gone:
            conforms(owner, OWNER, OWNER_OPTIONAL, f"owner {owner.get('id')}")
            assert owner["id"].isdigit() and owner["type"] in ("PERSON", "QUEUE"), owner
            for team in owner["teams"]:
                conforms(team, TEAM, context=f"team of owner {owner['id']}")
            assert sum(team["primary"] for team in owner["teams"]) <= 1, owner["teams"]
        assert all(not o["archived"] for o in active) and all(o["archived"] for o in gone)
        teams = {team["id"] for owner in active + gone for team in owner["teams"]}
        assert 2 <= len(teams) <= 3, teams

    def test_pipelines_as_hubspot_describes_them(self, crm: Crm) -> None:
        for object_type, state in (("deals", {"probability", "isClosed"}), ("tickets", {"ticketState"})):
            response = crm.get(f"/crm/v3/pipelines/{object_type}")
            assert response.status_code == 200, response.text
            for pipeline in response.json()["results"]:
                conforms(pipeline, PIPELINE, context=f"{object_type} pipeline {pipeline.get('id')}")
                for stage in pipeline["stages"]:
                    conforms(stage, STAGE, context=f"stage {stage.get('id')}")
                    # HubSpot describes metadata as an object of strings.
                    assert set(stage["metadata"]) == state, stage
                    assert all(isinstance(v, str) for v in stage["metadata"].values()), stage
        default = next(p for p in crm.get("/crm/v3/pipelines/deals").json()["results"] if p["id"] == "default")
        assert [s["id"] for s in default["stages"]] == [
            "appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
            "contractsent", "closedwon", "closedlost"], default["stages"]
        tickets = crm.get("/crm/v3/pipelines/tickets").json()["results"]
        assert [(p["id"], [s["id"] for s in p["stages"]]) for p in tickets] == [("0", ["1", "2", "3", "4"])]
        assert len(crm.get("/crm/v3/pipelines/deals").json()["results"]) == 2

    @pytest.mark.parametrize("archived", ["false", "true"])
    def test_properties_and_groups_as_hubspot_describes_them(self, crm: Crm, archived: str) -> None:
        response = crm.get("/crm/v3/properties/deals", archived=archived)
        assert response.status_code == 200, response.text
        found = response.json()["results"]
        assert found, f"no definitions with archived={archived}"
        groups = crm.get("/crm/v3/properties/deals/groups").json()["results"]
        for group in groups:
            conforms(group, GROUP, context=f"group {group.get('name')}")
        for definition in found:
            context = f"property {definition.get('name')}"
            conforms(definition, PROPERTY, PROPERTY_OPTIONAL, context)
            conforms(definition["modificationMetadata"], MODIFICATION, context=context)
            for option in definition["options"]:
                conforms(option, OPTION, context=context)
            assert definition["archived"] is (archived == "true"), definition
            assert definition["groupName"] in {g["name"] for g in groups}, definition["groupName"]
        if archived == "false":
            assert any(d["calculated"] and d["calculationFormula"] for d in found), "no calculated property"
            assert any(d["options"] for d in found), "no definition with options"


class TestBehaviour:
    def test_owners_page_within_hubspots_limit(self, crm: Crm) -> None:
        everyone = owners(crm)
        paged = owners(crm, limit=3)
        assert [o["id"] for o in paged] == [o["id"] for o in everyone], "paging lost or repeated owners"
        assert crm.get("/crm/v3/owners", limit=501).status_code == 400, "HubSpot's owners limit is 500"
        assert crm.get("/crm/v3/owners", after="garbage").status_code == 400

    def test_a_type_without_pipelines_and_the_scopes(self, crm: Crm) -> None:
        assert crm.get("/crm/v3/pipelines/contacts").status_code == 400
        sandbox: Sandbox = crm.sandbox  # type: ignore[attr-defined]
        sandbox.scopes = set(sandbox.scopes) - {OWNERS_SCOPE}
        refused = crm.get("/crm/v3/owners")
        assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES", refused.text
        assert OWNERS_SCOPE in refused.text

    def test_admin_changes_owners_and_pipelines(self, crm: Crm) -> None:
        added = crm.session.post(f"{crm.url}/_sandbox/reference/owners",
                                 json={"firstName": "Ada", "lastName": "Eze"}).json()["id"]
        assert crm.session.post(f"{crm.url}/_sandbox/reference/owners/update",
                                json={"id": added, "lastName": "Berg"}).status_code == 204
        assert crm.session.post(f"{crm.url}/_sandbox/reference/owners/deactivate",
                                json={"id": "61000101"}).status_code == 204
        assert crm.session.post(f"{crm.url}/_sandbox/reference/pipelines/archive",
                                json={"type": "deals", "id": "default"}).status_code == 204
        truth = crm.session.get(f"{crm.url}/_sandbox/reference/owners").json()
        assert truth["active"][added]["lastName"] == "Berg" and "61000101" in truth["deactivated"], truth
        default = next(p for p in crm.get("/crm/v3/pipelines/deals").json()["results"] if p["id"] == "default")
        assert default["archived"] is True and "archivedAt" in default, default
        missing = crm.session.post(f"{crm.url}/_sandbox/reference/owners/deactivate", json={"id": "1"})
        assert missing.status_code == 404, missing.text

    def test_deals_name_owners_pipelines_and_stages_that_exist(self, crm: Crm) -> None:
        """Every deal's hubspot_owner_id is an owner, its pipeline a deal pipeline and its
        dealstage a stage of that pipeline: reference data joins to every record."""
        sandbox: Sandbox = crm.sandbox  # type: ignore[attr-defined]
        known = {o["id"] for o in owners(crm) + owners(crm, archived="true")}
        stages = {p["id"]: {s["id"] for s in p["stages"]}
                  for p in crm.get("/crm/v3/pipelines/deals").json()["results"]}
        deals = [sandbox.record(deal_id, "deals")["properties"] for deal_id in sandbox.live("deals")]
        assert len(deals) >= 10
        for deal in deals:
            assert deal["pipeline"] in stages and deal["dealstage"] in stages[deal["pipeline"]], deal
            assert deal["hubspot_owner_id"] in known | {None}, deal
        assert len({deal["pipeline"] for deal in deals}) == 2, "every deal in one pipeline"
        assert sum(deal["hubspot_owner_id"] is not None for deal in deals) > len(deals) // 2
