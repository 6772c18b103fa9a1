"""Pins the sandbox's associations v4: POST /crm/v4/associations/{from}/{to}/batch/read in
HubSpot's shape (1,000 inputs at most, 207 beside results for ids without associations, a
page per record with `after`), symmetric links with HubSpot's type ids and labels, and
changes that, as in HubSpot, move no record's modification time.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from sandbox import Fault, Sandbox

from .crm import Crm, serve
from .test_sandbox_objects import NOW

PAIRS = [("contacts", "companies"), ("deals", "contacts"), ("deals", "companies"), ("tickets", "contacts"),
         ("tickets", "companies"), ("line_items", "deals"), ("quotes", "deals"), ("calls", "contacts"),
         ("emails", "contacts"), ("meetings", "contacts"), ("notes", "contacts"), ("tasks", "contacts"),
         ("cars", "contacts")]


def batch_path(from_type: str, to_type: str) -> str:
    return f"/crm/v4/associations/{from_type}/{to_type}/batch/read"


def read_all(crm: Crm, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[tuple[str, list[dict]]]]:
    """Every association of `ids`, 1,000 inputs per request, following each record's paging."""
    found: dict[str, list[tuple[str, list[dict]]]] = {}
    pending = [{"id": cid} for cid in ids]
    while pending:
        batch, pending = pending[:1000], pending[1000:]
        response = crm.post(batch_path(from_type, to_type), {"inputs": batch})
        assert response.status_code in (200, 207), f"{from_type}->{to_type}: {response.text[:300]}"
        for result in response.json()["results"]:
            found.setdefault(result["from"]["id"], []).extend(
                (str(to["toObjectId"]), to["associationTypes"]) for to in result["to"])
            if "paging" in result:
                pending.append({"id": result["from"]["id"], "after": result["paging"]["next"]["after"]})
    return found


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    # 1,200 contacts: one company then has more contacts than a v4 result page holds.
    return Sandbox(contacts=1200, now_ms=NOW)


@pytest.fixture(name="crm")
def _crm(sandbox: Sandbox) -> Iterator[Crm]:
    with serve(sandbox) as crm:
        yield crm


class TestBatchRead:
    @pytest.mark.parametrize("from_type,to_type", PAIRS)
    def test_every_pair_reads_back_the_truth_both_ways(self, crm: Crm, sandbox: Sandbox, from_type: str,
                                                      to_type: str) -> None:
        """For each pair of associated types, the batch read of every live record gives exactly
        the sandbox's truth, and reading the other way round gives the same links with the
        inverse type ids."""
        ids = sorted(sandbox.live(from_type), key=int)
        truth = {cid: sandbox.associations(from_type, cid, to_type) for cid in ids}
        truth = {cid: links for cid, links in truth.items() if links}
        assert truth, f"the seeded portal links {from_type} to {to_type}"
        assert read_all(crm, from_type, to_type, ids) == truth, f"{from_type}->{to_type} reads the truth"

        back = read_all(crm, to_type, from_type, sorted(sandbox.live(to_type), key=int))
        forward = {(a, b): {t["typeId"] for t in types} for a, links in truth.items() for b, types in links}
        inverse = {(a, b): {t["typeId"] for t in types} for b, links in back.items() for a, types in links}
        assert forward.keys() == inverse.keys(), f"{to_type}->{from_type} holds the same links"
        pair = next(iter(forward))
        assert forward[pair] != inverse[pair], f"the inverse direction has its own type ids: {forward[pair]}"

    def test_200_when_every_input_has_associations(self, crm: Crm, sandbox: Sandbox) -> None:
        """All inputs with associations: 200, results only, HubSpot's batch envelope."""
        deals = sorted(sandbox.live("deals"), key=int)[:5]
        response = crm.post(batch_path("deals", "companies"), {"inputs": [{"id": cid} for cid in deals]})
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, response.text[:300]
        assert body["status"] == "COMPLETE" and {"startedAt", "completedAt"} <= body.keys(), body.keys()
        assert [result["from"]["id"] for result in body["results"]] == deals
        to = body["results"][0]["to"][0]
        assert set(to) == {"toObjectId", "associationTypes"}, to
        assert type(to["toObjectId"]) is int, f"toObjectId is a JSON number, as HubSpot sends it: {to}"
        assert {"category", "typeId", "label"} == set(to["associationTypes"][0]), to

    def test_207_when_some_inputs_have_none(self, crm: Crm, sandbox: Sandbox) -> None:
        """Inputs without associations (unknown, archived, or simply unlinked) are 207's errors
        beside the results, one per id, in HubSpot's error shape."""
        linked = next(cid for cid in sandbox.live("deals") if sandbox.associations("deals", cid, "contacts"))
        archived = next(iter(sandbox.archived("deals")))
        response = crm.post(batch_path("deals", "contacts"),
                            {"inputs": [{"id": linked}, {"id": "999999999"}, {"id": archived}]})
        body = response.json()
        assert response.status_code == 207, response.text[:300]
        assert [result["from"]["id"] for result in body["results"]] == [linked]
        assert body["numErrors"] == 2 and len(body["errors"]) == 2, body
        for error, cid in zip(body["errors"], ["999999999", archived]):
            context = {"fromObjectId": [cid], "fromObjectType": ["deal"], "toObjectType": ["contact"]}
            assert error["category"] == "OBJECT_NOT_FOUND" and error["context"] == context, error
            assert error["subCategory"] == "crm.associations.NO_ASSOCIATIONS_FOUND", error

    def test_at_most_1000_inputs(self, crm: Crm, sandbox: Sandbox) -> None:
        """1,000 inputs are answered; 1,001 are HubSpot's 400."""
        ids = [{"id": str(n)} for n in range(1000)]
        assert crm.post(batch_path("contacts", "companies"), {"inputs": ids}).status_code in (200, 207)
        response = crm.post(batch_path("contacts", "companies"), {"inputs": [*ids, {"id": "1"}]})
        assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR", response.text
        assert "1000" in response.json()["message"], response.text

    def test_malformed_body_is_400(self, crm: Crm) -> None:
        """A body that is not {"inputs": [{"id": …}]} is a 400, not an empty answer."""
        for body in ({}, {"inputs": "1"}, {"inputs": [{"after": "x"}]}):
            response = crm.post(batch_path("contacts", "companies"), body)
            assert response.status_code == 400, f"{body}: {response.text}"

    def test_a_record_with_many_associations_pages(self, crm: Crm, sandbox: Sandbox) -> None:
        """A company with more than 500 contacts answers 500 with paging.next.after; sending the
        id again with that after gives the rest, with no repeats and nothing lost."""
        big = max(sandbox.live("companies"), key=lambda cid: len(sandbox.associations("companies", cid, "contacts")))
        truth = [to_id for to_id, _ in sandbox.associations("companies", big, "contacts")]
        assert len(truth) > 500, f"the seeded portal has a company with {len(truth)} contacts"
        first = crm.post(batch_path("companies", "contacts"), {"inputs": [{"id": big}]}).json()["results"][0]
        assert len(first["to"]) == 500 and "after" in first["paging"]["next"], first.get("paging")
        rest = crm.post(batch_path("companies", "contacts"),
                        {"inputs": [{"id": big, "after": first["paging"]["next"]["after"]}]}).json()["results"][0]
        ids = [str(to["toObjectId"]) for to in first["to"] + rest["to"]]
        assert ids == truth, "two pages give every contact once, in order"

    def test_unknown_type_is_400(self, crm: Crm) -> None:
        """An association path naming a type the portal lacks is HubSpot's 400."""
        response = crm.post(batch_path("contacts", "widgets"), {"inputs": [{"id": "101"}]})
        assert response.status_code == 400 and "widgets" in response.json()["message"], response.text

    def test_counted_and_rate_limited_with_the_general_calls(self, crm: Crm, sandbox: Sandbox) -> None:
        """Association reads count as "associations" and share the ten-second limit of the
        calls other than search, as in HubSpot."""
        crm.admin("POST", "stats/reset")
        sandbox.general_rate_per_10s = 2
        assert crm.get("/crm/v3/objects/contacts").status_code == 200
        assert crm.post(batch_path("contacts", "companies"), {"inputs": [{"id": "101"}]}).status_code in (200, 207)
        limited = crm.post(batch_path("contacts", "companies"), {"inputs": [{"id": "101"}]})
        assert limited.status_code == 429 and limited.json()["policyName"] == "TEN_SECONDLY_ROLLING", limited.text
        assert crm.admin("GET", "stats").json()["requests"]["associations"] == 2


    def test_faults_hit_association_reads(self, crm: Crm, sandbox: Sandbox) -> None:
        """A fault armed for "associations" hits the next batch read and nothing else."""
        sandbox.inject(Fault("associations", status=503))
        assert crm.get("/crm/v3/objects/companies").status_code == 200, "other endpoints pass"
        assert crm.post(batch_path("contacts", "companies"), {"inputs": [{"id": "101"}]}).status_code == 503
        assert crm.post(batch_path("contacts", "companies"), {"inputs": [{"id": "101"}]}).status_code in (200, 207)


class TestChanges:
    def test_associate_moves_no_modification_time(self, crm: Crm, sandbox: Sandbox) -> None:
        """associate()/dissociate() change what the batch read returns, both ways, while
        neither record's modification time moves and search sees no change."""
        deal, contact = next(iter(sandbox.live("deals"))), next(iter(sandbox.live()))
        before = (sandbox.live("deals")[deal], sandbox.live()[contact])
        sandbox.advance(60_000)
        sandbox.associate("deals", deal, "contacts", contact, label="Decision maker")
        assert (sandbox.live("deals")[deal], sandbox.live()[contact]) == before, "no modification time moved"
        changed = crm.search_ids("deals", {"filterGroups": [{"filters": [
            {"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": str(before[0])}]}]})
        assert deal not in changed, "search sees no change of the deal"
        forward = dict(read_all(crm, "deals", "contacts", [deal])[deal])[contact]
        assert {"category": "USER_DEFINED", "typeId": 41, "label": "Decision maker"} in forward, forward
        backward = dict(read_all(crm, "contacts", "deals", [contact])[contact])[deal]
        assert {"category": "USER_DEFINED", "typeId": 42, "label": "Decision maker"} in backward, backward

        sandbox.dissociate("contacts", contact, "deals", deal)
        assert deal not in dict(sandbox.associations("contacts", contact, "deals")), "gone both ways"
        assert contact not in dict(sandbox.associations("deals", deal, "contacts"))
        assert (sandbox.live("deals")[deal], sandbox.live()[contact]) == before

    def test_labels_are_checked(self, sandbox: Sandbox) -> None:
        """associate() takes only labels the pair of types has, and only live records."""
        deal, contact = next(iter(sandbox.live("deals"))), next(iter(sandbox.live()))
        with pytest.raises(ValueError, match="Decision maker"):
            sandbox.associate("deals", deal, "contacts", contact, label="Best friend")
        with pytest.raises(KeyError):
            sandbox.associate("deals", deal, "contacts", next(iter(sandbox.archived())))

    def test_admin_surface(self, crm: Crm, sandbox: Sandbox) -> None:
        """The admin surface associates, dissociates and reports associations for another process."""
        ticket, company = next(iter(sandbox.live("tickets"))), next(iter(sandbox.live("companies")))
        link = {"from_type": "tickets", "from_id": ticket, "to_type": "companies", "to_id": company}
        assert crm.admin("POST", "associate", link).status_code == 204
        truth = crm.admin("POST", "associations", {"from_type": "tickets", "id": ticket, "to_type": "companies"})
        assert company in [entry["id"] for entry in truth.json()["results"]], truth.text
        assert crm.admin("POST", "dissociate", link).status_code == 204
        assert company not in dict(sandbox.associations("tickets", ticket, "companies"))

    def test_archived_records_drop_out_and_merges_move_links(self, sandbox: Sandbox) -> None:
        """An archived contact leaves its company's associations; merging companies moves the
        merged-away company's contacts to the survivor."""
        primary, secondary = sorted(sandbox.live("companies"), key=int)[1:3]
        contacts = [cid for cid, _ in sandbox.associations("companies", secondary, "contacts")]
        assert contacts, "the secondary company has contacts"
        sandbox.archive(contacts[:1])
        assert contacts[0] not in dict(sandbox.associations("companies", secondary, "contacts"))
        sandbox.merge(primary, secondary, object_type="companies")
        moved = dict(sandbox.associations("companies", primary, "contacts"))
        assert set(contacts[1:]) <= moved.keys(), "the survivor has the merged company's contacts"


def test_official_client_reads_the_shapes(crm: Crm, sandbox: Sandbox) -> None:
    """HubSpot's own Python client (its generated models check required fields) reads the
    sandbox's answers: lists and searches of other types, the schemas, and v4 batch reads
    with and without errors."""
    def read(response, klass: str, package: str):
        module = importlib.import_module(f"hubspot.crm.{package}")
        return module.ApiClient().deserialize(SimpleNamespace(data=response.text), klass)

    listed = read(crm.get("/crm/v3/objects/companies", limit=3),
                  "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging", "companies")
    assert len(listed.results) == 3 and listed.paging.next.after, listed
    found = read(crm.search_in("deals", {"limit": 2}), "CollectionResponseWithTotalSimplePublicObjectForwardPaging",
                 "deals")
    assert found.total == len(sandbox.live("deals")), found.total
    schemas = read(crm.get("/crm/v3/schemas"), "CollectionResponseObjectSchemaNoPaging", "schemas")
    assert schemas.results[0].object_type_id == "2-3508482", schemas
    deal = next(cid for cid in sandbox.live("deals") if sandbox.associations("deals", cid, "companies"))
    whole = read(crm.post(batch_path("deals", "companies"), {"inputs": [{"id": deal}]}),
                 "BatchResponsePublicAssociationMultiWithLabel", "associations.v4")
    assert whole.results[0].to[0].association_types[0].type_id in (5, 341), whole
    partial = read(crm.post(batch_path("deals", "companies"), {"inputs": [{"id": deal}, {"id": "1"}]}),
                   "BatchResponsePublicAssociationMultiWithLabelWithErrors", "associations.v4")
    context = {"fromObjectId": ["1"], "fromObjectType": ["deal"], "toObjectType": ["company"]}
    assert partial.num_errors == 1 and partial.errors[0].context == context, partial
