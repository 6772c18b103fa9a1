"""HubSpot as it really answers: what a run against its recorded answers showed.

Two halves. What the service does with HubSpot's real failures: every 5xx is passing and
retried, Cloudflare's 52x with its HTML page included; HubSpot's 477 "Migration in
Progress" is a 503 that keeps HubSpot's Retry-After; the correlation id comes from the
`X-HubSpot-Correlation-Id` header when the body has none. And the sandbox answering in the
shapes the recordings and HubSpot's published descriptions show, so that a client tested
against it is not tested against a friendlier HubSpot: the header on every answer, numeric
`toObjectId`, a 207's full `context`, records' `url`, datetime values in epoch ms.

The expected field sets are written here from HubSpot's published API descriptions
(github.com/HubSpot/HubSpot-public-api-spec-collection), named at each; the descriptions
themselves are not copied in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any, Callable

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from app.hubspot.client import CORRELATION_HEADER
from app.timestamps import parse_timestamp
from sandbox import Fault, Sandbox

from .crm import Crm, serve

CORRELATION = "7d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f"  # a UUID, as HubSpot's are
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RETRY_MESSAGE = "HubSpot call failed, retrying"
RETRY_METRIC = re.compile(r'hubspot_sesam_upstream_retries_total\{endpoint="search",'
                          r'object_type="contacts"\} (\d+)\.0')
CLOUDFLARE = [502, 520, 521, 522, 524]  # the 5xx the CDN in front of HubSpot answers with a page
MIGRATION = 477
MIGRATION_ADVICE = 3600  # s: the Retry-After of HubSpot's recorded 477s
SHORT_ADVICE = 1  # s: a Retry-After a test can wait for
MAX_RETRIES = 2

# PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json, components.schemas.SimplePublicObject
# (and SimplePublicObjectWithAssociations, the list API's, adds "associations"):
SIMPLE_PUBLIC_OBJECT = {"archived", "archivedAt", "createdAt", "id", "objectWriteTraceId", "properties",
                        "propertiesWithHistory", "updatedAt", "url", "warnings", "associations"}
SIMPLE_PUBLIC_OBJECT_REQUIRED = {"archived", "createdAt", "id", "properties", "updatedAt"}
# PublicApiSpecs/CRM/Associations/Rollouts/130902/v4/associations.json: PublicAssociationMultiWithLabel
# and MultiAssociatedObjectWithLabel (all of whose fields are required).
ASSOCIATION_RESULT = {"from", "to", "paging"}
ASSOCIATED_OBJECT = {"associationTypes", "toObjectId"}
# The same file, StandardError: the entries of a 207's "errors" (required fields; it also
# allows "id"). HubSpot's answers add "correlationId" as its Error does.
STANDARD_ERROR_REQUIRED = {"category", "context", "errors", "links", "message", "status"}
STANDARD_ERROR = STANDARD_ERROR_REQUIRED | {"id", "subCategory", "correlationId"}
# A 207's context as HubSpot's recorded answers give it (the description types context only as
# a map of string lists).
NO_ASSOCIATIONS_CONTEXT = {"fromObjectId", "fromObjectType", "toObjectType"}
# The error of PublicApiSpecs/CRM/Contacts/Rollouts/424/v3/contacts.json, components.schemas.Error:
ERROR_REQUIRED = {"category", "correlationId", "message"}


def export(service: TestClient, sandbox: Sandbox, fault: Fault,
           caplog: pytest.LogCaptureFixture) -> httpx.Response:
    """A full /get_contacts export while ``fault`` is armed, with fresh counts and log."""
    sandbox.reset_counters()
    caplog.clear()
    sandbox.inject(fault)
    with caplog.at_level(logging.WARNING):
        response = service.get("/get_contacts")
    sandbox.clear_faults()
    return response


def searches(sandbox: Sandbox) -> list[int]:
    """The statuses the sandbox answered to searches of contacts, in order."""
    return [r["status"] for r in sandbox.request_log if r["path"].endswith("/contacts/search")]


def retried_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits the service planned before each retry it logged (not time measured)."""
    return [r.wait_seconds for r in caplog.records if r.getMessage() == RETRY_MESSAGE]


def retries_counted(service: TestClient) -> int:
    """What /metrics counts as retried searches of contacts."""
    found = RETRY_METRIC.search(service.get("/metrics").text)
    return int(found.group(1)) if found else 0


def assert_complete(response: httpx.Response, sandbox: Sandbox, context: str) -> None:
    """A 200 export of every live contact, once each."""
    assert response.status_code == 200, f"{context}: {response.status_code} {response.text[:300]}"
    ids = [entity["_id"] for entity in orjson.loads(response.content)]
    assert sorted(ids) == sorted(sandbox.live()), (
        f"{context}: {len(ids)} entities for {len(sandbox.live())} live contacts")


def problem_of(response: httpx.Response, status: int, context: str) -> dict[str, Any]:
    """The problem+json of ``response``, which must have ``status``."""
    assert response.status_code == status, (
        f"{context}: {response.status_code} instead of {status}: {response.text[:300]}")
    assert response.headers["content-type"] == "application/problem+json", (
        f"{context}: {response.headers}")
    problem: dict[str, Any] = response.json()
    return problem


# -- the service, as HubSpot really fails ------------------------------------------------


class TestCloudflarePages:
    @pytest.mark.parametrize("status", CLOUDFLARE)
    def test_one_page_then_success_is_retried(self, service: TestClient, sandbox: Sandbox,
                                              status: int, caplog) -> None:
        """One 5xx with Cloudflare's HTML page (a 524 is Cloudflare's timeout) and then
        HubSpot's answer: the export is complete, after one retry that /metrics counts
        (before, any 5xx but 500/502/503/504 was "HubSpot rejected the request" at once)."""
        before = retries_counted(service)
        response = export(service, sandbox, Fault("search", kind="html", status=status), caplog)
        assert_complete(response, sandbox, f"one {status} page")
        assert searches(sandbox)[:2] == [status, 200], f"{status}: searches {searches(sandbox)}"
        assert retries_counted(service) == before + 1, (
            f"{status}: upstream_retries went from {before} to {retries_counted(service)}")

    @pytest.mark.parametrize("status", CLOUDFLARE)
    def test_pages_beyond_the_retries_are_hubspot_failed(self, configure: Callable[..., TestClient],
                                                         sandbox: Sandbox, status: int,
                                                         caplog) -> None:
        """Every search a Cloudflare page: a 502 "HubSpot failed" naming HubSpot's status,
        after max_retries + 1 calls; not "rejected", which says retrying cannot help."""
        service = configure(max_retries=MAX_RETRIES)
        response = export(service, sandbox, Fault("search", kind="html", status=status, times=None),
                          caplog)
        problem = problem_of(response, 502, f"{status} pages")
        assert problem["title"] == "HubSpot failed", f"{status}: {problem}"
        assert f"HubSpot answered {status}" in problem["detail"], f"{status}: {problem}"
        assert "<" not in problem["detail"], f"{status}: the page's HTML is repeated: {problem}"
        assert searches(sandbox) == [status] * (MAX_RETRIES + 1), (
            f"{status}: searches {searches(sandbox)} for max_retries={MAX_RETRIES}")

    def test_the_correlation_id_comes_from_the_header(self, service: TestClient,
                                                      sandbox: Sandbox, caplog) -> None:
        """An HTML page has no correlationId in it: the problem carries the one of
        HubSpot's `X-HubSpot-Correlation-Id` header, for HubSpot's support."""
        fault = Fault("search", kind="html", status=524, times=None,
                      headers={CORRELATION_HEADER: CORRELATION})
        problem = problem_of(export(service, sandbox, fault, caplog), 502, "524 pages")
        assert problem.get("correlationId") == CORRELATION, (
            f"the header's correlation id is not in the problem: {problem}")


class TestMigration:
    def test_a_migration_is_retried_after_its_retry_after(self, service: TestClient,
                                                          sandbox: Sandbox, caplog) -> None:
        """One 477 "Migration in Progress" with a Retry-After the retries can wait for: the
        export is complete, retried once, after HubSpot's wait rather than the backoff
        (before, a 477 was a 502 after one call)."""
        fault = Fault("search", kind="migration", headers={"Retry-After": str(SHORT_ADVICE)})
        response = export(service, sandbox, fault, caplog)
        assert_complete(response, sandbox, "one 477")
        assert searches(sandbox)[:2] == [MIGRATION, 200], f"searches {searches(sandbox)}"
        assert retried_waits(caplog) == [SHORT_ADVICE], (
            f"planned waits {retried_waits(caplog)} for Retry-After: {SHORT_ADVICE}")

    def test_a_long_migration_is_a_503_with_its_retry_after(self, service: TestClient,
                                                            sandbox: Sandbox, caplog) -> None:
        """A 477 whose Retry-After (an hour) is longer than HUBSPOT_MAX_RETRY_WAIT_SECONDS:
        the export does not sleep on it; it answers 503 "HubSpot migration in progress" with
        HubSpot's Retry-After, so Sesam asks again then."""
        fault = Fault("search", kind="migration", times=None)
        problem = problem_of(export(service, sandbox, fault, caplog), 503, "persistent 477")
        assert problem["title"] == "HubSpot migration in progress", problem
        assert f"HubSpot answered {MIGRATION}" in problem["detail"], problem
        assert UUID.fullmatch(problem.get("correlationId", "")), f"no correlationId: {problem}"
        assert searches(sandbox) == [MIGRATION], f"searches {searches(sandbox)}: it slept on an hour"

    def test_a_migration_beyond_the_retries_is_a_503(self, configure: Callable[..., TestClient],
                                                     sandbox: Sandbox, caplog) -> None:
        """477 on every search with a short Retry-After: retried max_retries times, each
        after HubSpot's wait, then the 503 with that Retry-After."""
        service = configure(max_retries=MAX_RETRIES)
        fault = Fault("search", kind="migration", times=None,
                      headers={"Retry-After": str(SHORT_ADVICE)})
        response = export(service, sandbox, fault, caplog)
        problem = problem_of(response, 503, "477 beyond the retries")
        assert problem["title"] == "HubSpot migration in progress", problem
        assert response.headers.get("retry-after") == str(SHORT_ADVICE), response.headers
        assert searches(sandbox) == [MIGRATION] * (MAX_RETRIES + 1), f"searches {searches(sandbox)}"
        assert retried_waits(caplog) == [SHORT_ADVICE] * MAX_RETRIES, retried_waits(caplog)


# -- the sandbox, answering like the recordings --------------------------------------------


@pytest.fixture(name="crm")
def _crm(sandbox: Sandbox) -> Iterator[Crm]:
    with serve(sandbox) as crm:
        yield crm


def batch_read(crm: Crm, source: str, target: str, ids: list[str]) -> Any:
    return crm.post(f"/crm/v4/associations/{source}/{target}/batch/read",
                    {"inputs": [{"id": cid} for cid in ids]})


class TestSandboxShapes:
    def test_every_answer_has_a_correlation_id(self, crm: Crm, sandbox: Sandbox) -> None:
        """HubSpot's `X-HubSpot-Correlation-Id` (a UUID) on answers and errors alike; an
        error body's correlationId is the header's."""
        answers = {
            "search": crm.search_in("contacts", {"limit": 1}),
            "list": crm.get("/crm/v3/objects/companies", limit=1),
            "properties": crm.get("/crm/v3/properties/deals"),
            "unknown type (400)": crm.get("/crm/v3/objects/widgets"),
            "no route (404)": crm.get("/crm/v3/nothing"),
        }
        for what, response in answers.items():
            header = response.headers.get(CORRELATION_HEADER, "")
            assert UUID.fullmatch(header), f"{what}: {response.status_code} {dict(response.headers)}"
            if response.status_code >= 400:
                body = response.json()
                assert ERROR_REQUIRED <= body.keys(), f"{what}: {body}"
                assert body["correlationId"] == header, f"{what}: body {body} header {header}"
        ids = {response.headers[CORRELATION_HEADER] for response in answers.values()}
        assert len(ids) == len(answers), f"one correlation id per answer: {ids}"

    @pytest.mark.parametrize("status", CLOUDFLARE)
    def test_an_html_fault_is_cloudflares_page(self, crm: Crm, sandbox: Sandbox, status: int) -> None:
        """An "html" fault answers its 5xx with an HTML page, no JSON, and the header."""
        sandbox.inject(Fault("search", kind="html", status=status))
        response = crm.search_in("contacts", {"limit": 1})
        assert response.status_code == status, response.status_code
        assert response.headers["Content-Type"].startswith("text/html"), dict(response.headers)
        assert response.text.startswith("<!DOCTYPE html>") and str(status) in response.text, response.text
        assert UUID.fullmatch(response.headers.get(CORRELATION_HEADER, "")), dict(response.headers)
        assert crm.search_in("contacts", {"limit": 1}).status_code == 200, "the fault hit once"

    def test_an_html_fault_takes_only_a_5xx(self) -> None:
        with pytest.raises(ValueError, match="5xx"):
            Fault("search", kind="html", status=404)

    def test_a_migration_fault_is_hubspots_477(self, crm: Crm, sandbox: Sandbox) -> None:
        """A "migration" fault: 477 with `Retry-After: 3600` and HubSpot's JSON error."""
        sandbox.inject(Fault("list", kind="migration"))
        response = crm.get("/crm/v3/objects/contacts", limit=1)
        assert response.status_code == MIGRATION, response.status_code
        assert response.headers.get("Retry-After") == str(MIGRATION_ADVICE), dict(response.headers)
        body = response.json()
        assert ERROR_REQUIRED <= body.keys() and "Migration" in body["message"], body
        assert body["correlationId"] == response.headers[CORRELATION_HEADER], body

    def test_records_have_the_fields_of_simple_public_object(self, crm: Crm, sandbox: Sandbox) -> None:
        """Records of search, the list API (live and archived) and a read have HubSpot's
        fields, `url` included, and no other."""
        found = crm.search_in("contacts", {"limit": 5}).json()["results"]
        listed = crm.get("/crm/v3/objects/deals", limit=5).json()["results"]
        archived = crm.get("/crm/v3/objects/contacts", limit=5, archived="true").json()["results"]
        company = next(iter(sandbox.live("companies")))
        read = crm.get(f"/crm/v3/objects/companies/{company}").json()
        for what, records in (("search", found), ("list", listed), ("archived", archived), ("read", [read])):
            assert records, f"{what}: no records to check"
            for record in records:
                assert SIMPLE_PUBLIC_OBJECT_REQUIRED <= record.keys() <= SIMPLE_PUBLIC_OBJECT, (
                    f"{what}: {sorted(record)}")
                assert record["url"].startswith("https://") and record["url"].endswith("/" + record["id"]), (
                    f"{what}: url {record['url']!r}")

    def test_v4_batch_reads_have_hubspots_shapes(self, crm: Crm, sandbox: Sandbox) -> None:
        """A v4 batch read: results and their `to` entries with HubSpot's fields, a numeric
        `toObjectId`, and a 207 whose errors are StandardErrors naming the id and both types."""
        deal = next(cid for cid in sandbox.live("deals") if sandbox.associations("deals", cid, "contacts"))
        body = batch_read(crm, "deals", "contacts", [deal, "999999999"]).json()
        result = body["results"][0]
        assert result.keys() <= ASSOCIATION_RESULT, sorted(result)
        for to in result["to"]:
            assert to.keys() == ASSOCIATED_OBJECT, to
            assert type(to["toObjectId"]) is int, f"toObjectId is a number in HubSpot's answers: {to}"
        [error] = body["errors"]
        assert STANDARD_ERROR_REQUIRED <= error.keys() <= STANDARD_ERROR, sorted(error)
        assert error["context"].keys() == NO_ASSOCIATIONS_CONTEXT, error["context"]
        assert error["context"]["fromObjectId"] == ["999999999"], error["context"]
        assert (error["context"]["fromObjectType"], error["context"]["toObjectType"]) == (["deal"], ["contact"]), (
            f"HubSpot names the types by their singular names, as in its message: {error['context']}")

    def test_some_datetime_values_are_epoch_ms(self, crm: Crm, sandbox: Sandbox) -> None:
        """Datetime properties come as ISO-8601 on most records and as epoch milliseconds
        in a string on some, as HubSpot answers them; the service's parser reads both."""
        names = [p["name"] for p in crm.get("/crm/v3/properties/deals").json()["results"]
                 if p["type"] == "datetime"]
        records = crm.get("/crm/v3/objects/deals", limit=100, properties=",".join(names)).json()["results"]
        values = [value for record in records for name, value in record["properties"].items()
                  if name in names and value is not None]
        epoch = [value for value in values if value.isdigit()]
        assert epoch and len(epoch) < len(values), f"{len(epoch)} epoch-ms values of {len(values)}"
        for value in values:
            assert parse_timestamp(value) > 0, value
