"""HubSpot's answers as untrusted input, pinned through the HTTP surface: a crafted answer is
HubSpot's failure (a 502 or 503 that says what was wrong), never a 500 with a traceback,
never a token cut in two and let through, never a `_updated` the service then refuses as
`since`. Property-based tests feed every parser random JSON shapes."""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
import requests
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.hubspot import HubSpotError
from app.hubspot.answers import (
    MAX_ID,
    MAX_MERGED_IDS,
    MAX_RETRY_AFTER,
    archived_page,
    associations,
    catalogue,
    error_context,
    failure,
    rate_limits,
    record,
    required_scopes,
    retry_after,
    schemas,
    search_page,
    server_ms,
)
from app.object_types import standard_types
from app.redact import LINE_LIMIT, QUOTE_LIMIT, REDACTED, Redactor, correlation_id, quote
from app.sync.positions import ALL_IDS, Position, encode_position, parse_since
from sandbox import Fault, Sandbox, SandboxServer

from .sesam import T0

CONTACTS = standard_types("lastmodifieddate", {})["contacts"]
WHEN = "2020-01-01T00:00:00.000Z"  # well before the sandbox's clock: within the horizon
SINCE = "2010-01-01T00:00:00Z"  # before WHEN: an incremental export that includes it
FRAGMENT = 8  # characters of the token that must never appear together in an answer or log
SHOWN = 80  # the answers' and timestamps' cut of one upstream value


def fresh_token() -> str:
    """A token of its own for each test: `quote` redacts every token a service was made
    with, so a shared one would hide a service that did not register its own."""
    return f"pat-na1-{uuid.uuid4()}"


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    return Sandbox(contacts=60, seed=7, now_ms=T0, token=fresh_token())


def contact(record_id: str = "5", modified: str = WHEN, merged: str | None = None) -> dict[str, Any]:
    properties = {"lastmodifieddate": modified}
    if merged is not None:
        properties["hs_merged_object_ids"] = merged
    return {"id": record_id, "properties": properties}


def answering(sandbox: Sandbox, *records: dict[str, Any]) -> None:
    """Every search answers ``records``, on one last page."""
    sandbox.inject(Fault(endpoint="search", status=200, body={"results": list(records)}, times=None))


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the service's log records carry: messages, extras, tracebacks."""
    return "\n".join(f"{record.getMessage()} {vars(record)!r}" for record in caplog.records)


def assert_no_fragment(text: str, token: str, context: str) -> None:
    """No FRAGMENT characters of ``token`` in a row: a token cut short still leaks."""
    found = sorted({token[i:i + FRAGMENT] for i in range(len(token) - FRAGMENT + 1)
                    if token[i:i + FRAGMENT] in text})
    assert not found, f"{context}: fragments of the token left: {found} in {text[:1500]!r}"


def problem_of(response: Any, status: int, context: str) -> dict[str, Any]:
    assert response.status_code == status, f"{context}: {response.status_code} {response.text[:500]}"
    assert response.headers["content-type"] == "application/problem+json", context
    return response.json()


# -- (5) the token cut short before it is redacted ----------------------------------------

def offsets_around(cut: int, token_length: int) -> list[int]:
    """Where the token may start so that a cut at ``cut`` (or at ``cut - 3``, where a cut
    quote's "..." begins) falls inside it, and one on each side."""
    return list(range(cut - 3 - token_length, cut + 1))


TOKEN_LENGTH = len(fresh_token())


class TestTheTokenIsRedactedBeforeItIsCut:
    @pytest.mark.parametrize("offset", offsets_around(SHOWN, TOKEN_LENGTH))
    @pytest.mark.parametrize("field", ["id", "modification time"])
    def test_a_long_value_ending_in_the_token(self, service: TestClient, sandbox: Sandbox,
                                              caplog: pytest.LogCaptureFixture, field: str,
                                              offset: int) -> None:
        """A record whose id, or modification time, is ``offset`` digits and then the token:
        the 502 quotes the value cut to 80 characters with the token redacted first, and
        neither the problem nor the log holds 8 characters of it in a row (before, the cut
        came first and let all of the token but its last characters through)."""
        token = sandbox.token
        value = "9" * offset + token
        answering(sandbox, contact(record_id=value) if field == "id" else contact(modified=value))
        with caplog.at_level(logging.DEBUG):
            response = service.get("/get_contacts")
        context = f"{field} with the token at {offset}"
        problem = problem_of(response, 502, context)
        assert problem["title"] == "HubSpot answer unusable", f"{context}: {problem}"
        assert_no_fragment(response.text, token, context)
        assert_no_fragment(logged_text(caplog), token, f"{context} (log)")
        if offset + len(token) <= SHOWN - 3:
            assert REDACTED in problem["detail"], f"{context}: {problem['detail']!r}"

    @pytest.mark.parametrize("offset", offsets_around(SHOWN, TOKEN_LENGTH)[::3])
    @pytest.mark.parametrize("parameter", ["since", "limit"])
    def test_a_refused_parameter_ending_in_the_token(self, service: TestClient, sandbox: Sandbox,
                                                     parameter: str, offset: int) -> None:
        """A query value that the 400 quotes back, ``offset`` characters and then the token:
        it is redacted before it is cut to 80 characters (a proxy's log or a shared dashboard
        may show the 400 to others than the caller)."""
        token = sandbox.token
        response = service.get("/get_contacts", params={parameter: "7" * offset + token})
        context = f"{parameter} with the token at {offset}"
        problem = problem_of(response, 400, context)
        assert parameter in problem["detail"], f"{context}: {problem}"
        assert_no_fragment(response.text, token, context)

    @pytest.mark.parametrize("offset", offsets_around(QUOTE_LIMIT, TOKEN_LENGTH)[::4])
    def test_hubspots_message_ending_in_the_token(self, configure: Callable[..., TestClient],
                                                   sandbox: Sandbox,
                                                   caplog: pytest.LogCaptureFixture,
                                                   offset: int) -> None:
        """HubSpot's error message, quoted to QUOTE_LIMIT characters: the same."""
        token = sandbox.token
        sandbox.inject(Fault(endpoint="search", status=400, times=None,
                             body={"message": "x" * offset + token}))
        with caplog.at_level(logging.DEBUG):
            response = configure(properties=("email",)).get("/get_contacts")
        context = f"message with the token at {offset}"
        problem_of(response, 502, context)
        assert_no_fragment(response.text, token, context)
        assert_no_fragment(logged_text(caplog), token, f"{context} (log)")

    @pytest.mark.parametrize("limit", [SHOWN, QUOTE_LIMIT, LINE_LIMIT])
    def test_quote_redacts_before_it_cuts(self, limit: int) -> None:
        """`quote` at each of its bounds, the token at every offset around the cut: once a
        Redactor is made for a token (the client, the response layer and the log filter
        each make one), no 8 characters of it survive a quote, nor a HubSpotError's detail."""
        token = fresh_token()
        Redactor(token)
        for offset in offsets_around(limit, len(token)):
            text = "x" * offset + token + "y" * 5
            quoted = quote(text, limit)
            assert len(quoted) <= limit, (limit, offset, len(quoted))
            assert_no_fragment(quoted, token, f"quote to {limit}, token at {offset}")
            if limit == LINE_LIMIT:
                detail = HubSpotError(502, "t", text).detail
                assert_no_fragment(detail, token, f"detail, token at {offset}")


# -- bounds a mutation audit named ---------------------------------------------------------

class TestExactBounds:
    @pytest.mark.parametrize("over", [0, 1, 3])
    @pytest.mark.parametrize("limit", [SHOWN, QUOTE_LIMIT, LINE_LIMIT])
    def test_a_quote_is_never_longer_than_its_limit(self, limit: int, over: int) -> None:
        """Text at its limit is quoted whole; one or three characters over, it is cut and
        marked, and still no longer than the limit."""
        text = "a" * (limit + over)
        quoted = quote(text, limit)
        assert len(quoted) <= limit, f"{limit}+{over}: {len(quoted)}"
        assert quoted == (text if over == 0 else "a" * (limit - 3) + "..."), (limit, over, quoted[-10:])

    @pytest.mark.parametrize("suffix,kept", [("", True), ("0", False), ("-x", False), ("\n", False)])
    def test_a_correlation_id_is_a_whole_uuid(self, configure: Callable[..., TestClient],
                                              sandbox: Sandbox, suffix: str, kept: bool) -> None:
        """HubSpot's correlationId is passed on only if it is a UUID and nothing more: one
        that merely starts with a UUID is dropped."""
        uuid_text = "0a1b2c3d-0000-4000-8000-00000000beef"
        sandbox.inject(Fault(endpoint="search", status=400, times=None,
                             body={"message": "no", "correlationId": uuid_text + suffix}))
        problem = problem_of(configure(properties=("email",)).get("/get_contacts"), 502, repr(suffix))
        assert problem.get("correlationId") == (uuid_text if kept else None), f"{suffix!r}: {problem}"
        assert correlation_id(uuid_text + suffix) == (uuid_text if kept else None), suffix


# -- (6) answers that were a 500 -----------------------------------------------------------

class RawHubSpot:
    """In front of the sandbox: answers requests whose path contains ``marker`` with raw
    bytes (JSON the sandbox could not write, e.g. nested 1,000 deep), forwards the rest."""

    def __init__(self, sandbox_url: str, marker: str, status: int, body: bytes,
                 headers: dict[str, str] | None = None) -> None:
        raw = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sent = self.rfile.read(length) if length else None
                if marker in self.path:
                    status, data, extra = raw.status, raw.body, raw.headers
                else:
                    upstream = requests.request(self.command, sandbox_url + self.path, data=sent,
                                                timeout=30, headers=dict(self.headers))
                    status, data, extra = upstream.status_code, upstream.content, {}
                self.send_response_only(status)
                for name, value in {**extra, "Content-Type": "application/json",
                                    "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        self.status, self.body, self.headers = status, body, headers or {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RawHubSpot:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.fixture(name="raw")
def _raw(sandbox_server: SandboxServer) -> Iterator[Callable[..., RawHubSpot]]:
    opened: list[RawHubSpot] = []

    def start(marker: str, status: int, body: str, headers: dict[str, str] | None = None) -> RawHubSpot:
        server = RawHubSpot(sandbox_server.url, marker, status, body.encode(), headers).__enter__()
        opened.append(server)
        return server

    yield start
    for server in opened:
        server.__exit__(None, None, None)


def no_traceback(caplog: pytest.LogCaptureFixture, context: str) -> None:
    """HubSpot's failure is no bug of the service: nothing is logged with a traceback."""
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not tracebacks, f"{context}: logged with a traceback: {tracebacks}"


class TestCraftedAnswersAreHubSpotsFailure:
    @pytest.mark.parametrize("body", [
        {"results": [], "paging": "next"},
        {"results": [], "paging": {"next": "200"}},
        {"results": [], "paging": ["next"]},
        {"results": [contact()], "paging": {"next": [{"after": "1"}]}},
    ], ids=["paging-text", "next-text", "paging-list", "next-list"])
    def test_search_paging_of_the_wrong_shape(self, service: TestClient, sandbox: Sandbox,
                                              caplog: pytest.LogCaptureFixture, body: dict) -> None:
        """Search paging that is not HubSpot's paging object: a 502 saying so."""
        sandbox.inject(Fault(endpoint="search", status=200, body=body, times=None))
        with caplog.at_level(logging.WARNING):
            problem = problem_of(service.get("/get_contacts"), 502, str(body))
        assert "'paging' is not HubSpot's paging object" in problem["detail"], problem
        no_traceback(caplog, str(body))

    @pytest.mark.parametrize("body,status", [({"results": 5}, 502), ({"results": "email"}, 502),
                                             ({"results": [5, None, "x", [], {"name": 7}]}, 200)])
    def test_a_property_catalogue_of_the_wrong_shape(self, service: TestClient, sandbox: Sandbox,
                                                     body: dict, status: int) -> None:
        """A catalogue whose results are not a list is a 502 naming it; entries that are not
        objects naming a property are skipped (the export keeps the properties it needs)."""
        sandbox.inject(Fault(endpoint="properties", status=200, body=body, times=None))
        response = service.get("/get_contacts", params={"limit": "2"})
        if status == 502:
            assert "property catalogue" in problem_of(response, 502, str(body))["detail"]
        else:
            assert response.status_code == 200 and len(response.json()) == 2, response.text[:300]

    @pytest.mark.parametrize("to_id", [[1], {"id": 1}, True, 1.5, -3, 0, MAX_ID + 1,
                                       str(MAX_ID + 1), "1" * 40])
    def test_an_associated_id_that_is_no_id(self, service: TestClient, sandbox: Sandbox,
                                            to_id: Any) -> None:
        """An association's ``toObjectId`` that is a list, an object, a flag, a fraction or
        outside HubSpot's ids: a 502 naming it, not a 500."""
        deal = next(iter(sandbox.live("deals")))
        sandbox.inject(Fault(endpoint="associations", status=200, times=None, body={"results": [
            {"from": {"id": str(deal)}, "to": [{"toObjectId": to_id, "associationTypes": []}]}]}))
        problem = problem_of(service.get("/objects/deals", params={"associations": "contacts"}),
                             502, repr(to_id))
        assert "'toObjectId'" in problem["detail"] and "is not an id" in problem["detail"], problem

    @pytest.mark.parametrize("depth", [1000, 100_000])
    @pytest.mark.parametrize("where", ["message", "errors", "body"])
    def test_an_error_body_nested_deep(self, configure: Callable[..., TestClient],
                                       raw: Callable[..., RawHubSpot],
                                       caplog: pytest.LogCaptureFixture, depth: int,
                                       where: str) -> None:
        """A 400 whose message, errors or whole body is nested ``depth`` deep: HubSpot
        rejected the request (a 502), with its message described, not rendered (before, a
        message 1,000 deep made str() exceed Python's recursion limit: a 500)."""
        body = {"message": '{"message": %s}' % nested(depth),
                "errors": '{"message": "no", "errors": [{"context": {"requiredGranularScopes": %s}}]}'
                          % nested(depth, '"crm.objects.contacts.read"'),
                "body": nested(depth)}[where]
        stand_in = raw("/search", 400, body)
        service = configure(base_url=stand_in.url, properties=("email",), max_retries=0)
        with caplog.at_level(logging.WARNING):
            problem = problem_of(service.get("/get_contacts"), 502, f"{where} {depth}")
        assert problem["title"] == "HubSpot rejected the request", problem
        no_traceback(caplog, f"{where} {depth}")

    def test_association_errors_nested_deep(self, configure: Callable[..., TestClient],
                                            raw: Callable[..., RawHubSpot]) -> None:
        """A 207 whose errors name ids nested 1,000 deep: those are no ids, so the answer
        says nothing of the ids asked, a 502 saying so (before: str() of them, a 500)."""
        body = '{"results": [], "errors": [{"context": {"fromObjectId": %s}}]}' % nested(1000, '"5"')
        stand_in = raw("/associations/", 207, body)
        service = configure(base_url=stand_in.url)
        response = service.get("/objects/deals", params={"associations": "contacts", "limit": "3"})
        problem = problem_of(response, 502, "nested ids")
        assert "says nothing of 3 of the ids asked" in problem["detail"], problem

    @pytest.mark.parametrize("advice", ["inf", "1e999", "-inf", "nan", "99999999999"])
    def test_retry_after_that_is_no_finite_wait(self, configure: Callable[..., TestClient],
                                                sandbox: Sandbox, advice: str) -> None:
        """HubSpot unavailable with ``Retry-After: inf`` (or 1e999, nan, years): a 503 whose
        own Retry-After is a whole number of seconds, at most MAX_RETRY_AFTER (before, inf
        could not be written: a 500)."""
        sandbox.inject(Fault(endpoint="search", status=503, headers={"Retry-After": advice},
                             times=None))
        response = configure(properties=("email",), max_retries=0).get("/get_contacts")
        problem_of(response, 503, advice)
        wait = int(response.headers["retry-after"])
        assert 1 <= wait <= MAX_RETRY_AFTER, f"{advice}: Retry-After {wait}"


# -- (8) merged ids without bound ----------------------------------------------------------

class TestMergedIdsAreBounded:
    def test_a_record_past_the_bound_is_refused_before_its_ids_are_read(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """A contact naming MAX_MERGED_IDS + 1 merged ids: a 502 naming the contact and the
        bound (before: every id built into a deletion, 628 MB for a million of them)."""
        answering(sandbox, contact(merged=";".join(map(str, range(1, MAX_MERGED_IDS + 2)))))
        problem = problem_of(service.get("/get_contacts", params={"since": SINCE, "limit": "50"}),
                             502, "too many merged ids")
        detail = problem["detail"]
        assert "contacts record '5'" in detail and f"more than {MAX_MERGED_IDS}" in detail, detail

    def test_a_record_at_the_bound_is_exported_as_far_as_asked(self, service: TestClient,
                                                                sandbox: Sandbox) -> None:
        """MAX_MERGED_IDS merged ids are exported: with ?limit=50 the first 50 entities."""
        answering(sandbox, contact(record_id="20000", merged=";".join(map(str, range(1, MAX_MERGED_IDS + 1)))))
        response = service.get("/get_contacts", params={"since": SINCE, "limit": "50"})
        assert response.status_code == 200, response.text[:300]
        entities = response.json()
        assert len(entities) == 50, len(entities)
        merged = [e for e in entities if e.get("mergedInto") == "20000"]
        assert merged and [e["_id"] for e in merged] == [str(i) for i in range(1, len(merged) + 1)], merged[:3]


# -- (9) ids whose tokens the service would refuse -----------------------------------------

class TestEveryUpdatedIsAcceptedBack:
    @pytest.mark.parametrize("record_id,merged", [
        (str(MAX_ID + 1), None), ("9" * 19, None), ("0", None),
        ("5", str(MAX_ID + 1)), ("5", "1" * 20), ("5", "0"),
    ])
    def test_an_id_outside_hubspots_range_is_a_502(self, service: TestClient, sandbox: Sandbox,
                                                   record_id: str, merged: str | None) -> None:
        """A record id, or a merged id, at or above 2^63 (or 0, or 20 digits): a 502 naming
        the record, not a `_updated` the service refuses later as `since` (a chronological
        pipe whose page ended on it could never move on)."""
        answering(sandbox, contact(record_id=record_id, merged=merged))
        problem = problem_of(service.get("/get_contacts", params={"since": SINCE}), 502,
                             f"{record_id} {merged}")
        detail = problem["detail"]
        named = f"'{record_id}'" if merged is None else "contacts record '5'"
        assert named in detail and str(MAX_ID) in detail, detail

    def test_the_largest_ids_are_accepted_back(self, service: TestClient, sandbox: Sandbox) -> None:
        """A record, and a merged id, of 2^63 - 1: exported, and the `_updated` of each
        entity is accepted as `since` and resumes after it."""
        answering(sandbox, contact(record_id=str(MAX_ID), merged=f"{MAX_ID - 1};7"))
        entities = service.get("/get_contacts", params={"since": SINCE}).json()
        ours = [e for e in entities if e["_id"] in (str(MAX_ID), str(MAX_ID - 1), "7")]
        assert [e["_id"] for e in ours] == ["7", str(MAX_ID - 1), str(MAX_ID)], ours
        # HubSpot's own answers from here: the crafted one holds the very key each of these
        # resumes after, which contradicts the query's filter (a 502, tests/test_walk_guard.py).
        sandbox.clear_faults()
        for entity in ours:
            response = service.get("/get_contacts", params={"since": entity["_updated"]})
            assert response.status_code == 200, f"{entity['_updated']}: {response.text[:300]}"
            after = [e["_updated"] for e in response.json()]
            assert all(updated > entity["_updated"] for updated in after), (entity, after[:3])


# -- property-based: every parser, random shapes -------------------------------------------

KEYS = ["results", "paging", "next", "after", "id", "properties", "lastmodifieddate",
        "hs_merged_object_ids", "archivedAt", "name", "objectTypeId", "fullyQualifiedName", "from",
        "to", "toObjectId", "associationTypes", "errors", "context", "message", "correlationId",
        "policyName", "total", "requiredGranularScopes", "fromObjectId"]
IDS = st.one_of(st.integers(-5, 2**64 + 5).map(str), st.sampled_from(
    ["0", "1", str(MAX_ID), str(MAX_ID + 1), "1" * 20, "1" * 5000, "٣", "1 2", ""]), st.text(max_size=30))
TIMES = st.one_of(st.sampled_from([WHEN, "1" * 31, "-1", "253402300800000", "9999-12-31T23:59:59.999-23:59",
                                   "0001-01-01T00:00:00+23:59", "nan", "2024-02-30T00:00:00Z"]),
                  st.integers(-2**70, 2**70).map(str), st.text(max_size=40))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(2**62, 2**70),
                    st.just(5000).map(lambda digits: 10**digits), st.floats(), st.text(), IDS, TIMES)


def deep(value: Any, depth: int) -> Any:
    """``value`` in ``depth`` lists (built without recursion)."""
    for _ in range(depth):
        value = [value]
    return value


JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)),
                                            inner, max_size=5)),
    max_leaves=25)
DEEP = st.builds(deep, JSON, st.integers(900, 3000))
VALUES = st.one_of(JSON, DEEP)
RECORDS = st.builds(
    lambda rid, when, merged, extra: {"id": rid, "properties": {"lastmodifieddate": when,
                                                                 "hs_merged_object_ids": merged}, **extra},
    IDS, TIMES, st.one_of(st.lists(IDS, max_size=6).map(";".join), VALUES),
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=2))
ANSWERS = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
    st.builds(lambda results, paging: {"results": results, "paging": paging},
              st.lists(st.one_of(RECORDS, VALUES), max_size=4),
              st.one_of(VALUES, st.builds(lambda after: {"next": {"after": after}}, VALUES))),
    st.builds(lambda results: {"results": results}, st.lists(st.builds(
        lambda source, to: {"from": {"id": source}, "to": to}, st.one_of(IDS, VALUES),
        st.lists(st.builds(lambda to_id: {"toObjectId": to_id}, st.one_of(IDS, VALUES)), max_size=3)),
        max_size=3)))
TEXTS = st.one_of(st.text(), st.sampled_from(["inf", "-inf", "1e999", "nan", "NaN", "1e308",
                                              "Thu, 01 Jan 1970 00:00:00 GMT",
                                              "Fri, 31 Dec 99999 23:59:59 GMT", "٣", "1" * 5000]))
PROPERTY_RUNS = hypothesis_settings(max_examples=300, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow,
                                                           HealthCheck.data_too_large])


def value_or_hubspot_error(parse: Callable[[], Any]) -> Any:
    """A parser's value, or None when it refused with a HubSpotError (a 502 whose detail is
    one bounded line): any other exception fails the test."""
    try:
        return parse()
    except HubSpotError as error:
        assert error.status in (502, 503, 504) and len(error.detail) <= LINE_LIMIT, error
        assert len(str(error)) < 2 * LINE_LIMIT, error.title
        return None


class TestEveryParserOnRandomShapes:
    @PROPERTY_RUNS
    @given(ANSWERS)
    def test_answers_of_records(self, data: dict[str, Any]) -> None:
        """search_page, archived_page, catalogue, schemas, associations: a value or a
        HubSpotError, whatever the shape, depth, numbers or text."""
        for kind in (CONTACTS, standard_types("lastmodifieddate", {})["deals"]):
            value_or_hubspot_error(lambda kind=kind: search_page(data, kind, 0, 1))
            value_or_hubspot_error(lambda kind=kind: archived_page(data, kind, 0, 1))
        value_or_hubspot_error(lambda: catalogue(data))
        value_or_hubspot_error(lambda: schemas(data))
        value_or_hubspot_error(lambda: associations(data, "association (deals to contacts)", 1))

    @PROPERTY_RUNS
    @given(st.sampled_from([400, 401, 403, 404, 423, 429, 500, 502, 503, 504]),
           st.one_of(ANSWERS, VALUES), TEXTS, st.one_of(st.none(), st.floats(0, MAX_RETRY_AFTER)),
           st.one_of(st.none(), TEXTS))
    def test_error_answers(self, status: int, body: Any, reason: str, wait: float | None,
                           correlation: str | None) -> None:
        """failure, error_context, required_scopes: an error that says what HubSpot
        answered, on one bounded line, whatever the body."""
        error = failure(status, body, reason, wait, "crm.objects.contacts.read", quote, correlation)
        assert isinstance(error, HubSpotError) and len(error.detail) <= LINE_LIMIT, error
        assert str(status) in error.detail or "daily" in error.detail, error.detail
        if isinstance(body, dict):
            list(error_context(body))
            assert all(isinstance(scope, str) for scope in required_scopes(body))

    @PROPERTY_RUNS
    @example(None, {"X-HubSpot-RateLimit-Remaining": "0\x1f"})  # strip() takes \x1f, int() not
    @given(st.one_of(st.none(), TEXTS), st.dictionaries(
        st.sampled_from(["X-HubSpot-RateLimit-Secondly-Remaining", "X-HubSpot-RateLimit-Remaining",
                         "X-HubSpot-RateLimit-Daily-Remaining", "Other"]), TEXTS))
    def test_headers(self, text: str | None, headers: dict[str, str]) -> None:
        """retry_after is None or a finite wait within 0 .. MAX_RETRY_AFTER; server_ms an
        epoch ms or HubSpot's clock refused; rate_limits whole counts."""
        wait = retry_after(text)
        assert wait is None or (math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER), (text, wait)
        clock = value_or_hubspot_error(lambda: server_ms(text, now=lambda: 1.0))
        assert clock is None or isinstance(clock, int), clock
        left = rate_limits(headers)
        assert all(isinstance(count, int) and count >= 0 for count in left.values()), left


class TestTokensRoundTrip:
    @hypothesis_settings(max_examples=500, deadline=None)
    @given(st.one_of(st.integers(-3, 2**64 + 3), st.integers(MAX_ID - 3, MAX_ID + 3)).map(str),
           st.integers(0, 253402300799999),
           st.lists(st.one_of(st.integers(-3, 2**64 + 3), st.integers(MAX_ID - 3, MAX_ID + 3),
                              st.integers(10**19 - 2, 10**20)).map(str), max_size=5))
    def test_every_accepted_id_gives_a_token_accepted_back(self, record_id: str, ms: int,
                                                          merged: list[str]) -> None:
        """Whatever record id and merged ids the parser accepts, the `_updated` of the
        record and of each merged id is 44 (or 64) characters and `parse_since` reads it
        back as the same position."""
        item = {"id": record_id, "properties": {"lastmodifieddate": str(ms),
                                                "hs_merged_object_ids": ";".join(merged)}}
        parsed = value_or_hubspot_error(lambda: record(item, CONTACTS))
        if parsed is None:
            return
        positions = [Position(ms, parsed.id, sub) for sub in [*parsed.merged_ids, ALL_IDS]]
        for position in positions:
            token = encode_position(position)
            assert len(token) == (44 if position.sub == ALL_IDS else 64), token
            assert parse_since(token) == position, (token, position)


def test_the_property_strategies_reach_deep_structures() -> None:
    """The deep strategy nests past Python's recursion limit for str()."""
    value = deep(1, 1000)
    with pytest.raises(RecursionError):
        str(value)
    assert quote(value) == "a list of 1 items", quote(value)
    assert json.dumps(deep(1, 10))  # shallow ones write as JSON
