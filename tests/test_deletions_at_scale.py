"""The archived listing at scale: once a snapshot exists, an export never waits for its
renewal by default (which runs in the background, one at a time; only the first listing of
a type is waited for), nothing is lost meanwhile, and the
listings' share of HubSpot's budgets is bounded (the interval grows with their cost, their
calls are paced)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.config import load
from app.hubspot import ArchivedPage, ArchivedRecord
from app.object_types import standard_types
from app.sync.deletions import ASSUMED_DAILY_LIMIT, ArchivedSnapshots, listing_interval
from app.sync.positions import ALL_IDS, encode_position
from sandbox import Fault, Sandbox

from .sesam import SETTLE_SECONDS, SesamPipe, assert_in_sync, settle
from .test_deletions import export, listings

SETTLE_MS = int(SETTLE_SECONDS * 1000)
CONTACTS = standard_types("lastmodifieddate", {})["contacts"]
HANG_SECONDS = 4.0  # the slow listing's first page: under the tests' read timeout (5 s)
POLLS = 200  # bound on polling for the background listing's end (0.1 s apart)
# What a deployed service waits for a renewal under way when HUBSPOT_ARCHIVED_WAIT_SECONDS is
# not set (the fixtures' services wait, see conftest.RENEWAL_WAIT_SECONDS).
DEFAULT_WAIT = load({}).archived_wait_seconds


def complete_token(snapshot_ms: int) -> str:
    """The greatest `_updated` a snapshot listed at HubSpot time ``snapshot_ms`` allows."""
    return encode_position((snapshot_ms - SETTLE_MS, ALL_IDS - 1, ALL_IDS))


def until(check: Any, what: str) -> Any:
    """Poll ``check`` (an export, say) until it returns something true: the background
    listing ends in real time. Not a timed assertion: the bound only stops a test that
    would otherwise hang."""
    for _ in range(POLLS):
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {POLLS} polls")


class TestRenewalInTheBackground:
    def test_by_default_an_export_answers_from_the_old_snapshot_while_a_listing_hangs(
            self, configure, sandbox: Sandbox) -> None:
        """At the default HUBSPOT_ARCHIVED_WAIT_SECONDS, with a snapshot older than the
        interval and its renewal hanging at HubSpot, an incremental export answers at once
        from the old snapshot, nothing beyond its completeness point; the renewal, once it
        ends, serves the next export, which then carries the deletion; a deletion made while
        the listing hung arrives later too."""
        service = configure(archived_wait_seconds=DEFAULT_WAIT)
        pipe = SesamPipe(service, "max")
        pipe.run()
        settle(sandbox)
        pipe.run()  # the first snapshot, listed while this run waited
        old_ms = sandbox.now_ms()
        assert listings(sandbox) == 1, f"{listings(sandbox)} listings for the first snapshot"
        victim, bystander, later = sorted(sandbox.live(), key=int)[:3]
        sandbox.archive([victim])
        sandbox.advance(1)
        sandbox.modify([bystander], {"firstname": "after the old snapshot"})
        settle(sandbox)  # the old snapshot is now older than the interval
        since = pipe.offset
        sandbox.inject(Fault(endpoint="list", kind="hang", seconds=HANG_SECONDS))
        entities = export(service, since=since)
        beyond = [e["_updated"] for e in entities if e["_updated"] > complete_token(old_ms)]
        assert not beyond, (f"an export answered past the old snapshot's completeness point "
                            f"{complete_token(old_ms)}: {beyond}")
        assert victim not in {e["_id"] for e in entities}, "the export waited for the new listing"
        # Deleted while the renewal hangs, so after its completeness point: a later one has it.
        sandbox.archive([later])
        renewed = until(lambda: [e for e in export(service, since=since) if e["_id"] == victim],
                        f"the deletion of {victim} after the renewal")
        assert renewed[0].get("_deleted") is True, renewed
        assert listings(sandbox) == 2, (
            f"{listings(sandbox)} listings: exports during one renewal started another")
        pipe.run()
        for _ in range(2):
            settle(sandbox)
            until(lambda: pipe.run() or pipe.dataset.get(later, {}).get("_deleted"),
                  f"the deletion of {later}, made during the slow listing")
        assert pipe.dataset[later].get("_deleted") is True, pipe.dataset.get(later)
        assert pipe.dataset[victim].get("_deleted") is True, pipe.dataset.get(victim)
        assert_in_sync(pipe, sandbox, "after a renewal that hung")

    def test_by_default_the_first_export_of_a_type_waits_for_its_listing(
            self, configure, sandbox: Sandbox) -> None:
        """At the default wait, the first incremental export of a type still waits for the
        type's first listing, however slow (a first page that hangs): without a snapshot
        there is nothing to answer from, so a deletion since the full run comes with it, and
        the next export shares that listing."""
        service = configure(archived_wait_seconds=DEFAULT_WAIT)
        pipe = SesamPipe(service, "max")
        pipe.run()  # the full run: live records only, no listing
        assert listings(sandbox) == 0, f"{listings(sandbox)} listings for a full run"
        victim = sorted(sandbox.live(), key=int)[0]
        sandbox.archive([victim])
        settle(sandbox)
        sandbox.inject(Fault(endpoint="list", kind="hang", seconds=HANG_SECONDS))
        entities = export(service, since=pipe.offset)
        deleted = [e for e in entities if e["_id"] == victim]
        assert deleted and deleted[0].get("_deleted") is True, (
            f"the first incremental export did not wait for the slow first listing: "
            f"{victim} is {deleted} among {len(entities)} entities")
        pipe.run()
        assert listings(sandbox) == 1, f"{listings(sandbox)} listings: the snapshot was not shared"
        assert_in_sync(pipe, sandbox, "after a first listing that hung")

    def test_a_failed_renewal_leaves_the_old_snapshot_serving(
            self, configure, sandbox: Sandbox) -> None:
        """A renewal that fails is logged; exports go on answering from the old snapshot
        (capped, so nothing is lost), and the first export after the interval lists again."""
        service = configure(archived_wait_seconds=30)
        pipe = SesamPipe(service, "max")
        pipe.run()
        settle(sandbox)
        pipe.run()
        old_ms = sandbox.now_ms()
        victim = sorted(sandbox.live(), key=int)[0]
        sandbox.archive([victim])
        settle(sandbox)
        sandbox.inject(Fault(endpoint="list", status=500, times=None))
        response = service.get("/get_contacts", params={"since": pipe.offset})
        assert response.status_code == 200, f"a failed renewal failed the export: {response.text[:300]}"
        tokens = [e["_updated"] for e in response.json()]
        assert all(t <= complete_token(old_ms) for t in tokens), (
            f"past the old snapshot's completeness point {complete_token(old_ms)}: {tokens}")
        sandbox.clear_faults()
        settle(sandbox)
        pipe.run()  # lists again (waited for: archived_wait_seconds)
        settle(sandbox)
        pipe.run()
        assert pipe.dataset[victim].get("_deleted") is True, pipe.dataset.get(victim)
        assert_in_sync(pipe, sandbox, "after a failed renewal")


# -- the listing's share of HubSpot's budgets ----------------------------------------------


class FakeListing:
    """A HubSpot client whose archived listing has ``pages`` pages of one record each, and
    whose answers say ``daily_left`` calls are left today."""

    def __init__(self, pages: int, daily_left: int | None = None) -> None:
        self.pages = pages
        self.daily_left = daily_left
        self.listings = 0

    def archived_pages(self, kind: Any, deadline: float | None = None) -> Iterator[ArchivedPage]:
        self.listings += 1
        for page in range(self.pages):
            record = ArchivedRecord(page + 1, 1_000, 2_000)
            yield ArchivedPage([record], None if page == self.pages - 1 else str(page), 10_000_000)

    def daily_calls_left(self) -> int | None:
        return self.daily_left


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleep_calls.append(seconds)
        self.now += seconds

    sleep_calls: list[float]


def snapshots_of(client: FakeListing, clock: Clock, timer: Clock, **options: Any) -> ArchivedSnapshots:
    timer.sleep_calls = []
    return ArchivedSnapshots(client, CONTACTS, 0, 60.0, clock,  # type: ignore[arg-type]
                             sleep=timer.sleep, timer=timer, **options)


def test_the_fixtures_services_wait_for_renewals(settings: Any) -> None:
    """The suites that settle the sandbox and expect the next run to carry a deletion run
    with a wait (conftest); the deployed default never waits. Both stated, so that neither
    changes unnoticed."""
    assert DEFAULT_WAIT == 0, f"HUBSPOT_ARCHIVED_WAIT_SECONDS defaults to {DEFAULT_WAIT}, not 0"
    assert settings.archived_wait_seconds > 0, settings


class TestListingBudget:
    @pytest.mark.parametrize("pages,daily_left,interval", [
        (10, None, 60.0),  # cheap: the configured interval
        (1000, None, 1000 * 86_400 / (0.1 * ASSUMED_DAILY_LIMIT)),  # 3,456 s
        (1000, 900_000, 1000 * 86_400 / (0.1 * 900_000)),  # HubSpot allows more: 960 s
        (1000, 1000, 1000 * 86_400 / (0.1 * ASSUMED_DAILY_LIMIT)),  # never below the assumed
    ])
    def test_the_interval_grows_with_the_listings_cost(
            self, pages: int, daily_left: int | None, interval: float) -> None:
        """After a listing of ``pages`` calls the next comes after the configured interval, or
        later, so that the listings use at most their daily share (10 %) of HubSpot's daily
        limit (what it says is left, if more than the 250,000 assumed); not a call earlier."""
        client, clock, timer = FakeListing(pages, daily_left), Clock(), Clock()
        snapshots = snapshots_of(client, clock, timer, daily_share=0.1)
        snapshots.current(lambda _: None)
        assert snapshots.interval() == pytest.approx(interval), (
            f"{pages} calls, {daily_left} left: interval {snapshots.interval()}")
        clock.now = interval - 1
        snapshots.current(lambda _: None)
        assert client.listings == 1, f"listed again {clock.now} s after a {pages}-call listing"
        clock.now = interval
        snapshots.current(lambda _: None)
        assert client.listings == 2, f"not listed again after the interval {interval} s"
        per_day = 86_400 / interval * pages
        assert per_day <= 0.1 * max(ASSUMED_DAILY_LIMIT, daily_left or 0) + 1e-6 or pages == 10, per_day

    def test_a_listing_uses_at_most_half_the_10_second_budget(self) -> None:
        """A listing's calls are paced: one every 10 s / (half the budget), so at 100 calls
        per 10 s a 1,000-page listing makes at most 50 calls in any 10 s."""
        client, clock, timer = FakeListing(1000), Clock(), Clock()
        snapshots = snapshots_of(client, clock, timer, rate_per_10s=100)
        snapshots.current(lambda _: None)
        waits = timer.sleep_calls
        assert len(waits) == 999 and all(w == pytest.approx(0.2) for w in waits), (
            f"{len(waits)} waits between 1000 pages: {sorted(set(waits))[:5]}")

    def test_listing_interval(self) -> None:
        """The rule itself: 900 calls a listing (a recycle bin of 90,000) at 10 % of 250,000 a
        day is one listing every 3,110 s, not every 60 s (1.3 million calls a day)."""
        assert listing_interval(60, 900, 0.1, 250_000) == pytest.approx(3110.4)
        assert listing_interval(60, 10, 0.1, 250_000) == 60

