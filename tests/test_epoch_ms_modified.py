"""The modification property as epoch milliseconds (`Sandbox(epoch_ms_modified=True)`): real
HubSpot sends some datetime properties as epoch-ms strings, and the walk keys on the
modification property. Exports, full and incremental, and a Sesam pipe lose nothing and keep
`_updated` in order when HubSpot sends it so."""

from __future__ import annotations

import orjson
import pytest
from starlette.testclient import TestClient

from app.sync.positions import encode_key
from sandbox import Sandbox

from .crm import Crm, modified_property, since
from .sesam import T0, SesamPipe, assert_in_sync, settle


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    return Sandbox(contacts=600, seed=7, now_ms=T0, epoch_ms_modified=True)


def exported(service: TestClient, path: str, **params: str) -> list[dict]:
    response = service.get(path, params=params)
    assert response.status_code == 200, f"{path} {params}: {response.status_code} {response.text[:300]}"
    return orjson.loads(response.content)


@pytest.mark.parametrize("object_type", ["contacts", "deals"])
def test_the_sandbox_sends_the_modification_property_as_epoch_ms(
        sandbox_server, sandbox: Sandbox, object_type: str) -> None:
    """Search results, reads by id and the archived listing carry the walk's modification
    property as epoch milliseconds in a string, the record's modification time."""
    crm = Crm(sandbox_server.url, sandbox.token)
    name = modified_property(object_type)
    found = crm.search_in(object_type, {**since(object_type), "limit": 5}).json()["results"]
    some = found[0]["id"]
    read = crm.get(f"/crm/v3/objects/{object_type}/{some}", properties=name).json()
    listed = crm.get(f"/crm/v3/objects/{object_type}", archived="true", limit=5,
                     properties=name).json()["results"]
    assert listed, f"no archived {object_type} to list"
    for record in [*found, read, *listed]:
        value = record["properties"][name]
        assert isinstance(value, str) and value.isdigit(), f"{object_type} {record['id']}: {name}={value!r}"
    truth = sandbox.live(object_type)
    assert all(int(r["properties"][name]) == truth[r["id"]] for r in found), found[:2]
    assert not read["updatedAt"].isdigit(), f"updatedAt stays ISO-8601: {read['updatedAt']}"


@pytest.mark.parametrize("path,object_type", [("/get_contacts", "contacts"), ("/objects/deals", "deals")])
def test_a_full_export_keys_every_record_on_its_epoch_ms_modification_time(
        service: TestClient, sandbox: Sandbox, path: str, object_type: str) -> None:
    """A full export is every live record once, in `_updated` order, each `_updated` the
    record's modification time and id, read from an epoch-ms value."""
    entities = exported(service, path)
    updates = [e["_updated"] for e in entities]
    assert updates == sorted(set(updates)), f"{object_type}: `_updated` not strictly increasing"
    truth = sandbox.live(object_type)
    assert sorted(e["_id"] for e in entities) == sorted(truth), f"{object_type}: not every live record once"
    wrong = [e["_id"] for e in entities if e["_updated"] != encode_key((truth[e["_id"]], int(e["_id"])))]
    assert not wrong, f"{object_type}: `_updated` is not the modification time for {wrong[:5]}"


@pytest.mark.parametrize("strategy", ["max", "chronological"])
@pytest.mark.parametrize("path,object_type", [("/get_contacts", "contacts"), ("/objects/deals", "deals")])
def test_a_sesam_pipe_stays_in_sync(service: TestClient, sandbox: Sandbox, strategy: str,
                                    path: str, object_type: str) -> None:
    """A pipe's full run, then incremental runs after changes (some on one millisecond) and
    deletions: it holds exactly HubSpot's live records, nothing lost, `_updated` in order."""
    pipe = SesamPipe(service, strategy, page_size=50, path=path,  # type: ignore[arg-type]
                     modified_property=modified_property(object_type))
    pipe.run()
    assert_in_sync(pipe, sandbox, f"{object_type} full run", object_type)
    ids = sorted(sandbox.live(object_type), key=int)
    sandbox.modify(ids[:30], {}, object_type=object_type)  # 30 changes on one millisecond
    sandbox.advance(7)
    sandbox.modify(ids[40:41], {}, object_type=object_type)
    sandbox.archive(ids[30:33], object_type=object_type)
    settle(sandbox)
    pipe.run()
    settle(sandbox)
    pipe.run()
    assert_in_sync(pipe, sandbox, f"{object_type} incremental, {strategy}", object_type)
    assert all(pipe.dataset[cid].get("_deleted") for cid in ids[30:33]), "a deletion was lost"
