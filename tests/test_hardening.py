"""Findings of a red-team trial, each pinned through the HTTP surface: the token never
leaves in an answer, a request's cost is bounded before any handler runs, redirects and
HEAD cannot be turned against the service, and parameters are read strictly."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import orjson
import pytest
import requests
from starlette.testclient import TestClient

from app.config import VARIABLES, Settings
from app.redact import LINE_LIMIT, REDACTED, Redactor
from app.web.middleware import RedactResponses, RequestLimits
from app.web.middleware.limits import MAX_HEADER_BYTES, MAX_HEADERS
from app.web.stream import CHUNK_BYTES
from sandbox import Sandbox, SandboxServer

from .conftest import make_service
from .echo import Echo, EchoingHubSpot
from .sesam import T0
from .test_deployment import ROOT, _started, free_port, wait_until_up  # noqa: F401 (fixture)

TOKEN = "pat-na1-5f3a9c1e-7b2d-4e8f-a6c0-d19b84e2f7a3"
ABORTED = b"\n!! EXPORT ABORTED: "
PAGE_SIZE = 50  # with one page per round, the 5th search page comes after the first chunk
SEARCHES_BEFORE_THE_FIRST_CHUNK = 4


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    return Sandbox(contacts=600, seed=7, now_ms=T0, token=TOKEN)


@pytest.fixture(name="stand_in")
def _stand_in(sandbox_server: SandboxServer) -> Iterator[EchoingHubSpot]:
    with EchoingHubSpot(sandbox_server.url) as stand_in:
        yield stand_in


@pytest.fixture(name="echoed")
def _echoed(settings: Settings, stand_in: EchoingHubSpot) -> Iterator[TestClient]:
    """The service reading HubSpot through the echoing stand-in, a page at a time."""
    echoing = dataclasses.replace(settings, base_url=stand_in.url, search_page_size=PAGE_SIZE,
                                  search_concurrency=1, properties_cache_seconds=0)
    with make_service(echoing) as service:
        yield service


def assert_nothing_secret(response: httpx.Response, context: str) -> None:
    """The token does not leave in the headers or the body."""
    raw = response.content.decode("utf-8", "replace") + repr(response.headers)
    assert TOKEN not in raw, f"{context}: the token left: {raw[-600:]}"


def assert_quoted_safely(response: httpx.Response, context: str) -> dict | bytes:
    """The error as the caller sees it: a problem+json whose quotes are one bounded line and
    whose correlationId (if any) is a UUID, or a body cut by a one-line trailer."""
    assert_nothing_secret(response, context)
    if response.status_code != 200:
        assert response.headers["content-type"] == "application/problem+json", (
            f"{context}: {response.status_code} {response.text[:300]}")
        problem = response.json()
        detail = problem["detail"]
        assert "\n" not in detail and len(detail) <= LINE_LIMIT, f"{context}: detail {detail!r}"
        assert "correlationId" not in problem, f"{context}: a non-UUID correlationId: {problem}"
        return problem
    body = response.content
    head, _, trailer = body.partition(ABORTED)
    assert trailer and len(head) >= CHUNK_BYTES, f"{context}: no mid-stream abort: {body[-300:]!r}"
    reason, _, rest = trailer.partition(b"\n")
    assert len(reason) <= LINE_LIMIT and rest.startswith(b"!! This body"), (
        f"{context}: the trailer is not one bounded line: {trailer[:600]!r}")
    return trailer


ERRORS = [(400, None), (401, None), (403, None), (404, None), (429, None), (429, "DAILY"),
          (500, None), (503, None)]


class TestTheTokenNeverLeaves:
    """HubSpot (or a proxy) quoting the Authorization header back in every field."""

    @pytest.mark.parametrize("skip", [0, SEARCHES_BEFORE_THE_FIRST_CHUNK],
                             ids=["before-the-body", "mid-stream"])
    @pytest.mark.parametrize("status,policy", ERRORS, ids=[f"{s}{p or ''}" for s, p in ERRORS])
    def test_an_echoed_error(self, echoed: TestClient, stand_in: EchoingHubSpot, skip: int,
                             status: int, policy: str | None) -> None:
        """Every error HubSpot can answer, with the token in message, correlationId,
        category, errors and context: the problem (before the body) or the trailer
        (mid-stream) says what failed, without the token and on one bounded line."""
        stand_in.echo = Echo("error", status=status, policy=policy, skip=skip)
        response = echoed.get("/get_contacts")
        context = f"{status} {policy or ''} after {skip} searches"
        said = assert_quoted_safely(response, context)
        text = said.decode() if skip else said["detail"]
        expected = "daily" if policy == "DAILY" else str(status)
        assert expected in text, f"{context}: does not say what HubSpot answered: {text!r}"
        assert REDACTED in text, f"{context}: the echoed message was not quoted: {text!r}"

    @pytest.mark.parametrize("skip", [0, SEARCHES_BEFORE_THE_FIRST_CHUNK],
                             ids=["before-the-body", "mid-stream"])
    def test_an_unusable_answer_quoting_the_token(self, echoed: TestClient,
                                                  stand_in: EchoingHubSpot, skip: int) -> None:
        """A search answer whose contact has the token as its modification time: "answer
        unusable", quoting the value redacted."""
        stand_in.echo = Echo("unusable", skip=skip)
        response = echoed.get("/get_contacts")
        said = assert_quoted_safely(response, f"unusable after {skip} searches")
        text = said.decode() if skip else said["detail"]
        assert "could not be used" in text and REDACTED in text, text

    def test_contact_properties_holding_the_token(self, echoed: TestClient,
                                                  stand_in: EchoingHubSpot,
                                                  sandbox: Sandbox) -> None:
        """Contacts whose every property is the token: a complete export, streamed over
        many chunks, with the token redacted wherever it stood."""
        stand_in.echo = Echo("properties")
        response = echoed.get("/get_contacts")
        assert response.status_code == 200, response.text[:300]
        assert_nothing_secret(response, "echoed properties")
        entities = orjson.loads(response.content)
        assert len(entities) == len(sandbox.live()), f"{len(entities)} of {len(sandbox.live())}"
        assert len(response.content) > 2 * CHUNK_BYTES, "the body should span several chunks"
        assert all(e["properties"]["firstname"] == f"Bearer {REDACTED}" for e in entities), (
            entities[0]["properties"])

    def test_metrics_carry_no_upstream_text(self, echoed: TestClient,
                                            stand_in: EchoingHubSpot) -> None:
        """After echoed errors, /metrics labels hold only the service's own words."""
        stand_in.echo = Echo("error", status=418)
        echoed.get("/get_contacts")
        metrics = echoed.get("/metrics")
        assert metrics.status_code == 200 and "upstream_calls" in metrics.text
        assert_nothing_secret(metrics, "/metrics")


class TestRedactionOfAStream:
    @pytest.mark.parametrize("cut", [1, 8, len(TOKEN) - 1])
    def test_a_token_split_across_chunks_is_redacted(self, cut: int) -> None:
        """The redacting layer holds back the end of each streamed chunk, so a token cut
        in two by the chunking is still caught; the rest of the stream arrives intact."""
        text = f'["before", "{TOKEN}", "after"]'.encode()
        at = text.index(TOKEN.encode()) + cut
        chunks = [text[:at], text[at:at + 3], text[at + 3:]]

        async def streaming(scope, receive, send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        body = TestClient(RedactResponses(streaming, Redactor(TOKEN))).get("/").content
        assert body == f'["before", "{REDACTED}", "after"]'.encode(), body


class TestHorizon:
    def test_a_clock_before_any_portal_data_is_an_error(self, echoed: TestClient,
                                                        stand_in: EchoingHubSpot) -> None:
        """HubSpot's Date header in 1970 would put the horizon before every contact: a
        502 problem saying so, not an empty 200 that Sesam would take as "all deleted"."""
        stand_in.echo = Echo("old_clock")
        response = echoed.get("/get_contacts")
        assert response.status_code == 502, f"{response.status_code} {response.text[:200]}"
        problem = response.json()
        assert "clock" in problem["title"] and "1970" in problem["detail"], problem


class TestRequestCost:
    """Limits applied before any handler runs (the server's own limit is tested with the
    start command in test_deployment)."""

    def test_too_many_headers_is_a_431(self, service: TestClient, sandbox: Sandbox) -> None:
        """101 headers: 431 problem+json naming the limit, on the open /health too."""
        headers = {f"x-h{i}": "1" for i in range(101)}
        response = service.get("/health", headers=headers)
        assert response.status_code == 431, response.status_code
        assert response.headers["content-type"] == "application/problem+json"
        assert "at most 100 headers" in response.json()["detail"], response.text

    def test_a_large_header_is_a_431(self, service: TestClient, sandbox: Sandbox) -> None:
        """A 20 KB header to the export: 431, and HubSpot is not called."""
        sandbox.reset_counters()
        response = service.get("/get_contacts", headers={"x-big": "a" * 20_000})
        assert response.status_code == 431, response.status_code
        assert sandbox.request_log == [], sandbox.request_log

    def test_a_long_url_is_a_414(self, service: TestClient, sandbox: Sandbox) -> None:
        """A URL over 16 KB: 414 problem+json, and HubSpot is not called."""
        sandbox.reset_counters()
        response = service.get("/get_contacts?since=" + "1" * 17_000)
        assert response.status_code == 414, response.status_code
        assert response.headers["content-type"] == "application/problem+json"
        assert sandbox.request_log == [], sandbox.request_log

    def test_ordinary_requests_pass(self, service: TestClient) -> None:
        """What Sesam sends (a few headers, a short URL) is served as before."""
        response = service.get("/get_contacts?limit=3", headers={"user-agent": "sesam"})
        assert response.status_code == 200 and len(response.json()) == 3, response.text[:200]


class TestMethodsAndRedirects:
    def test_head_on_the_export_is_refused_without_calling_hubspot(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """HEAD /get_contacts: 405 with Allow: GET, as the spec says, and no HubSpot call."""
        sandbox.reset_counters()
        response = service.head("/get_contacts")
        assert response.status_code == 405 and response.headers["allow"] == "GET", (
            response.status_code, dict(response.headers))
        assert sandbox.request_log == [], f"HEAD called HubSpot: {sandbox.request_log}"

    def test_other_methods_on_the_export_are_told_to_use_get(self, service: TestClient) -> None:
        """POST /get_contacts: 405 whose Allow lists GET only (HEAD is not offered)."""
        response = service.post("/get_contacts")
        assert response.status_code == 405 and response.headers["allow"] == "GET", (
            response.status_code, dict(response.headers))

    def test_a_redirect_never_names_the_request_host(self, service: TestClient) -> None:
        """GET /get_contacts/ with Host: evil.example: the redirect to /get_contacts is
        relative, so it stays on the host the caller used."""
        response = service.get("/get_contacts/?limit=1", headers={"host": "evil.example"},
                               follow_redirects=False)
        assert response.status_code in (301, 307, 308), response.status_code
        location = response.headers["location"]
        assert location == "/get_contacts?limit=1", location


class TestStrictParameters:
    @pytest.mark.parametrize("query,name", [
        ("since=garbage&since=2024-01-01T00:00:00Z", "since"),
        ("since=2024-01-01T00:00:00Z&since=2024-01-01T00:00:00Z", "since"),
        ("limit=5&limit=7", "limit"),
    ])
    def test_a_repeated_parameter_is_a_400(self, service: TestClient, sandbox: Sandbox,
                                           query: str, name: str) -> None:
        """A parameter given twice is refused, saying so, even when both values are valid:
        no value silently wins."""
        sandbox.reset_counters()
        response = service.get(f"/get_contacts?{query}")
        assert response.status_code == 400, f"{query}: {response.status_code}"
        detail = response.json()["detail"]
        assert f"'{name}' is given 2 times" in detail, detail
        assert sandbox.request_log == [], sandbox.request_log

    @pytest.mark.parametrize("since", ["2024-01-01T00:00:00Z\n", "1709633472000\n",
                                       "2024-03-05T10:11:12.345Z_0000000000000012345\n",
                                       " 1709633472000", "1709633472000\t"])
    def test_since_is_the_whole_value(self, service: TestClient, since: str) -> None:
        """A since with a trailing newline or white space around it is a 400: the spec's
        pattern matches the whole value."""
        response = service.get("/get_contacts", params={"since": since})
        assert response.status_code == 400, f"{since!r}: {response.status_code}"
        assert "since" in response.json()["detail"], response.text


# -- through the start command ------------------------------------------------------------

NUMBERS = [variable for variable in VARIABLES if variable.low is not None]
BAD_NUMBERS = ["inf", "nan", "1e12", "-1", ""]


def _clean_env(**env: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items()
            if k.isupper() and not k.startswith(("HUBSPOT_", "AUTH_", "LOG_", "SANDBOX_"))
            and k not in ("PORT", "HOST")}
    return {**kept, **env}


class TestStartRefusesNumbersOutOfRange:
    @pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
    @pytest.mark.parametrize("name", [v.names[0] for v in NUMBERS])
    def test_refused_with_one_line(self, name: str, value: str) -> None:
        """Every numeric variable set to inf, nan, 1e12, a negative number or nothing:
        `python -m app` exits at once with one line naming the variable, no traceback
        (before, 1e12 seconds of settle time started a service that answered `200 []`)."""
        result = refused_at_start({**_clean_env(PORT=str(free_port())), name: value}, name, value)
        assert result.stdout == "", f"{name}={value!r} printed {result.stdout[:300]!r}"


def refused_at_start(env: dict[str, str], name: str, value: str) -> subprocess.CompletedProcess[str]:
    """`python -m app` with ``env``, which sets ``name`` to ``value``: it must exit at once,
    not zero, with one line on stderr naming the variable."""
    try:
        result = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, timeout=60,
                                env=env, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}={value!r}: the service started instead of refusing")
    assert result.returncode != 0, f"{name}={value!r} was accepted: {result.stderr[-300:]}"
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith(f"configuration error: {name}"), (
        f"{name}={value!r}: {result.stderr[-1000:]!r}")
    return result


URL_PASSWORD = "pw-8c1f2e"


class TestStartRefusesLenientValues:
    @pytest.mark.parametrize("name,value", [
        ("PORT", "1_000"), ("PORT", "\uff15\uff10\uff10\uff10"), ("HUBSPOT_SEARCH_CONCURRENCY", "0"),
        ("HUBSPOT_SEARCH_CONCURRENCY", "11"), ("HUBSPOT_BASE_URL", "http://[::1"),
        ("HUBSPOT_BASE_URL", "http://127.0.0.1:99999"), ("HUBSPOT_BASE_URL", "http://:8080"),
        ("HUBSPOT_BASE_URL", f"http://user:{URL_PASSWORD}@127.0.0.1:9"),
        ("base-url", f"https://sesam:{URL_PASSWORD}@api.hubapi.com/crm/v3"),
    ], ids=repr)
    def test_refused_with_one_line(self, name: str, value: str) -> None:
        """A number in other than ASCII digits, a concurrency outside 1-10, a base URL that
        does not parse, names no host, has a port outside 1-65535 or carries user info:
        `python -m app` exits at once with one line naming the variable, and never prints
        a password of the URL (before, `http://[::1` was a traceback, and user info was
        taken, sent as Basic auth instead of the token, and logged at start)."""
        env = {**_clean_env(PORT=str(free_port()), HUBSPOT_ACCESS_TOKEN=TOKEN), name: value}
        result = refused_at_start(env, name, value)
        assert URL_PASSWORD not in result.stderr + result.stdout, (
            f"{name}: the password is shown: {result.stderr.strip()}")


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in KB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)[1])


def send_header_of(port: int, size: int) -> bytes:
    """Send GET /health with one header of ``size`` bytes; what the server answered (it
    may close the connection before all is sent)."""
    chunk = b"a" * (1024 * 1024)
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
            for start in range(0, size, len(chunk)):
                sock.sendall(chunk[:size - start])
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while data := sock.recv(65536):
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


class TestServerBoundsTheRequestHead:
    def test_a_100_mb_header_does_not_grow_memory(self, started) -> None:
        """One request with a 100 MB header to /health (open without credentials): the
        server stops reading it after 64 KB, the peak memory of the service grows by less
        than 16 MB (it grew by 200 MB before), and the service goes on serving."""
        port = free_port()
        process = started("--sandbox", PORT=str(port), SANDBOX_CONTACTS="100")
        assert wait_until_up(f"http://127.0.0.1:{port}/health", process).status_code == 200
        before = peak_rss_kb(process.pid)
        answer = send_header_of(port, 100 * 1024 * 1024)
        grown = peak_rss_kb(process.pid) - before
        assert grown < 16 * 1024, f"peak RSS grew by {grown / 1024:.1f} MB for one header"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=30)
        assert health.status_code == 200, health.text

    @pytest.mark.parametrize("size,status", [(20_000, 431), (70_000, 400)])
    def test_a_large_header_is_refused_by_status(self, started, size: int, status: int) -> None:
        """A header past the service's 16 KB is a 431 problem+json; past the server's
        64 KB, the server answers 400 itself and closes the connection."""
        port = free_port()
        process = started("--sandbox", PORT=str(port), SANDBOX_CONTACTS="100")
        wait_until_up(f"http://127.0.0.1:{port}/health", process)
        answer = send_header_of(port, size)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]


class TestLogsOfTheStartedService:
    def test_echoed_token_is_redacted_in_logs_metrics_and_bodies(
            self, started, stand_in: EchoingHubSpot) -> None:
        """The started service behind the echoing stand-in, through an error before the
        body, one mid-stream, an unusable answer and echoed properties: the token is in
        no answer, no log line and no metric, and the log says what failed (redacted)."""
        port = free_port()
        process = started(PORT=str(port), HUBSPOT_ACCESS_TOKEN=TOKEN,
                          HUBSPOT_BASE_URL=stand_in.url, HUBSPOT_SEARCH_SETTLE_SECONDS="5",
                          HUBSPOT_SEARCH_PAGE_SIZE=str(PAGE_SIZE), HUBSPOT_SEARCH_CONCURRENCY="1",
                          HUBSPOT_RETRY_INITIAL_WAIT="0.01", HUBSPOT_MAX_RETRIES="1",
                          HUBSPOT_SEARCH_RATE_PER_SECOND="100")
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/health", process)
        answers = []
        for echo in [Echo("error", status=500), Echo("error", status=403, skip=4),
                     Echo("unusable"), Echo("properties")]:
            stand_in.echo, stand_in.searches = echo, 0
            answers.append(requests.get(url + "/get_contacts", timeout=120))
        answers.append(requests.get(url + "/metrics", timeout=30))
        process.terminate()
        log, _ = process.communicate(timeout=30)
        for answer in answers:
            assert TOKEN not in answer.text, f"{answer.url}: {answer.text[-300:]}"
        assert [a.status_code for a in answers] == [502, 200, 502, 200, 200], answers
        assert TOKEN not in log, "the token is in the log"
        assert "export of contacts aborted" in log and REDACTED in log, log[-2000:]


class TestTutorialOperator:
    def test_since_operator_warning_states_the_real_semantics(self, started) -> None:
        """The tutorial's since-operator is logged as without effect, with what `since`
        really means: a _updated value is exclusive, a plain timestamp inclusive."""
        process = started("--sandbox", PORT=str(free_port()), SANDBOX_CONTACTS="10",
                          **{"since-operator": "GT"})
        for _ in range(20):
            line = process.stdout.readline()
            if "since-operator" in line:
                break
        else:
            pytest.fail("no since-operator warning in the first 20 lines")
        assert "strictly after" in line and "includes its millisecond" in line, line


class TestLogFormats:
    @pytest.mark.parametrize("fmt", ["json", "text"])
    def test_every_line_whole_and_without_terminal_escapes(self, started, fmt: str) -> None:
        """In both formats the export's summary carries every field (the counts an
        operator reads), and no line carries uvicorn's coloured copy of its message."""
        port = free_port()
        process = started("--sandbox", PORT=str(port), SANDBOX_CONTACTS="100", LOG_FORMAT=fmt)
        wait_until_up(f"http://127.0.0.1:{port}/health", process)
        assert requests.get(f"http://127.0.0.1:{port}/get_contacts", params={"limit": "3"},
                            timeout=60).status_code == 200
        process.terminate()
        log, _ = process.communicate(timeout=30)
        assert "\x1b" not in log and "color_message" not in log, log[:2000]
        (summary,) = [line for line in log.splitlines() if "export of contacts ok" in line]
        if fmt == "json":
            fields = json.loads(summary)
            assert (fields["entities"], fields["outcome"], fields["limit"]) == (3, "ok", 3), summary
        else:
            assert " entities=3 " in summary and " outcome=ok " in summary and " limit=3 " in summary, summary


class TestBoundsAtTheirEdge:
    """Bounds of a mutation audit that no test pinned, each at its exact edge."""

    @pytest.mark.parametrize("announced", [True, False], ids=["announced", "streamed"])
    def test_a_response_header_holding_the_token_is_redacted(self, announced: bool) -> None:
        """A header of an answer that quotes the token (say, an upstream value passed on)
        leaves redacted, whether the body's length is announced or it streams."""
        length = [(b"content-length", b"2")] if announced else []

        async def quoting(scope, receive, send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"x-upstream", f"Bearer {TOKEN}; tail".encode()), *length]})
            await send({"type": "http.response.body", "body": b"ok"})

        response = TestClient(RedactResponses(quoting, Redactor(TOKEN))).get("/")
        assert response.headers["x-upstream"] == f"Bearer {REDACTED}; tail", response.headers
        assert_nothing_secret(response, f"a header, {'announced' if announced else 'streamed'}")

    @pytest.mark.parametrize("extra,status", [(0, 200), (1, 431)], ids=["at the limit", "one over"])
    def test_the_header_count_limit(self, extra: int, status: int) -> None:
        """Exactly MAX_HEADERS request headers are served; one more is a 431."""
        seen, app = _recording()
        client = TestClient(RequestLimits(app))
        fixed = {"host": "testserver", "accept": "*/*", "accept-encoding": "identity",
                 "connection": "keep-alive", "user-agent": "sesam"}
        fill = {f"x-h{i}": "1" for i in range(MAX_HEADERS + extra - len(fixed))}
        response = client.get("/health", headers={**fixed, **fill})
        assert response.status_code == status, f"{MAX_HEADERS + extra} headers: {response.text[:200]}"
        if status == 200:
            assert seen == [MAX_HEADERS], f"the request brought {seen} headers, not {MAX_HEADERS}"

    @pytest.mark.parametrize("extra,status", [(0, 200), (1, 431)], ids=["at the limit", "one over"])
    def test_the_header_bytes_limit(self, extra: int, status: int) -> None:
        """Headers of exactly MAX_HEADER_BYTES (names and values) are served; one byte more
        is a 431."""
        seen_bytes: list[int] = []

        async def app(scope, receive, send) -> None:
            seen_bytes.append(sum(len(n) + len(v) for n, v in scope["headers"]))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        client = TestClient(RequestLimits(app))
        fixed = {"host": "testserver", "accept": "*/*", "accept-encoding": "identity",
                 "connection": "keep-alive", "user-agent": "sesam"}
        used = sum(len(name) + len(value) for name, value in fixed.items()) + len("x-big")
        response = client.get("/health", headers={**fixed, "x-big": "a" * (MAX_HEADER_BYTES + extra - used)})
        assert response.status_code == status, f"{MAX_HEADER_BYTES + extra} bytes: {response.text[:200]}"
        if status == 200:
            assert seen_bytes == [MAX_HEADER_BYTES], f"{seen_bytes} bytes, not {MAX_HEADER_BYTES}"

    @pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
    def test_the_basic_scheme_in_any_case(self, configure, scheme: str) -> None:
        """RFC 7235 auth schemes are case-insensitive: `basic` and `BASIC` with the right
        credentials pass (Sesam or a proxy may write it so); the same scheme with a wrong
        password is still a 401."""
        guarded = configure(auth_username="sesam", auth_password="s3cret")
        encoded = base64.b64encode(b"sesam:s3cret").decode()
        wrong = base64.b64encode(b"sesam:wrong").decode()
        right = guarded.get("/metrics", headers={"Authorization": f"{scheme} {encoded}"})
        assert right.status_code == 200, f"{scheme}: {right.status_code} {right.text[:200]}"
        refused = guarded.get("/metrics", headers={"Authorization": f"{scheme} {wrong}"})
        assert refused.status_code == 401, f"{scheme} with a wrong password: {refused.status_code}"


def _recording():
    """An app that records how many headers each request brought, and answers 200."""
    seen: list[int] = []

    async def app(scope, receive, send) -> None:
        seen.append(len(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return seen, app
