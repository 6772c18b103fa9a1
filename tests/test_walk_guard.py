"""The walk's assumption of search, guarded: an answer whose values contradict its own query
(its sort order, or its filter) is HubSpot's failure, a 502, never a silent skip.

The walk ends a pass at the first result beyond the horizon and goes on from the last key it
emitted; both rest on search returning the values it filtered and sorted on (docs/design.md,
"What the walk assumes of search"). Each test crafts one search answer (a sandbox fault on
"search" with that body) that breaks the assumption in one way; before the guard, every one
of them was taken (sorted into place, or dropped) and the export answered 200.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from app.timestamps import format_ms
from sandbox import Fault, Sandbox

from .sesam import SETTLE_SECONDS, T0
from .test_untrusted_answers import problem_of

HORIZON_MS = T0 - int(SETTLE_SECONDS * 1000)  # the sandbox's clock is frozen at T0
M = T0 - 3_600_000  # a millisecond an hour before, where the crafted records sit


def contact(record_id: int, ms: int) -> dict[str, Any]:
    """A contact as search returns it, modified on ``ms``."""
    return {"id": str(record_id), "archived": False,
            "properties": {"lastmodifieddate": format_ms(ms), "hs_object_id": str(record_id),
                           "firstname": f"c{record_id}"}}


def answer(*records: dict[str, Any], more: bool = False, total: int | None = None) -> Fault:
    """One search answer of ``records``, in this order (``more``: it says results follow)."""
    body: dict[str, Any] = {"total": len(records) if total is None else total,
                            "results": list(records)}
    if more:
        body["paging"] = {"next": {"after": str(len(records))}}
    return Fault(endpoint="search", kind="status", status=200, body=body, times=1)


def refused(response: Any, record_id: int, reason: str, context: str) -> None:
    """The export is a 502 "HubSpot answer unusable" that names ``record_id`` and says
    ``reason``."""
    problem = problem_of(response, 502, context)
    assert problem["title"] == "HubSpot answer unusable", f"{context}: {problem}"
    detail = problem["detail"]
    assert f"record {record_id} " in detail and reason in detail, f"{context}: {detail}"


@pytest.fixture(name="one_at_a_time")
def _one_at_a_time(configure) -> TestClient:
    """One search in flight: each crafted answer goes to the query it is meant for."""
    return configure(search_concurrency=1)


class TestOrder:
    def test_a_scan_whose_times_go_backwards(self, service: TestClient, sandbox: Sandbox) -> None:
        """A scan is sorted by modification time: a record modified before the one ahead of
        it in the same answer is refused (before: sorted into place, a 200)."""
        sandbox.inject(answer(contact(101, M + 2), contact(102, M + 1), contact(103, M + 3)))
        refused(service.get("/get_contacts"), 102, "goes backwards", "times go backwards")

    def test_a_tie_in_a_scan_may_come_in_any_order_of_id(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """HubSpot sorts by one property: ids within a millisecond come in any order, and
        that is no contradiction."""
        sandbox.inject(answer(contact(103, M), contact(101, M), contact(102, M + 1)))
        response = service.get("/get_contacts")
        assert response.status_code == 200, response.text[:500]
        assert [e["id"] for e in response.json()] == ["101", "103", "102"], response.text[:500]

    def test_a_read_by_id_whose_ids_go_backwards(self, one_at_a_time: TestClient,
                                                  sandbox: Sandbox) -> None:
        """A first page all on one millisecond is read by id; that answer, sorted by id,
        lists 105 before 104: refused (before: sorted into place, a 200)."""
        sandbox.inject(answer(contact(101, M), contact(102, M), more=True, total=9))
        sandbox.inject(answer(contact(101, M), contact(105, M), contact(104, M)))
        refused(one_at_a_time.get("/get_contacts"), 104, "goes backwards", "ids go backwards")


class TestFilter:
    def test_a_scan_result_before_its_lower_bound(self, service: TestClient,
                                                  sandbox: Sandbox) -> None:
        """An export since M asks for records modified on M or later: one modified on the
        millisecond before is refused (before: dropped without a word, a 200)."""
        sandbox.inject(answer(contact(101, M - 1), contact(102, M), contact(103, M + 1)))
        refused(service.get("/get_contacts", params={"since": str(M)}), 101, "is not after",
                "before the lower bound")

    def test_a_scan_result_on_the_key_it_resumes_after(
            self, one_at_a_time: TestClient, sandbox: Sandbox) -> None:
        """The second query goes on after the last key emitted (GT): an answer holding that
        very key again is refused (before: dropped, a 200)."""
        sandbox.inject(answer(contact(101, M), contact(102, M + 1), contact(103, M + 2),
                              more=True, total=6))
        sandbox.inject(answer(contact(102, M + 1), contact(103, M + 2), contact(104, M + 3)))
        refused(one_at_a_time.get("/get_contacts"), 102, "is not after", "the resume key again")

    def test_a_read_by_id_off_its_millisecond(self, one_at_a_time: TestClient,
                                              sandbox: Sandbox) -> None:
        """A read by id asks for one millisecond (EQ): a record on another is refused
        (before: dropped, a 200)."""
        sandbox.inject(answer(contact(101, M), contact(102, M), more=True, total=9))
        sandbox.inject(answer(contact(101, M), contact(102, M), contact(103, M + 1)))
        refused(one_at_a_time.get("/get_contacts"), 103, "is not on", "off the millisecond")

    def test_a_scan_result_beyond_the_horizon_it_sent(
            self, one_at_a_time: TestClient, sandbox: Sandbox) -> None:
        """The first query is open-ended (the horizon is not known yet); the next one sends
        it (LTE). A result beyond it then contradicts the filter and is refused (before:
        taken as the end of the pass, a 200 that ends there)."""
        sandbox.inject(answer(contact(101, M), contact(102, M + 1), contact(103, M + 2),
                              more=True, total=6))
        sandbox.inject(answer(contact(103, M + 2), contact(104, HORIZON_MS + 1)))
        refused(one_at_a_time.get("/get_contacts"), 104, "beyond the horizon", "beyond LTE")
        searches = [r["body"] for r in sandbox.request_log if r["path"].endswith("/search")]
        bounds = [f for group in searches[1]["filterGroups"] for f in group["filters"]
                  if f["operator"] == "LTE"]
        assert bounds and all(f["value"] == str(HORIZON_MS) for f in bounds), searches[1]

    def test_the_open_ended_first_query_may_go_beyond(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """The first query sends no upper bound: a result beyond the horizon there is no
        contradiction but the end of the pass (a 200 without it)."""
        sandbox.inject(answer(contact(101, M), contact(102, HORIZON_MS + 1)))
        response = service.get("/get_contacts")
        assert response.status_code == 200, response.text[:500]
        assert [e["id"] for e in response.json()] == ["101"], response.text[:500]
