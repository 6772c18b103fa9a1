"""HubSpot misbehaving while /get_contacts runs, each time with an emulated Sesam pipe.

Two things are pinned per fault. What an operator sees: a fault that retries absorb
gives a complete export; one that does not gives a problem+json status (or, once the
body has begun, a body that is not valid JSON) saying what happened, without a stack
trace. And what a Sesam pipe keeps: a run during the fault either succeeds completely or
fails without its offset passing a contact it did not store, and once the fault clears
the next run brings the pipe back in sync with HubSpot.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Callable

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from app.hubspot.budget import Budget
from app.sync.positions import encode_key, encode_position
from app.web.stream import CHUNK_BYTES
from sandbox import Fault, Sandbox

from .sesam import SesamPipe, assert_in_sync, settle

ABSORBED = "absorbed"  # the pipe run succeeds: retries hid the fault
ABORTED = "aborted"  # the pipe run fails on a body that is not valid JSON
Outcome = int | str  # ABSORBED, ABORTED or the status that fails the pipe run

RETRY_MESSAGE = "HubSpot call failed, retrying"
CORRELATION = "4c8a1f7e-0d2b-4b6e-9a55-fa017e570001"  # a UUID, as HubSpot sends
WRONG_TOKEN = "pat-na1-0000-wrong-token-fault-test"
LEAKS = re.compile(r'Traceback|File "|\.py\b|site-packages|/work/|/usr/')
CATEGORIES = {401: "INVALID_AUTHENTICATION", 403: "MISSING_SCOPES"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

MODIFIED, CREATED, ARCHIVED = 300, 5, 3


def hubspot_error(message: str, category: str) -> dict:
    """An error body as HubSpot sends it, with a correlationId the test can look for."""
    return {"status": "error", "message": message, "correlationId": CORRELATION,
            "category": category}


@pytest.fixture(name="strategy", params=[("max", 100), ("chronological", 40)],
                ids=["max", "chronological-40"])
def _strategy(request: pytest.FixtureRequest) -> tuple[str, int]:
    """The Sesam continuation strategy (and page size) of the pipe under test."""
    return request.param


# -- what the service answers --------------------------------------------------------


def retries(caplog: pytest.LogCaptureFixture) -> int:
    """How many HubSpot calls the service retried since the log was last cleared."""
    return sum(record.getMessage() == RETRY_MESSAGE for record in caplog.records)


def calls(sandbox: Sandbox, endpoint: str) -> list[int]:
    """The statuses the sandbox answered to calls of one endpoint, in order."""
    suffix = {"search": "/search", "properties": "/properties/contacts",
              "list": "/objects/contacts"}[endpoint]
    return [r["status"] for r in sandbox.request_log if r["path"].endswith(suffix)]


def get_with(service: TestClient, sandbox: Sandbox, fault: Fault | None,
             caplog: pytest.LogCaptureFixture) -> httpx.Response:
    """A full export while ``fault`` is armed (with fresh request counts and log)."""
    sandbox.reset_counters()
    caplog.clear()
    if fault is not None:
        sandbox.inject(fault)
    response = service.get("/get_contacts")
    sandbox.clear_faults()
    return response


def assert_complete(response: httpx.Response, sandbox: Sandbox, context: str) -> None:
    """A 200 JSON array of every live contact, once each, in strictly increasing order."""
    assert response.status_code == 200, f"{context}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/json"), (
        f"{context}: {response.headers}")
    entities = orjson.loads(response.content)
    updates = [e["_updated"] for e in entities]
    assert all(a < b for a, b in zip(updates, updates[1:])), f"{context}: not strictly increasing"
    ids = [e["_id"] for e in entities]
    assert len(ids) == len(set(ids)) and set(ids) == set(sandbox.live()), (
        f"{context}: {len(ids)} entities for {len(sandbox.live())} live contacts")


def assert_problem(response: httpx.Response, status: int, says: str, context: str) -> dict:
    """A problem+json answer of ``status`` whose title or detail contains ``says``, with
    Retry-After on a 503 and nothing of the service's insides."""
    assert response.status_code == status, (
        f"{context}: {response.status_code} instead of {status}: {response.text[:300]}")
    assert response.headers["content-type"] == "application/problem+json", (
        f"{context}: {response.headers}")
    problem = response.json()
    assert problem["status"] == status and problem["title"], f"{context}: {problem}"
    assert says in problem["detail"] or says in problem["title"], (
        f"{context}: the problem does not say {says!r}: {problem}")
    assert not LEAKS.search(response.text), f"{context}: the body shows internals: {response.text}"
    if status == 503:
        assert int(response.headers.get("retry-after", "0")) >= 1, (
            f"{context}: a 503 without Retry-After: {response.headers}")
    return problem


# -- what the pipe keeps -----------------------------------------------------------------


def change_contacts(sandbox: Sandbox) -> None:
    """Modify, create and archive contacts on many milliseconds (enough entities for more
    than one body chunk), then let them settle."""
    live = sorted(sandbox.live(), key=int)
    sandbox.advance(60_000)
    for first in range(0, MODIFIED, 10):
        sandbox.modify(live[first:first + 10], {"firstname": f"changed{first}"})
        sandbox.advance(3)
    sandbox.create(count=CREATED)
    sandbox.advance(1)
    sandbox.archive(live[-ARCHIVED:])
    settle(sandbox)


def synced_pipe(service: TestClient, sandbox: Sandbox, strategy: tuple[str, int]) -> SesamPipe:
    """A pipe that did a full run, with contacts changed in HubSpot since then."""
    name, page_size = strategy
    pipe = SesamPipe(service, name, page_size=page_size)  # type: ignore[arg-type]
    pipe.run()
    assert_in_sync(pipe, sandbox, f"{name}: after the first full run")
    change_contacts(sandbox)
    return pipe


def positions(sandbox: Sandbox) -> dict[str, str]:
    """Every contact's `_updated` as of its latest change (modification or deletion), and
    the `_updated` of each id merged into a live contact (just before it)."""
    live = sandbox.live()
    merged = {m: encode_position((live[cid], int(cid), int(m)))
              for cid, ids in sandbox.merged().items() for m in ids}
    return merged | {cid: encode_key((ms, int(cid)))
                     for cid, ms in [*live.items(), *sandbox.archived().items()]}


def assert_nothing_skipped(pipe: SesamPipe, sandbox: Sandbox, context: str) -> None:
    """Every contact whose latest change lies at or before the pipe's offset is held in
    that latest state: live contacts at their last modification, deleted ones not as live."""
    offset, held, live = pipe.offset or "", pipe.live(), sandbox.live()
    skipped = sorted(cid for cid, position in positions(sandbox).items()
                     if position <= offset and held.get(cid) != live.get(cid))
    assert not skipped, (
        f"{context}: the offset {offset} passed {len(skipped)} changes it did not store, "
        f"e.g. contacts {skipped[:5]}")


def run_through(pipe: SesamPipe, sandbox: Sandbox, outcome: Outcome,
                recover: Callable[[], None] | None = None) -> None:
    """One pipe run during the fault, with ``outcome``; then the fault clears (``recover``,
    by default the sandbox's faults are cleared), and the next run leaves the pipe in sync."""
    context = f"{pipe.strategy} pipe"
    before = pipe.offset
    if outcome == ABSORBED:
        due = sum(position > (before or "") for position in positions(sandbox).values())
        assert due >= MODIFIED, f"{context}: only {due} changes to deliver"
        received = pipe.run()
        assert received == due, f"{context}: {received} entities for {due} changes"
    else:
        expected = orjson.JSONDecodeError if outcome == ABORTED else AssertionError
        with pytest.raises(expected) as failure:
            pipe.run()
        if outcome != ABORTED:
            assert f": {outcome} " in str(failure.value), (
                f"{context}: the run failed otherwise than on a {outcome}: {failure.value}")
        if pipe.strategy == "max":
            assert pipe.offset == before, f"{context}: the offset moved on a failed run"
        assert pipe.offset is not None and before is not None and pipe.offset >= before, (
            f"{context}: the offset went from {before} back to {pipe.offset}")
        assert_nothing_skipped(pipe, sandbox, f"{context} after the failed run")
        (recover or sandbox.clear_faults)()
        pipe.run()
    assert_in_sync(pipe, sandbox, f"{context} once the fault cleared")


def pipe_through(service: TestClient, sandbox: Sandbox, strategy: tuple[str, int],
                 fault: Fault, outcome: Outcome) -> None:
    """A synced pipe, contacts changed, a run while ``fault`` is armed, then recovery."""
    pipe = synced_pipe(service, sandbox, strategy)
    sandbox.inject(fault)
    run_through(pipe, sandbox, outcome)


# -- the faults ---------------------------------------------------------------------------


class TestRateLimit:
    STORM = Fault(endpoint="search", kind="rate_limit", times=4)
    MAX_RETRIES = 5

    def test_a_429_storm_without_retry_after_is_absorbed(self, configure, sandbox: Sandbox,
                                                         strategy, caplog) -> None:
        """Four 429s in a row on search, without Retry-After: the client backs off by
        itself and the export is complete; a pipe run through them succeeds."""
        service = configure(max_retries=self.MAX_RETRIES)
        assert_complete(get_with(service, sandbox, self.STORM, caplog), sandbox, "429 storm")
        assert calls(sandbox, "search").count(429) == 4, calls(sandbox, "search")
        assert retries(caplog) == 4, f"{retries(caplog)} retries for 4 429s"
        pipe_through(service, sandbox, strategy, self.STORM, ABSORBED)

    def test_a_search_429_waits_one_slot_of_the_budget(self, configure, sandbox: Sandbox,
                                                       caplog) -> None:
        """Search's limit is per second and its 429 says no Retry-After: the retry waits
        about one slot of the search budget (here 1/4 s, doubling on each 429 in a row),
        not the general backoff (here 5 s), which at HubSpot's whole limit would idle the
        budget for seconds."""
        service = configure(search_rate_per_second=4, retry_initial_wait=5, max_retries=3)
        fault = Fault(endpoint="search", kind="rate_limit", times=2)
        assert_complete(get_with(service, sandbox, fault, caplog), sandbox, "two 429s on search")
        waits = [record.wait_seconds for record in caplog.records
                 if record.getMessage() == RETRY_MESSAGE]
        assert len(waits) == 2 and 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 0.75, (
            f"waits {waits} for two search 429s at 4/s")

    def test_the_budget_gives_its_slots_in_the_order_they_were_asked_for(self) -> None:
        """An export hands its pages over in the order it requested them, so the budget
        gives its slots in that order too, one caller at a time in the limiter: a page
        overtaken by pages requested after it would hold them all up for a whole window
        (bench B2 measures what that cost)."""
        limiter = _OneAtATime()
        budget = Budget(limiter)  # type: ignore[arg-type]  # anything with try_acquire
        callers = []
        for number in range(5):
            caller = threading.Thread(target=budget.acquire, name=f"page {number}", daemon=True)
            caller.start()
            callers.append(caller)
            # the next asks only once this one has asked (holds its turn or the limiter)
            _wait_for(lambda: budget._issued == number + 1, f"page {number} to ask")  # noqa: B023
        for slot in range(1, 6):
            limiter.slots.release()
            _wait_for(lambda: len(limiter.through) == slot, f"slot {slot} to be taken")  # noqa: B023
        for caller in callers:
            caller.join(timeout=5)
        assert limiter.through == [f"page {number}" for number in range(5)], (
            f"slots went to {limiter.through}, not in the order the pages asked")
        assert limiter.most_inside == 1, (
            f"{limiter.most_inside} callers waited in the limiter at once: they race for a slot")

    def test_retry_after_is_honoured(self, service: TestClient, sandbox: Sandbox, strategy,
                                     caplog) -> None:
        """A 429 that says Retry-After: 1 is retried no sooner than a second later (not
        after the much shorter backoff), and the export is complete."""
        fault = Fault(endpoint="search", kind="rate_limit", times=1, headers={"Retry-After": "1"})
        began = time.monotonic()
        response = get_with(service, sandbox, fault, caplog)
        waited = time.monotonic() - began
        assert_complete(response, sandbox, "429 with Retry-After")
        assert waited >= 1.0 and retries(caplog) == 1, (
            f"{retries(caplog)} retries after {waited:.2f} s for Retry-After: 1")
        pipe_through(service, sandbox, strategy, fault, ABSORBED)

    def test_a_persistent_429_is_a_503_after_bounded_calls(self, configure, sandbox: Sandbox,
                                                           strategy, caplog) -> None:
        """429 on every search: 503 problem+json with Retry-After and HubSpot's
        correlationId, after at most max_retries + 1 search calls; the pipe run fails
        without losing anything and recovers once the limit lifts."""
        service = configure(max_retries=self.MAX_RETRIES)
        fault = Fault(endpoint="search", kind="rate_limit", times=None)
        problem = assert_problem(get_with(service, sandbox, fault, caplog), 503, "429",
                                 "persistent 429")
        assert UUID.fullmatch(problem.get("correlationId", "")), f"no correlationId: {problem}"
        searches = calls(sandbox, "search")
        assert 1 < len(searches) <= self.MAX_RETRIES + 1 and set(searches) == {429}, (
            f"{len(searches)} search calls {searches} for max_retries={self.MAX_RETRIES}")
        pipe_through(service, sandbox, strategy, fault, 503)


class TestUnavailable:
    def test_three_503s_are_absorbed(self, service: TestClient, sandbox: Sandbox, strategy,
                                     caplog) -> None:
        """Three 503s in a row on search are retried (max_retries is 3): the export is
        complete and a pipe run through them succeeds."""
        fault = Fault(endpoint="search", status=503, times=3,
                      body=hubspot_error("Service Unavailable", "INTERNAL_ERROR"))
        assert_complete(get_with(service, sandbox, fault, caplog), sandbox, "three 503s")
        assert calls(sandbox, "search").count(503) == 3, calls(sandbox, "search")
        assert retries(caplog) == 3, f"{retries(caplog)} retries for three 503s"
        pipe_through(service, sandbox, strategy, fault, ABSORBED)

    def test_cloudflare_timeouts_are_absorbed(self, service: TestClient, sandbox: Sandbox,
                                              strategy, caplog) -> None:
        """Two 524s (Cloudflare's timeout, an HTML page for a body) on search are retried
        like any 5xx: the export is complete and a pipe run through them succeeds."""
        fault = Fault(endpoint="search", kind="html", status=524, times=2)
        assert_complete(get_with(service, sandbox, fault, caplog), sandbox, "two 524 pages")
        assert calls(sandbox, "search").count(524) == 2, calls(sandbox, "search")
        assert retries(caplog) == 2, f"{retries(caplog)} retries for two 524s"
        pipe_through(service, sandbox, strategy, fault, ABSORBED)

    def test_a_migration_is_a_503_with_hubspots_retry_after(self, service: TestClient,
                                                            sandbox: Sandbox, strategy,
                                                            caplog) -> None:
        """HubSpot's 477 "Migration in Progress" with `Retry-After: 3600` on every search: a
        503 that passes HubSpot's wait on, not a 502; the pipe run fails without losing
        anything and recovers once the migration is over."""
        fault = Fault(endpoint="search", kind="migration", times=None)
        response = get_with(service, sandbox, fault, caplog)
        assert_problem(response, 503, "477", "477 migration")
        assert response.headers["retry-after"] == "3600", response.headers
        pipe_through(service, sandbox, strategy, fault, 503)


    def test_a_locked_answer_waits_at_least_two_seconds(self, service: TestClient,
                                                        sandbox: Sandbox, caplog) -> None:
        """A 423 (locked) is retried after at least 2 s, as HubSpot asks, however short the
        configured backoff: the export is then complete."""
        fault = Fault(endpoint="search", status=423, times=1,
                      body=hubspot_error("Locked", "LOCKED"))
        began = time.monotonic()
        assert_complete(get_with(service, sandbox, fault, caplog), sandbox, "one 423")
        waited = time.monotonic() - began
        assert waited >= 2.0, f"retried a 423 after {waited:.2f} s"
        assert retries(caplog) == 1, f"{retries(caplog)} retries for one 423"

    def test_an_unreachable_hubspot_is_a_504(self, configure, sandbox: Sandbox, caplog) -> None:
        """Nothing listening at HUBSPOT_BASE_URL: 504 problem+json saying HubSpot is
        unreachable, after the bounded retries."""
        with socket.socket() as sock:  # a loopback port that nothing listens on
            sock.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        service = configure(base_url=closed, connect_timeout=0.5)
        assert_problem(get_with(service, sandbox, None, caplog), 504, "unreachable", "no HubSpot")
        assert retries(caplog) == 3, f"{retries(caplog)} retries with max_retries=3"


class TestTimeouts:
    """HubSpot answering later than the read timeout.

    The hang lasts far longer than the timeout, so only the timeout ends the wait; the
    timeout (2 s) is far longer than a normal sandbox answer even on a loaded machine, so
    the retries counted are the hangs and nothing else."""

    READ_TIMEOUT = 2.0
    HANG = {"endpoint": "search", "kind": "hang", "seconds": 10 * READ_TIMEOUT}

    @pytest.fixture(name="impatient")
    def _impatient(self, configure) -> TestClient:
        return configure(read_timeout=self.READ_TIMEOUT, max_retries=1)

    def test_one_hang_is_absorbed(self, impatient: TestClient, sandbox: Sandbox, strategy,
                                  caplog) -> None:
        """One search that hangs past the read timeout is abandoned and retried: the
        export is complete and a pipe run through it succeeds."""
        fault = Fault(**self.HANG, times=1)
        assert_complete(get_with(impatient, sandbox, fault, caplog), sandbox, "one hang")
        assert retries(caplog) == 1, f"{retries(caplog)} retries for one hang"
        pipe_through(impatient, sandbox, strategy, fault, ABSORBED)

    def test_a_persistent_hang_is_a_504(self, impatient: TestClient, sandbox: Sandbox,
                                        strategy, caplog) -> None:
        """Every search hanging past the read timeout: 504 problem+json saying HubSpot
        timed out, after max_retries + 1 attempts; the pipe run fails without loss."""
        fault = Fault(**self.HANG, times=None)
        assert_problem(get_with(impatient, sandbox, fault, caplog), 504, "timed out",
                       "persistent hang")
        assert retries(caplog) == 1, f"{retries(caplog)} retries with max_retries=1"
        pipe_through(impatient, sandbox, strategy, fault, 504)


class TestBrokenConnection:
    def test_a_body_cut_once_is_absorbed(self, service: TestClient, sandbox: Sandbox, strategy,
                                         caplog) -> None:
        """A search answer whose connection closes halfway through the body is read
        again: the export is complete and a pipe run through it succeeds."""
        fault = Fault(endpoint="search", kind="close", times=1)
        assert_complete(get_with(service, sandbox, fault, caplog), sandbox, "one cut body")
        assert retries(caplog) == 1, f"{retries(caplog)} retries for one cut body"
        pipe_through(service, sandbox, strategy, fault, ABSORBED)

    def test_bodies_cut_every_time_are_a_502(self, service: TestClient, sandbox: Sandbox,
                                             strategy, caplog) -> None:
        """Every search answer cut halfway: 502 problem+json saying HubSpot's answer was
        broken, after the retries; the pipe run fails without loss."""
        fault = Fault(endpoint="search", kind="close", times=None)
        assert_problem(get_with(service, sandbox, fault, caplog), 502, "broken", "cut bodies")
        assert retries(caplog) == 3, f"{retries(caplog)} retries with max_retries=3"
        pipe_through(service, sandbox, strategy, fault, 502)


class TestMidStream:
    PAGE_SIZE = 50
    FAULT = Fault(endpoint="search", status=500, skip=4, times=None,
                  body=hubspot_error("Internal error", "INTERNAL_ERROR"))

    def test_a_failure_after_the_first_chunk_cuts_the_body(self, configure, sandbox: Sandbox,
                                                           strategy, caplog) -> None:
        """A persistent 500 from the 5th search page on, after more than a chunk of the
        body was sent: status 200, but the body ends with the EXPORT ABORTED trailer
        (naming HubSpot's correlationId) and is not a JSON array. A "max" pipe fails on
        it without moving its offset; a chronological pipe with small pages gets a 502
        on the request that hits the fault and keeps what it stored. Once HubSpot
        recovers, both are in sync."""
        # One page at a time, so that "the 5th page" comes after the first chunk was sent.
        service = configure(search_page_size=self.PAGE_SIZE, search_concurrency=1)
        response = get_with(service, sandbox, self.FAULT, caplog)
        body = response.content
        assert response.status_code == 200 and body.startswith(b"[{"), (
            f"{response.status_code} {body[:200]!r}")
        assert len(body) > CHUNK_BYTES, f"only {len(body)} bytes: the fault hit before streaming"
        _, _, trailer = body.partition(b"\n!! EXPORT ABORTED: ")
        assert trailer and not body.rstrip().endswith(b"]"), (
            f"no EXPORT ABORTED trailer: {body[-300:]!r}")
        assert CORRELATION.encode() in trailer, f"the trailer lacks the correlationId: {trailer!r}"
        assert not LEAKS.search(trailer.decode()), f"the trailer shows internals: {trailer!r}"
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        searches = calls(sandbox, "search")
        assert searches.count(200) == 4 and searches.count(500) > 1, searches
        outcome = ABORTED if strategy[0] == "max" else 502
        pipe_through(service, sandbox, strategy, self.FAULT, outcome)


class TestRefused:
    """What retries cannot fix is answered at once, after exactly one HubSpot call."""

    def test_a_wrong_token_is_a_502_naming_the_variable(self, service: TestClient, configure,
                                                        sandbox: Sandbox, strategy,
                                                        caplog) -> None:
        """A token HubSpot refuses: 502 problem+json whose detail names
        HUBSPOT_ACCESS_TOKEN but not the token, after one call; a pipe run with it fails
        without loss and recovers once the token is right again."""
        wrong = configure(token=WRONG_TOKEN)
        response = get_with(wrong, sandbox, None, caplog)
        problem = assert_problem(response, 502, "HUBSPOT_ACCESS_TOKEN", "wrong token")
        assert WRONG_TOKEN not in response.text, "the refused token is in the answer"
        assert UUID.fullmatch(problem.get("correlationId", "")), f"no correlationId: {problem}"
        assert [r["status"] for r in sandbox.request_log] == [401], sandbox.request_log
        assert retries(caplog) == 0, "a refused token was retried"
        pipe = synced_pipe(service, sandbox, strategy)
        pipe.service = wrong
        run_through(pipe, sandbox, 502, recover=lambda: setattr(pipe, "service", service))

    @pytest.mark.parametrize("endpoint,status,says", [
        ("properties", 401, "HUBSPOT_ACCESS_TOKEN"),
        ("search", 403, "crm.objects.contacts.read"),
    ])
    def test_refusal_is_a_502_without_retries(self, configure, sandbox: Sandbox, strategy,
                                              caplog, endpoint: str, status: int,
                                              says: str) -> None:
        """A 401 on the property catalogue or a 403 (missing scope) on search: 502
        problem+json saying what to fix, with HubSpot's correlationId, after exactly one
        call; the pipe run fails without loss. (The catalogue is not cached here, so
        the pipe's run asks for it again.)"""
        service = configure(properties_cache_seconds=0)
        fault = Fault(endpoint=endpoint, status=status, times=None,
                      body=hubspot_error(f"refused ({status})", CATEGORIES[status]))
        problem = assert_problem(get_with(service, sandbox, fault, caplog), status=502, says=says,
                                 context=f"{status} on {endpoint}")
        assert problem.get("correlationId") == CORRELATION, f"correlationId lost: {problem}"
        assert calls(sandbox, endpoint) == [status], calls(sandbox, endpoint)
        assert retries(caplog) == 0, f"a {status} was retried"
        pipe_through(service, sandbox, strategy, fault, 502)

    def test_the_daily_limit_fails_fast_with_a_503(self, service: TestClient, sandbox: Sandbox,
                                                   strategy, caplog) -> None:
        """The portal's daily limit (429 with policyName DAILY): 503 problem+json with
        Retry-After saying so, after exactly one search call (retrying cannot help
        before midnight); the pipe run fails without loss."""
        fault = Fault(endpoint="search", kind="daily", times=None)
        problem = assert_problem(get_with(service, sandbox, fault, caplog), 503, "daily",
                                 "daily limit")
        assert UUID.fullmatch(problem.get("correlationId", "")), f"no correlationId: {problem}"
        assert calls(sandbox, "search") == [429], calls(sandbox, "search")
        assert retries(caplog) == 0, "the daily limit was retried"
        pipe_through(service, sandbox, strategy, fault, 503)


class _OneAtATime:
    """A limiter that lets one caller through per released slot, and records who."""

    def __init__(self) -> None:
        self.slots = threading.Semaphore(0)
        self.through: list[str] = []
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def try_acquire(self, name: str) -> bool:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        assert self.slots.acquire(timeout=10), "no slot within 10 s"
        with self._lock:
            self.inside -= 1
            self.through.append(threading.current_thread().name)
        return True


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.005)
