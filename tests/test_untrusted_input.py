"""Findings of a red-team trial on what the service reads from HubSpot and its callers:
HubSpot's schemas list is untrusted input (its ids become URL paths, its names keys and
404 text), a failing schemas read is remembered rather than repeated for every request,
and the query's `limit` is a plain number of ASCII digits."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from app.hubspot.client import SCHEMAS_ATTEMPTS
from app.object_types import LISTED_CHARS, LISTED_TYPES, STANDARD_IDS, STANDARD_NAMES
from sandbox import Sandbox
from sandbox.faults import Fault
from sandbox.objects import CUSTOM_TYPES
from sandbox.portal import PORTAL_ID

from .sesam import T0

# The sandbox's own custom object, as its schemas list it: served beside the crafted entries.
CARS = {"objectTypeId": CUSTOM_TYPES[0].type_id, "name": "cars", "fullyQualifiedName": f"p{PORTAL_ID}_cars"}


@pytest.fixture(name="sandbox")
def _small_sandbox() -> Sandbox:
    return Sandbox(contacts=60, seed=7, now_ms=T0)


def schemas_answer(sandbox: Sandbox, *schemas: dict) -> None:
    """HubSpot's schemas API answers ``schemas`` (and nothing else) from now on."""
    sandbox.inject(Fault("schemas", status=200, body={"results": list(schemas)}, times=None))


def contact_ids(service: TestClient) -> list[str]:
    response = service.get("/get_contacts")
    assert response.status_code == 200, f"/get_contacts: {response.status_code} {response.text[:300]}"
    return [entity["_id"] for entity in response.json()]


class TestSchemasAreUntrusted:
    def test_a_custom_object_cannot_take_over_a_standard_type(self, service: TestClient,
                                                              sandbox: Sandbox) -> None:
        """A schema whose objectTypeId is `contacts`, or whose name is a standard type's, is
        not a custom object: naming it is a 404, and /get_contacts still exports contacts
        (before, the first pipe to name it configured the contacts export as a custom
        object's until the service restarted)."""
        expected = contact_ids(service)
        schemas_answer(sandbox, {"objectTypeId": "contacts", "name": "evil", "fullyQualifiedName": "p9_evil"},
                       {"objectTypeId": "2-5", "name": "deals", "fullyQualifiedName": "p9_deals"},
                       {"objectTypeId": "2-6", "name": "Contacts", "fullyQualifiedName": "p9_contacts"},
                       CARS)
        fresh = TestClient(service.app, raise_server_exceptions=False)
        for name in ("p9_evil", "p9_deals", "p9_contacts"):
            response = fresh.get(f"/objects/{name}")
            assert response.status_code == 404, f"{name}: {response.status_code} {response.text[:300]}"
            assert name not in response.json()["detail"].split("It has:")[1], (
                f"{name} is listed as a type: {response.text[:500]}")
        assert contact_ids(fresh) == expected, "/get_contacts no longer exports the contacts"
        assert fresh.get(f"/objects/{CARS['fullyQualifiedName']}", params={"limit": 1}).status_code == 200, (
            "a well-formed custom object beside them must still resolve")

    @pytest.mark.parametrize("type_id", ["../../../../_sandbox/x?y=", "2-1/../../contacts", "2-1?a=b",
                                         "2-1234567890123", "0-1", "2-", "2-1\n"], ids=repr)
    def test_an_object_type_id_is_never_a_path_of_hubspots_choosing(
            self, service: TestClient, sandbox: Sandbox, type_id: str) -> None:
        """An objectTypeId that is not `2-` and up to 12 digits is not used: the service
        sends its token to no path but those of the CRM API (before, `../../../../_sandbox/x?y=`
        sent an authenticated request to another path of the upstream host)."""
        schemas_answer(sandbox, {"objectTypeId": type_id, "name": "trap", "fullyQualifiedName": "p9_trap"})
        sandbox.reset_counters()
        response = service.get("/objects/p9_trap")
        assert response.status_code == 404, f"{type_id!r}: {response.status_code} {response.text[:300]}"
        paths = [entry["path"] for entry in sandbox.request_log]
        assert paths == ["/crm/v3/schemas"], f"{type_id!r}: the service asked HubSpot for {paths}"

    @pytest.mark.parametrize("entry", [
        {"objectTypeId": "2-8", "name": "line\nsplit", "fullyQualifiedName": "p9_split"},
        {"objectTypeId": "2-8", "name": "x" * 101, "fullyQualifiedName": "p9_split"},
        {"objectTypeId": "2-8", "name": "split", "fullyQualifiedName": "p9_split\nforged"},
        {"objectTypeId": "2-8", "name": "split", "fullyQualifiedName": "../p9_split"},
        {"objectTypeId": "2-8", "name": "_split", "fullyQualifiedName": "p9_split"},
    ], ids=["newline in name", "long name", "newline in qualified name", "path in qualified name",
            "name without a letter first"])
    def test_a_malformed_entry_is_skipped_and_logged_once_on_one_line(
            self, service: TestClient, sandbox: Sandbox, entry: dict,
            caplog: pytest.LogCaptureFixture) -> None:
        """An entry whose name or fully qualified name is not in HubSpot's format is skipped
        (its names are 404s, and not listed in one), and logged once, on one line, with its
        values escaped and cut short, however often the schemas are read."""
        schemas_answer(sandbox, entry, CARS)
        with caplog.at_level(logging.WARNING, logger="app.object_types"):
            for name in ("p9_split", "2-8", "p9_split"):
                response = service.get(f"/objects/{name}")
                assert response.status_code == 404, f"{entry}: {name} is {response.status_code}"
                listed = response.json()["detail"].split("It has:")[1]
                assert "2-8" not in listed, f"{entry} is listed: {response.text[:500]}"
            assert service.get(f"/objects/{CARS['objectTypeId']}", params={"limit": 1}).status_code == 200, (
                "a well-formed custom object beside it must still resolve")
        skipped = [r.getMessage() for r in caplog.records if r.name == "app.object_types"]
        assert len(skipped) == 1, f"{entry}: logged {len(skipped)} times: {skipped}"
        assert "\n" not in skipped[0] and "'2-8'" in skipped[0] and len(skipped[0]) < 600, skipped[0]

    def test_the_404_lists_a_bounded_number_of_types(self, service: TestClient, sandbox: Sandbox) -> None:
        """A portal of 10,000 custom objects with long names: an unknown name is a 404 that
        lists the first types and says how many more there are, a few KB whatever the
        portal (before, every 404 was 10 MB, and logged whole)."""
        many = [{"objectTypeId": f"2-{n}", "name": f"{'n' * 90}{n}", "fullyQualifiedName": f"p9_{'n' * 90}{n}"}
                for n in range(1, 10_001)]
        schemas_answer(sandbox, *many)
        response = service.get("/objects/2-999999")
        assert response.status_code == 404, f"{response.status_code} {response.text[:300]}"
        detail = response.json()["detail"]
        assert len(detail) < LISTED_CHARS + 200, f"a 404 of {len(detail)} characters"
        listed = detail.split("It has: ")[1]
        first = ", ".join(f"{name} ({STANDARD_IDS[name]})" for name in STANDARD_NAMES[:3])
        assert listed.startswith(first), f"standard types first, with their objectTypeIds: {listed[:200]}"
        shown = listed.count("(2-")
        assert 0 < shown and len(STANDARD_NAMES) + shown <= LISTED_TYPES, f"{shown} custom objects listed"
        assert listed.endswith(f", and {10_000 - shown} more."), f"the 404 ends {listed[-100:]!r}"


class TestSchemasFailuresAreRemembered:
    @pytest.mark.parametrize("status", [403, 500])
    def test_a_failed_read_costs_one_call_not_one_per_request(
            self, service: TestClient, sandbox: Sandbox, status: int) -> None:
        """With the schemas scope missing (403) or HubSpot failing (500), the schemas are
        read once (with its retries) and the failure answers the next requests, the same
        error, without asking HubSpot (before, every request read them again: 9 calls and
        about 93 s each, with the default retries). Standard types are not affected."""
        sandbox.inject(Fault("schemas", status=status, times=None))
        sandbox.reset_counters()
        first = service.get("/objects/2-1")
        calls = sandbox.request_counts()["schemas"]
        assert first.status_code in (502, 503), f"{status}: {first.status_code} {first.text[:300]}"
        answers = [service.get(f"/objects/{name}") for name in ("2-2", "p9_cars", "2-1")]
        for answer in answers:
            assert (answer.status_code, answer.json()["detail"]) == (first.status_code, first.json()["detail"]), (
                f"{status}: {answer.status_code} {answer.text[:300]} after {first.text[:300]}")
        assert sandbox.request_counts()["schemas"] == calls, (
            f"{status}: {sandbox.request_counts()['schemas']} schemas calls after {calls} for the first request")
        assert service.get("/objects/deals", params={"limit": 1}).status_code == 200, "a standard type failed"


    def test_a_failing_read_is_retried_once_not_by_the_export_schedule(
            self, configure: Callable[..., TestClient], sandbox: Sandbox) -> None:
        """The schemas read is on the path of the request that names a custom object: HubSpot
        failing costs that request SCHEMAS_ATTEMPTS calls, not the export's whole retry
        schedule (HUBSPOT_MAX_RETRIES, 9 calls and about 93 s by default)."""
        service = configure(max_retries=5)
        sandbox.inject(Fault("schemas", status=500, times=None))
        sandbox.reset_counters()
        answer = service.get("/objects/2-1")
        assert answer.status_code == 502, f"{answer.status_code} {answer.text[:300]}"
        assert sandbox.request_counts()["schemas"] == SCHEMAS_ATTEMPTS, sandbox.request_counts()


class TestLimitIsPlainDigits:
    @pytest.mark.parametrize("query", ["limit=5%0A", "limit=%205", "limit=5%20", "limit=%2B5", "limit=5_0",
                                       "limit=%D9%A5", "limit=%EF%BC%95"],
                             ids=["newline", "leading space", "trailing space", "plus", "underscore",
                                  "arabic-indic digit", "fullwidth digit"])
    @pytest.mark.parametrize("path", ["/get_contacts", "/objects/deals"])
    def test_anything_but_ascii_digits_is_a_400_naming_limit(self, service: TestClient, sandbox: Sandbox,
                                                             path: str, query: str) -> None:
        """`limit` is ASCII digits and nothing else: a value Python's int() would read
        (`5_0` as 50, a fullwidth or Arabic-Indic 5 as 5, ` 5` or `5\\n` as 5) is refused with
        a problem+json 400 naming the parameter, before HubSpot is asked."""
        sandbox.reset_counters()
        response = service.get(f"{path}?{query}")
        assert response.status_code == 400, f"{path}?{query}: {response.status_code} {response.text[:300]}"
        assert response.headers["content-type"] == "application/problem+json", response.headers
        assert "query parameter 'limit' is invalid" in response.json()["detail"], response.text
        assert sandbox.request_log == [], f"{path}?{query} asked HubSpot: {sandbox.request_log[:3]}"
