"""GET /objects/{objectType} through the HTTP surface: the same export as /get_contacts for
every CRM object type, with associations, and the answers a pipe gets when it names a type
or an association the portal lacks."""

from __future__ import annotations

import orjson
import pytest
from starlette.testclient import TestClient

from app.sandbox import Sandbox

from .sesam import settle


def objects(service: TestClient, kind: str, **params) -> list[dict]:
    response = service.get(f"/objects/{kind}", params=params)
    assert response.status_code == 200, f"{kind} {params}: {response.status_code} {response.text[:500]}"
    return orjson.loads(response.content)


def problem(service: TestClient, url: str, status: int) -> dict:
    response = service.get(url)
    assert response.status_code == status, f"{url}: {response.status_code} {response.text[:500]}"
    assert response.headers["content-type"] == "application/problem+json", response.headers
    return response.json()


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
    @pytest.mark.parametrize("url", ["/objects/Contacts", "/objects/2-", "/objects/p_cars",
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
        service.get("/objects/Bad")
        metrics = service.get("/metrics").text
        assert 'path="/objects/{objectType}",status="200"' in metrics, metrics
        assert 'path="/objects/{objectType}",status="400"' in metrics, metrics
