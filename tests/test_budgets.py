"""HubSpot's rate limits at scale: the client's budgets follow what HubSpot announces (its
per-second limit beside the ten-second one) and adapt to the 429s it sends; the sandbox
counts and announces those limits as HubSpot does.

The budgets run on a fake clock here; what they achieve in real time is measured in bench
B12, not asserted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import requests
from starlette.testclient import TestClient

from app.config import Settings
from app.hubspot import HubSpotClient, HubSpotError
from app.hubspot.budget import (
    ANNOUNCED_HEADROOM,
    DECREASE,
    DECREASE_HOLD_SECONDS,
    MIN_SHARE,
    RECOVERY_PER_SUCCESS,
    Budget,
    search_budget,
)
from app.object_types import standard_types
from bench.budget_model import drive
from sandbox import Fault, Sandbox, SandboxServer
from sandbox.common import ApiError, Request
from sandbox.faults import Gate
from sandbox.portal import GENERAL_RATE_PER_SECOND

from .conftest import make_service, sandbox_clock

SECONDLY = {"X-HubSpot-RateLimit-Secondly": "11", "X-HubSpot-RateLimit-Secondly-Remaining": "10"}
TEN_SECONDLY = {"X-HubSpot-RateLimit-Max": "110", "X-HubSpot-RateLimit-Remaining": "109",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}


class FakeClock:
    """Monotonic time that moves only when someone sleeps; the sleeps are kept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class Unlimited:
    """A limiter that never holds anyone up: only the budget's own spacing is left."""

    def try_acquire(self, name: str) -> bool:
        return True


class Buffered(Unlimited):
    """An unlimited limiter with pyrate-limiter's buffer: what it adds to a window it waits out."""

    buffer_ms = 50


def budget(per_second: float | None, clock: FakeClock) -> Budget:
    return Budget(Unlimited(), per_second, sleep=clock.sleep,  # type: ignore[arg-type]
                  monotonic=clock.monotonic)


class TestSpacing:
    def test_calls_leave_one_slot_of_the_configured_rate_apart(self) -> None:
        """The limiter alone lets a window's whole budget go at once; the budget spaces its
        calls at the configured rate instead (100 per 10 s: 100 ms apart, never 11 in one
        second)."""
        clock = FakeClock()
        spaced = budget(10, clock)
        for _ in range(4):
            spaced.acquire()
        assert clock.sleeps == [0.1, 0.1, 0.1], f"slept {clock.sleeps} between four calls at 10/s"

    def test_a_budget_without_a_rate_only_waits_in_its_limiter(self) -> None:
        clock = FakeClock()
        unspaced = budget(None, clock)
        for _ in range(3):
            unspaced.acquire()
        unspaced.limited()
        assert clock.sleeps == [] and unspaced.per_second is None, clock.sleeps


class TestAnnouncedLimits:
    @pytest.mark.parametrize(("headers", "announced"), [
        (SECONDLY, 11.0), (TEN_SECONDLY, 11.0), ({**TEN_SECONDLY, **SECONDLY}, 11.0),
        ({**TEN_SECONDLY, "X-HubSpot-RateLimit-Secondly": "8"}, 8.0),
        ({"X-HubSpot-RateLimit-Max": "50", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, 5.0),
    ])
    def test_the_budget_follows_the_lowest_rate_hubspot_announces(self, headers: dict[str, str],
                                                                   announced: float) -> None:
        """Configured at 100 calls/s, the budget spaces its calls at what HubSpot's headers
        announce, per second or per interval, whichever is lower, a little under it."""
        learnt = budget(100, FakeClock())
        learnt.learn(headers)
        assert learnt.per_second == pytest.approx(announced * ANNOUNCED_HEADROOM), (
            f"{headers} announce {announced}/s; spaced at {learnt.per_second}/s")

    def test_never_above_the_configured_budget(self) -> None:
        """HubSpot's 11/s is more than the configured 100 per 10 s: the budget stays at 10/s."""
        configured = budget(10, FakeClock())
        configured.learn({**TEN_SECONDLY, **SECONDLY})
        assert configured.per_second == 10, configured.per_second

    @pytest.mark.parametrize("headers", [
        {}, {"X-HubSpot-RateLimit-Secondly": "eleven"}, {"X-HubSpot-RateLimit-Secondly": "0"},
        {"X-HubSpot-RateLimit-Secondly": "-3"}, {"X-HubSpot-RateLimit-Secondly": "1" * 40},
        {"X-HubSpot-RateLimit-Max": "110", "X-HubSpot-RateLimit-Interval-Milliseconds": "0"},
    ])
    def test_what_announces_no_rate_changes_nothing(self, headers: dict[str, str]) -> None:
        unchanged = budget(100, FakeClock())
        unchanged.learn(headers)
        assert unchanged.per_second == 100, f"{headers} moved the budget to {unchanged.per_second}"


class TestAdaptation:
    def test_a_429_lowers_the_rate_once_per_hold_and_successes_restore_it(self) -> None:
        """AIMD: a 429 cuts the rate by DECREASE; the 429s of the calls in flight with it
        (within DECREASE_HOLD_SECONDS) cut nothing more; each answered call gives back
        RECOVERY_PER_SUCCESS of the ceiling, up to the ceiling and no further."""
        clock = FakeClock()
        adaptive = budget(5, clock)
        adaptive.limited()
        adaptive.limited()
        assert adaptive.per_second == pytest.approx(5 * DECREASE), adaptive.per_second
        clock.now += DECREASE_HOLD_SECONDS
        adaptive.limited()
        assert adaptive.per_second == pytest.approx(5 * DECREASE * DECREASE), adaptive.per_second
        adaptive.succeeded()
        assert adaptive.per_second == pytest.approx(5 * (DECREASE * DECREASE + RECOVERY_PER_SUCCESS))
        for _ in range(round(1 / RECOVERY_PER_SUCCESS)):
            adaptive.succeeded()
        assert adaptive.per_second == 5, f"{adaptive.per_second}/s after many successes"

    def test_the_lowered_rate_spaces_the_calls(self) -> None:
        """A 429 spaces the very next call at the lowered rate, not only those after it."""
        clock = FakeClock()
        adaptive = budget(5, clock)
        adaptive.acquire()
        adaptive.limited()
        adaptive.acquire()
        adaptive.acquire()
        assert clock.sleeps == [pytest.approx(1 / (5 * DECREASE))] * 2, clock.sleeps

    def test_a_budget_counting_hubspots_own_window_is_spaced_only_while_lowered(self) -> None:
        """Search's budget (`search_budget`): its limiter counts HubSpot's own second, so at
        the full rate its bursts are HubSpot's limit already and the budget adds no wait.
        After a 429 the calls still go five together, but five in the limiter's window as
        it keeps it (a second and its buffer) lengthened by 1 / share, until successes have
        brought the rate back."""
        clock = FakeClock()
        search = search_budget(5, Buffered(), sleep=clock.sleep, monotonic=clock.monotonic)  # type: ignore[arg-type]
        for _ in range(10):
            search.acquire()
        assert clock.sleeps == [] and search.per_second is None, clock.sleeps
        search.limited()
        for _ in range(10):
            search.acquire()
        window = (1 + Buffered.buffer_ms / 1000) / DECREASE
        assert clock.sleeps == [pytest.approx(window)] * 2, f"{clock.sleeps}: not five a {window:.3f} s"
        for _ in range(round(1 / RECOVERY_PER_SUCCESS)):
            search.succeeded()
        assert search.per_second is None, search.per_second

    def test_a_budget_built_not_adaptive_ignores_429s(self) -> None:
        """``Budget(adaptive=False)``, bench B12's plain limiter: 429s and answers leave its
        rate alone, so its calls keep leaving at the configured rate."""
        clock = FakeClock()
        plain = Budget(Unlimited(), 5, adaptive=False,  # type: ignore[arg-type]
                       sleep=clock.sleep, monotonic=clock.monotonic)
        plain.limited()
        plain.succeeded()
        assert plain.per_second == 5, f"{plain.per_second}/s after a 429"
        plain.acquire()
        plain.acquire()
        assert clock.sleeps == [0.2], clock.sleeps

    def test_a_429_storm_never_stops_the_budget(self) -> None:
        clock = FakeClock()
        adaptive = budget(5, clock)
        for _ in range(100):
            clock.now += DECREASE_HOLD_SECONDS
            adaptive.limited()
        assert adaptive.per_second == pytest.approx(5 * MIN_SHARE), adaptive.per_second


class TestAgainstHubSpotsWindow:
    """The search budget against the sandbox's sliding search window, on a fake clock
    (`bench.budget_model`, bench B16): searches that arrive late at random, as the network
    delivers them. Deterministic: a seeded draw, no real time."""

    @pytest.mark.parametrize("jitter_ms", [80, 120, 160, 240])
    def test_the_adaptive_budget_draws_almost_no_429s_whatever_the_jitter(self, jitter_ms: int) -> None:
        """At HubSpot's whole limit (5/s), 2,000 searches arriving 0..J ms late: the
        adaptive budget draws at most 1 429 in 100 searches and keeps 0.80 of the limit."""
        adaptive = drive(2000, jitter_ms, adaptive=True)
        assert adaptive.refused_per_100 <= 1 and adaptive.share >= 0.8, (
            f"{jitter_ms} ms: {adaptive.refused} 429s at {adaptive.share:.3f} of the limit")

    @pytest.mark.parametrize("jitter_ms", [120, 160, 240])
    def test_without_adapting_late_arrivals_draw_429s_at_every_bursts_edge(self, jitter_ms: int) -> None:
        """The same searches through the plain limiter (`adaptive=False`): once arrivals are
        later than its 50 ms buffer, HubSpot's window catches bursts' edges again and again,
        at least five times as often as the adaptive budget's."""
        adaptive, plain = drive(2000, jitter_ms, adaptive=True), drive(2000, jitter_ms, adaptive=False)
        assert plain.refused >= 5 * max(1, adaptive.refused), (
            f"{jitter_ms} ms: the plain limiter drew {plain.refused} 429s, the adaptive {adaptive.refused}")

    def test_on_time_arrivals_draw_none_at_the_whole_limit(self) -> None:
        """With arrivals on time (0..40 ms late: inside pyrate-limiter's 50 ms buffer), the
        budget never meets HubSpot's window and runs at its whole rate (five a 1.05 s)."""
        outcome = drive(2000, 40, adaptive=True)
        assert outcome.refused == 0 and outcome.share >= 0.95, outcome


# --------------------------------------------------------------------------- the sandbox


@pytest.fixture(name="gate_clock")
def _gate_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The sandbox's rate limits on a fake clock."""
    clock = FakeClock()
    monkeypatch.setattr("sandbox.faults.time.monotonic", clock.monotonic)
    monkeypatch.setattr("sandbox.faults.time.monotonic_ns", lambda: round(clock.now * 1e9))
    monkeypatch.setattr("sandbox.faults.time.sleep", clock.sleep)
    return clock


def outcomes(gate: Gate, clock: FakeClock, times: list[float], **limits: object) -> list[int]:
    """The status of a request at each of ``times`` (seconds from now)."""
    start, statuses = clock.now, []
    for at in times:
        clock.now = start + at
        try:
            gate.admit(**limits)  # type: ignore[arg-type]
            statuses.append(200)
        except ApiError as refused:
            statuses.append(refused.reply.status)
    return statuses


class TestSandboxLimits:
    def test_general_calls_are_also_limited_per_second(self, gate_clock: FakeClock) -> None:
        """Beside 110 per 10 s, 11 a second: the 12th call within one second is a 429
        SECONDLY; a second later there is room again."""
        gate = Gate()
        statuses = outcomes(gate, gate_clock, [i * 0.05 for i in range(12)] + [1.01],
                            endpoint="list", search_limit=None, general_limit=110, secondly_limit=11)
        assert statuses == [200] * 11 + [429, 200], statuses

    def test_the_per_second_refusal_names_its_policy(self, gate_clock: FakeClock) -> None:
        gate = Gate()
        gate.admit("list", None, 110, 1)
        with pytest.raises(ApiError) as refused:
            gate.admit("list", None, 110, 1)
        reply = refused.value.reply
        assert reply.status == 429 and reply.body["policyName"] == "SECONDLY", reply.body
        assert reply.headers["X-HubSpot-RateLimit-Secondly-Remaining"] == "0", reply.headers

    def test_a_sliding_search_window_counts_the_refused_arrivals(self, gate_clock: FakeClock) -> None:
        """At 2 searches/s: the third search is refused; 1.05 s after the first, the
        "admitted" window has room again (it counts the two let through), the "arrivals"
        window does not (the refused one arrived within the last 1000 ms)."""
        times = [0, 0.5, 0.6, 1.05]
        admitted = outcomes(Gate(), gate_clock, times, endpoint="search",
                            search_limit=2, general_limit=None)
        arrivals = outcomes(Gate(), gate_clock, times, endpoint="search",
                            search_limit=2, general_limit=None, search_window="arrivals")
        assert (admitted, arrivals) == ([200, 200, 429, 200], [200, 200, 429, 429]), (admitted, arrivals)

    def test_the_sliding_window_meets_an_arrival_exactly_a_second_later(
            self, gate_clock: FakeClock) -> None:
        """Six searches exactly 200 ms apart at 5/s: the "arrivals" window has let the first
        go when the sixth comes (exclusive at 1000 ms), the "sliding" one, inclusive at both
        ends as an independent gateway counts, refuses the sixth: a client spaced exactly at
        the limit draws 429s there."""
        times = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
        arrivals = outcomes(Gate(), gate_clock, times, endpoint="search",
                            search_limit=5, general_limit=None, search_window="arrivals")
        sliding = outcomes(Gate(), gate_clock, times, endpoint="search",
                           search_limit=5, general_limit=None, search_window="sliding")
        assert (arrivals, sliding) == ([200] * 6, [200] * 5 + [429]), (arrivals, sliding)

    def test_the_sliding_window_counts_refused_arrivals_and_forgets_older_ones(
            self, gate_clock: FakeClock) -> None:
        """At 2/s: the refused third search still counts, so one 1000 ms after it is refused
        (it meets the second and the third); 1001 ms after the third there is room."""
        statuses = outcomes(Gate(), gate_clock, [0, 0.5, 0.6, 1.5, 2.501],
                            endpoint="search", search_limit=2, general_limit=None, search_window="sliding")
        assert statuses == [200, 200, 429, 429, 200], statuses

    def test_a_request_counts_when_it_was_received_not_when_its_thread_got_there(
            self, gate_clock: FakeClock) -> None:
        """At 2 searches/s (sliding): two searches received at 0 and 0.1 s; a third received
        at 0.5 s but reaching the gate only at 1.2 s (its thread waited for the CPU) meets
        both in its second and is refused. Counted when it reached the gate, it would have
        met neither: the sandbox would count its own stalls, not the client's rate."""
        gate, start = Gate(), gate_clock.now
        limits = {"endpoint": "search", "search_limit": 2, "general_limit": None, "search_window": "sliding"}
        for at in (0, 0.1):
            gate_clock.now = start + at
            gate.admit(**limits)  # type: ignore[arg-type]
        gate_clock.now = start + 1.2
        with pytest.raises(ApiError) as refused:
            gate.admit(**limits, received=start + 0.5)  # type: ignore[arg-type]
        assert refused.value.reply.status == 429, "a late-processed search was counted when processed"

    def test_the_portal_counts_a_search_at_its_receipt(self, gate_clock: FakeClock, sandbox: Sandbox) -> None:
        """Through the portal: a search held up 1.5 s before the gate (a `hang` fault) is
        counted when it was received, so another search 1.6 s after the first is let
        through at 1 search/s; counted after its hold-up, the second would be refused."""
        sandbox.search_rate_per_second, sandbox.search_window = 1, "sliding"
        sandbox.inject(Fault(kind="hang", endpoint="search", seconds=1.5, times=1))
        statuses = []
        for _ in range(2):
            reply, _ = sandbox.handle_api(Request("POST", "/crm/v3/objects/contacts/search",
                                                  "/crm/v3/objects/contacts/search", {},
                                                  f"Bearer {sandbox.token}", {"limit": 1}, True, "http://sandbox"))
            statuses.append(reply.status)
            gate_clock.now += 0.1
        assert statuses == [200, 200], f"the search after a held-up one was refused: {statuses}"

    def test_searches_arrive_with_jitter(self, gate_clock: FakeClock) -> None:
        """With search_jitter_ms, each search is held up 0..that many ms before the limit
        counts it (the same draws in every run), so searches sent evenly arrive bunched."""
        gate = Gate()
        outcomes(gate, gate_clock, [i * 0.3 for i in range(20)], endpoint="search", search_limit=5,
                 general_limit=None, search_window="sliding", search_jitter_ms=40)
        delays = gate_clock.sleeps
        assert len(delays) == 20 and all(0 <= d <= 0.04 for d in delays), delays
        assert len(set(delays)) == 20, f"the delays do not vary: {delays}"
        gate_clock.sleeps = []
        outcomes(Gate(), gate_clock, [i * 0.3 for i in range(20)], endpoint="search",
                 search_limit=5, general_limit=None, search_window="sliding", search_jitter_ms=40)
        assert gate_clock.sleeps == delays, "the jitter differs from run to run"

    def test_general_answers_announce_the_per_second_limit(self, sandbox: Sandbox,
                                                           sandbox_server: SandboxServer) -> None:
        """With the general limit on, answers carry X-HubSpot-RateLimit-Secondly (11 by
        default) and -Secondly-Remaining beside the ten-second headers."""
        sandbox.general_rate_per_10s = 110
        answer = requests.get(f"{sandbox_server.url}/crm/v3/objects/contacts", timeout=10,
                              headers={"Authorization": f"Bearer {sandbox.token}"})
        assert answer.status_code == 200, answer.text
        announced = {name: answer.headers.get(name) for name in
                     ("X-HubSpot-RateLimit-Secondly", "X-HubSpot-RateLimit-Secondly-Remaining",
                      "X-HubSpot-RateLimit-Max")}
        assert announced == {"X-HubSpot-RateLimit-Secondly": str(GENERAL_RATE_PER_SECOND),
                             "X-HubSpot-RateLimit-Secondly-Remaining": str(GENERAL_RATE_PER_SECOND - 1),
                             "X-HubSpot-RateLimit-Max": "110"}, announced

    def test_the_per_second_limit_is_configurable_over_http(self, sandbox: Sandbox,
                                                            sandbox_server: SandboxServer) -> None:
        url = f"{sandbox_server.url}/_sandbox/config"
        config = requests.post(url, json={"general_rate_per_second": 3, "search_window": "arrivals"},
                               timeout=10).json()
        assert (config["general_rate_per_second"], config["search_window"]) == (3, "arrivals"), config
        config = requests.post(url, json={"search_window": "sliding", "search_jitter_ms": 40},
                               timeout=10).json()
        assert (config["search_window"], config["search_jitter_ms"]) == ("sliding", 40), config
        refused = requests.post(url, json={"search_window": "fixed"}, timeout=10)
        assert refused.status_code == 400, refused.text


# --------------------------------------------------------------------------- through HTTP

# Every standard type but companies: one association batch read each per 1,000 companies.
TARGETS = "contacts,deals,tickets,products,line_items,quotes,calls,emails,meetings,notes,tasks"


@pytest.fixture(name="associated")
def _associated(settings: Settings) -> Iterator[tuple[Sandbox, TestClient]]:
    """A portal of 2,000 companies, limited as a private app is (1,000 calls per 10 s so
    that only the per-second limit of 11 binds), and a service configured for 100 calls/s."""
    sandbox = Sandbox(contacts=600, seed=7, objects={"companies": 2000})
    sandbox.general_rate_per_10s = 1000
    with SandboxServer(sandbox) as server:
        configured = dataclasses.replace(settings, base_url=server.url, general_rate_per_10s=1000,
                                         search_rate_per_second=100)
        with make_service(configured, sandbox_clock(sandbox)) as service:
            yield sandbox, service


def test_an_export_with_associations_stays_under_hubspots_per_second_limit(
        associated: tuple[Sandbox, TestClient]) -> None:
    """An export of companies with their associations to eleven types makes a few dozen
    calls besides search as fast as HubSpot answers. HubSpot counts them per second too (11
    for a private app, announced in X-HubSpot-RateLimit-Secondly): once the service has
    read that from the first answer, it spaces its calls under it and draws no 429, even
    though its configured budget (1,000 per 10 s) would allow a burst far above it."""
    sandbox, service = associated
    response = service.get("/objects/companies", params={"associations": TARGETS})
    assert response.status_code == 200, response.text[:500]
    general = [entry for entry in sandbox.request_log if entry["path"].startswith("/crm/v4/")
               or "/properties/" in entry["path"]]
    refused = [entry["path"] for entry in sandbox.request_log if entry["status"] == 429]
    assert len(general) >= 2 * GENERAL_RATE_PER_SECOND, f"only {len(general)} general calls: no burst to limit"
    assert refused == [], f"{len(refused)} of {len(sandbox.request_log)} calls drew a 429: {refused[:5]}"


def test_the_client_lowers_a_budget_on_hubspots_429_and_raises_it_on_answers(
        sandbox: Sandbox, sandbox_server: SandboxServer) -> None:
    """A 429 HubSpot sends to a call besides search lowers the general budget (and not
    search's); the retry that HubSpot answers gives a little back."""
    settings = Settings(token=sandbox.token, base_url=sandbox_server.url, general_rate_per_10s=100,
                        search_rate_per_second=4, retry_initial_wait=0.01)
    client = HubSpotClient(settings)
    sandbox.inject(Fault(endpoint="properties", kind="rate_limit", times=1))
    try:
        client.catalogue(standard_types(settings.modified_property, {})["contacts"])
    finally:
        client.close()
    general, search = client._general_budget.per_second, client._search_budget.per_second  # noqa: SLF001
    assert general == pytest.approx(10 * (DECREASE + RECOVERY_PER_SUCCESS)) and search is None, (
        f"after a 429 and an answer: general {general}/s, search {search}")


def test_a_search_429_lowers_searchs_budget_only(sandbox: Sandbox, sandbox_server: SandboxServer) -> None:
    """A 429 on a search lowers search's budget (which then spaces its calls: a rate, no
    longer None) and not the general one; the search HubSpot then answers gives a little
    back, and the page is read."""
    settings = Settings(token=sandbox.token, base_url=sandbox_server.url, general_rate_per_10s=100,
                        search_rate_per_second=5, retry_initial_wait=0.01)
    client = HubSpotClient(settings)
    sandbox.inject(Fault(endpoint="search", kind="rate_limit", times=1))
    contacts = standard_types(settings.modified_property, {})["contacts"]
    try:
        page = client.search(contacts, {"limit": 10, "properties": ["email"]})
    finally:
        client.close()
    general, search = client._general_budget.per_second, client._search_budget.per_second  # noqa: SLF001
    assert len(page.records) == 10, f"{len(page.records)} records after the retry"
    assert search == pytest.approx(5 * (DECREASE + RECOVERY_PER_SUCCESS)) and general == pytest.approx(10), (
        f"after a search 429 and an answer: search {search}/s, general {general}/s")


def test_the_daily_cap_does_not_lower_a_budget(sandbox: Sandbox, sandbox_server: SandboxServer) -> None:
    """HubSpot's DAILY 429 is the day's allowance used up, not a burst: no slower rate helps,
    so the budget keeps its rate for the next day's calls (and the call is not retried)."""
    settings = Settings(token=sandbox.token, base_url=sandbox_server.url, general_rate_per_10s=100,
                        search_rate_per_second=4, retry_initial_wait=0.01)
    client = HubSpotClient(settings)
    sandbox.inject(Fault(endpoint="properties", kind="daily", times=1))
    try:
        with pytest.raises(HubSpotError, match="daily limit"):
            client.catalogue(standard_types(settings.modified_property, {})["contacts"])
    finally:
        client.close()
    general = client._general_budget.per_second  # noqa: SLF001
    assert general == pytest.approx(10), f"after the daily cap: general {general}/s"
