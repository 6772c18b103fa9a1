"""An upstream that does not bound itself: every HubSpot call the service makes is bounded
all the same, in size, in time and in pages, and each bound exceeded is a clear upstream
error through the HTTP surface, never a 500 and never an export that does not end.

The sandbox plays the misbehaving HubSpot with its fault kinds (trickle, endless, huge,
raw, cursor). Waits are bounded by pytest-timeout; what is asserted is the outcome (the
status, the problem, the HubSpot calls the sandbox counted), never how long it took.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.testclient import TestClient

from app.sync import associations
from sandbox import Fault, Sandbox

from .test_faults import assert_complete, assert_problem

MIB = 1024 * 1024
LIMIT_MB = 1  # HUBSPOT_MAX_ANSWER_MB in these tests: a 1 MiB answer is quick to send
DEEP = 100_000  # levels of a nested JSON answer; orjson refuses more than 1024
ENDLESS_SLACK = 32 * MIB  # what socket buffers may take in beyond the bound, at most


def count(sandbox: Sandbox, endpoint: str) -> int:
    """The HubSpot calls of ``endpoint`` the sandbox answered since its counters were reset."""
    return sandbox.request_counts()[endpoint]


def offset_now(service: TestClient) -> str:
    """An offset from a full export: an incremental export from it lists the deletions."""
    response = service.get("/get_contacts")
    assert response.status_code == 200, f"the full export: {response.status_code} {response.text[:300]}"
    return str(response.json()[-1]["_updated"])


class TestAnswerSize:
    """HUBSPOT_MAX_ANSWER_MB: an answer past it is a 502 that is not retried (HubSpot would
    send the same again), and the rest of it is not read."""

    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    def test_an_answer_of_exactly_the_limit_is_read(self, configure, sandbox: Sandbox,
                                                    chunked: bool) -> None:
        """A property catalogue of exactly HUBSPOT_MAX_ANSWER_MB is read, with or without a
        Content-Length: the export is complete."""
        service = configure(max_answer_mb=LIMIT_MB)
        headers = {"Transfer-Encoding": "chunked"} if chunked else None
        sandbox.inject(Fault("properties", kind="huge", size=LIMIT_MB * MIB, headers=headers))
        assert_complete(service.get("/get_contacts"), sandbox, f"an answer of {LIMIT_MB} MiB")

    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    def test_an_answer_one_byte_over_the_limit_is_a_502(self, configure, sandbox: Sandbox,
                                                        chunked: bool) -> None:
        """One byte more: a 502 "answer too large" naming the setting, after one call."""
        service = configure(max_answer_mb=LIMIT_MB)
        headers = {"Transfer-Encoding": "chunked"} if chunked else None
        sandbox.reset_counters()
        sandbox.inject(Fault("properties", kind="huge", size=LIMIT_MB * MIB + 1, headers=headers,
                             times=None))
        problem = assert_problem(service.get("/get_contacts"), 502, "HUBSPOT_MAX_ANSWER_MB",
                                 "one byte over the limit")
        assert problem["title"] == "HubSpot answer too large", f"one byte over: {problem}"
        assert count(sandbox, "properties") == 1, (
            f"{count(sandbox, 'properties')} catalogue calls: a too large answer was retried")

    @pytest.mark.timeout(60)
    def test_an_endless_answer_is_a_502_and_the_export_ends(self, configure,
                                                            sandbox: Sandbox) -> None:
        """A 200 whose chunked body never ends: the service stops reading at the bound, the
        export ends with a 502, and HubSpot wrote little more than the bound before the
        service hung up."""
        service = configure(max_answer_mb=LIMIT_MB)
        sandbox.reset_counters()
        sandbox.inject(Fault("properties", kind="endless", times=None))
        problem = assert_problem(service.get("/get_contacts"), 502, "HUBSPOT_MAX_ANSWER_MB",
                                 "an endless answer")
        assert "1048576 bytes" in problem["detail"], f"the bound is not named: {problem}"
        assert count(sandbox, "properties") == 1, f"{count(sandbox, 'properties')} catalogue calls"
        assert sandbox.answer_bytes < LIMIT_MB * MIB + ENDLESS_SLACK, (
            f"HubSpot wrote {sandbox.answer_bytes} bytes for a bound of {LIMIT_MB} MiB")


class TestAnswerDeadline:
    """HUBSPOT_CONNECT_TIMEOUT + HUBSPOT_READ_TIMEOUT bound a whole answer, headers and body,
    not each read: an answer trickled byte by byte is a 504, and the retries stay bounded."""

    @pytest.mark.timeout(60)
    def test_a_trickled_answer_is_a_504_after_bounded_calls(self, configure,
                                                            sandbox: Sandbox) -> None:
        """Every catalogue answer trickled one byte every 0.2 s (each read well within the
        read timeout, the status line and headers trickled too): a 504 saying the answer
        did not arrive whole, after max_retries + 1 calls."""
        service = configure(read_timeout=1, connect_timeout=0.5, max_retries=1)
        sandbox.reset_counters()
        sandbox.inject(Fault("properties", kind="trickle", seconds=0.2, times=None))
        problem = assert_problem(service.get("/get_contacts"), 504, "did not arrive whole",
                                 "a trickled answer")
        assert "HUBSPOT_READ_TIMEOUT" in problem["detail"], f"the setting is not named: {problem}"
        assert count(sandbox, "properties") == 2, (
            f"{count(sandbox, 'properties')} catalogue calls for max_retries=1")

    @pytest.mark.timeout(60)
    def test_one_trickled_answer_is_absorbed(self, configure, sandbox: Sandbox) -> None:
        """One trickled answer is given up at its deadline and asked again: the export is
        complete (a connection shut at the deadline harms no other call)."""
        service = configure(read_timeout=1, connect_timeout=0.5, max_retries=1)
        sandbox.inject(Fault("properties", kind="trickle", seconds=0.2, times=1))
        assert_complete(service.get("/get_contacts"), sandbox, "one trickled answer")


class TestRetryAfter:
    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("advice", ["inf", "1e999"])
    @pytest.mark.parametrize("status", [429, 423])
    def test_an_endless_retry_after_is_capped(self, service: TestClient, sandbox: Sandbox,
                                              advice: str, status: int) -> None:
        """`Retry-After: inf` (or one that overflows) on a 429 or 423: not a 500 but the
        usual upstream problem, with a finite Retry-After of at most a day; the service does
        not sleep on it (it waits HUBSPOT_MAX_RETRY_WAIT_SECONDS at most, so it stops)."""
        sandbox.reset_counters()
        sandbox.inject(Fault("properties", status=status, headers={"Retry-After": advice},
                             times=None))
        response = service.get("/get_contacts")
        expected = 503 if status == 429 else 502
        assert_problem(response, expected, str(status), f"{status} with Retry-After: {advice}")
        if status == 429:
            retry = response.headers.get("retry-after", "")
            assert retry.isdigit() and 1 <= int(retry) <= 86_400, (
                f"Retry-After: {advice} was passed on as {retry!r}")


class TestNestedAnswers:
    @pytest.mark.timeout(60)
    @pytest.mark.parametrize(("status", "expected"), [(503, 503), (500, 502), (200, 502)])
    def test_a_deeply_nested_answer_is_an_upstream_error(self, configure, sandbox: Sandbox,
                                                         status: int, expected: int) -> None:
        """An answer nested 100,000 deep (error or success): the upstream problem its status
        means (the body is no JSON the service reads), never a 500."""
        service = configure(max_retries=1)
        nested = '{"message": ' * DEEP + "1" + "}" * DEEP
        sandbox.inject(Fault("properties", kind="raw", status=status, raw=nested, times=None))
        says = "broken" if status == 200 else str(status)
        assert_problem(service.get("/get_contacts"), expected, says, f"a {status} nested {DEEP} deep")


class TestAssociationPaging:
    """A record's association pages: a cursor given twice, or more pages than any record has,
    is a 502 naming the types and the record, after a few calls, not a loop on the budget
    every export shares."""

    @staticmethod
    def first_company(service: TestClient) -> str:
        response = service.get("/objects/companies", params={"limit": 1})
        assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
        return str(response.json()[0]["id"])

    @staticmethod
    def page(company: str, after: str | None) -> dict:
        """A v4 answer for one company: one contact, and a further page if ``after``."""
        result: dict = {"from": {"id": company},
                        "to": [{"toObjectId": 1, "associationTypes": []}]}
        if after is not None:
            result["paging"] = {"next": {"after": after}}
        return {"status": "COMPLETE", "results": [result]}

    def export(self, service: TestClient) -> httpx.Response:
        return service.get("/objects/companies", params={"limit": 1, "associations": "contacts"})

    @pytest.mark.timeout(60)
    def test_a_repeated_cursor_is_a_502(self, service: TestClient, sandbox: Sandbox) -> None:
        company = self.first_company(service)
        sandbox.reset_counters()
        sandbox.inject(Fault("associations", status=200, body=self.page(company, "same"),
                             times=None))
        problem = assert_problem(self.export(service), 502, "twice", "a repeated cursor")
        assert "companies to contacts" in problem["detail"] and company in problem["detail"], (
            f"the types and the record are not named: {problem}")
        assert count(sandbox, "associations") == 2, (
            f"{count(sandbox, 'associations')} association calls for a cursor repeated at once")

    @pytest.mark.timeout(60)
    @pytest.mark.parametrize(("pages", "status"), [(3, 200), (4, 502)], ids=["at", "over"])
    def test_pages_up_to_the_limit_are_read(self, service: TestClient, sandbox: Sandbox,
                                            monkeypatch: pytest.MonkeyPatch, pages: int,
                                            status: int) -> None:
        """With at most 3 pages a record, a record of 3 pages is read whole; a 4th is a 502
        after 3 calls (HubSpot's paging that never ends: a new cursor every time)."""
        monkeypatch.setattr(associations, "MAX_PAGES_PER_RECORD", 3)
        company = self.first_company(service)
        sandbox.reset_counters()
        sandbox.inject(Fault("associations", kind="cursor", body=self.page(company, "c"),
                             times=pages - 1))
        sandbox.inject(Fault("associations", status=200, body=self.page(company, None)))
        response = self.export(service)
        if status == 200:
            assert response.status_code == 200, f"{pages} pages: {response.status_code} {response.text[:300]}"
            assert response.json()[0]["associations"]["contacts"], f"{pages} pages: {response.text[:300]}"
        else:
            assert_problem(response, 502, "past 3 pages", f"{pages} pages")
        assert count(sandbox, "associations") == min(pages, 3), (
            f"{count(sandbox, 'associations')} association calls for {pages} pages")


class TestArchivedListing:
    """The archived listing holds the lock every incremental export of its type needs: it
    ends with a clear error where HubSpot's paging does not, and nobody waits behind it
    for longer than its deadline."""

    REPEATED = {"results": [], "paging": {"next": {"after": "same"}}}

    @pytest.mark.timeout(60)
    def test_a_repeated_cursor_is_a_502_and_the_next_export_is_not_stuck(
            self, service: TestClient, sandbox: Sandbox) -> None:
        since = offset_now(service)
        sandbox.reset_counters()
        sandbox.inject(Fault("list", status=200, body=self.REPEATED, times=None))
        for attempt in ("first", "second"):
            problem = assert_problem(service.get("/get_contacts", params={"since": since}), 502,
                                     "twice", f"the {attempt} export of a repeated cursor")
            assert "archived contacts" in problem["detail"], f"the listing is not named: {problem}"
        assert count(sandbox, "list") == 4, f"{count(sandbox, 'list')} list calls for two exports"
        sandbox.clear_faults()
        response = service.get("/get_contacts", params={"since": since})
        assert response.status_code == 200, f"once the fault cleared: {response.status_code}"

    @pytest.mark.timeout(60)
    def test_a_listing_that_never_ends_stops_at_its_deadline(self, configure,
                                                             sandbox: Sandbox) -> None:
        """A new cursor on every page: the listing stops at HUBSPOT_ARCHIVED_LISTING_SECONDS
        with a 504, and the next incremental export of the type is served."""
        service = configure(archived_listing_seconds=1)
        since = offset_now(service)
        sandbox.inject(Fault("list", kind="cursor", body=self.REPEATED, times=None))
        problem = assert_problem(service.get("/get_contacts", params={"since": since}), 504,
                                 "HUBSPOT_ARCHIVED_LISTING_SECONDS", "a listing that never ends")
        assert "archived contacts" in problem["detail"], f"the listing is not named: {problem}"
        sandbox.clear_faults()
        response = service.get("/get_contacts", params={"since": since})
        assert response.status_code == 200, f"after the endless listing: {response.status_code}"

    @pytest.mark.timeout(60)
    def test_an_export_behind_an_overrunning_listing_is_a_503(self, configure,
                                                              sandbox: Sandbox) -> None:
        """Two incremental exports at once while the listing's one call takes longer than
        HUBSPOT_ARCHIVED_LISTING_SECONDS: the one that lists is served; the one waiting for
        it answers a 503 with Retry-After once the deadline passed, instead of hanging."""
        service = configure(archived_listing_seconds=1)
        since = offset_now(service)
        sandbox.inject(Fault("list", kind="hang", seconds=4))
        started = threading.Barrier(2)

        def export() -> httpx.Response:
            started.wait(timeout=10)
            return service.get("/get_contacts", params={"since": since})

        with ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(lambda _: export(), range(2)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 503], f"two exports behind one listing: {statuses}"
        waiting = next(r for r in responses if r.status_code == 503)
        assert_problem(waiting, 503, "still being listed", "the export behind the listing")


class TestSearchWalk:
    """A search whose answers make no progress (a scan page all on one millisecond, whose
    read by id finds nothing, again and again) ends with a 502, not a loop."""

    MODIFIED = "2024-05-31T23:00:00.000Z"  # well before the sandbox's clock minus settle

    @pytest.mark.timeout(60)
    def test_answers_without_progress_are_a_502(self, service: TestClient,
                                                sandbox: Sandbox) -> None:
        results = [{"id": str(i), "properties": {"lastmodifieddate": self.MODIFIED}}
                   for i in (1, 2)]
        scan = {"total": 2, "results": results, "paging": {"next": {"after": "2"}}}
        tie = {"total": 0, "results": []}
        sandbox.reset_counters()
        for _ in range(10):
            sandbox.inject(Fault("search", status=200, body=scan))
            sandbox.inject(Fault("search", status=200, body=tie))
        assert_problem(service.get("/get_contacts"), 502, "no progress",
                       "search answers without progress")
        assert count(sandbox, "search") <= 4, f"{count(sandbox, 'search')} search calls"
