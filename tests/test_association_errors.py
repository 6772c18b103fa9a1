"""HubSpot's 207 for records without associations, whatever its error `context` says of the
object types: the service reads only the record ids there, so an export with associations
does not depend on how HubSpot names the types (its answers name them "deal", "company";
its published description only says each context value is a list of strings)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

import sandbox.portal as portal_module
from sandbox import Sandbox
from sandbox.associations import none_found
from sandbox.objects import ObjectType

CONTEXTS = {
    "singular names (HubSpot's answers)": lambda source, target: [[source.singular], [target.singular]],
    "objectTypeIds": lambda source, target: [[source.type_id], [target.type_id]],
    "upper-case names": lambda source, target: [[source.singular.upper()], [target.singular.upper()]],
    "no types": lambda source, target: None,
    "empty lists": lambda source, target: [[], []],
}


@pytest.mark.parametrize("shape", sorted(CONTEXTS))
def test_records_without_associations_whatever_the_207_context_names(
        shape: str, service: TestClient, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every live deal arrives with its companies, and those without any (HubSpot's 207 errors)
    with an empty list, not a failed export, whatever the 207's `context` holds beside
    `fromObjectId`."""
    def context(from_id: str, source: ObjectType, target: ObjectType) -> dict[str, list[str]]:
        types = CONTEXTS[shape](source, target)
        found: dict[str, Any] = {"fromObjectId": none_found(from_id, source, target)["fromObjectId"]}
        if types is not None:
            found.update(fromObjectType=types[0], toObjectType=types[1])
        return found

    monkeypatch.setattr(portal_module, "none_found", context)
    response = service.get("/objects/deals", params={"associations": "companies"})
    assert response.status_code == 200, f"{shape}: {response.status_code} {response.text[:300]}"
    entities = [e for e in orjson.loads(response.content) if not e.get("_deleted")]
    assert sorted(e["id"] for e in entities) == sorted(sandbox.live("deals")), f"{shape}: not every live deal"
    for entity in entities:
        truth = sorted(str(i) for i, _ in sandbox.associations("deals", entity["id"], "companies"))
        got = sorted(a["id"] for a in entity["associations"]["companies"])
        assert got == truth, f"{shape}: deal {entity['id']} has companies {got[:5]}, HubSpot {truth[:5]}"
    assert any(not e["associations"]["companies"] for e in entities), (
        f"{shape}: no deal without companies, so no 207 was answered")
