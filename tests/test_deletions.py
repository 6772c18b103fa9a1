"""Deletions that are never lost: the shared archived snapshot, HubSpot's archivedAt in both of
its behaviours, merges and restores, through the HTTP surface and in the pure parts."""

from __future__ import annotations

import logging
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.hubspot.answers import archived_record, merged_ids
from app.object_types import standard_types
from app.sync.deletions import Snapshot, deletion_ms, first_seen_ms
from app.sync.positions import (
    ALL_IDS,
    MAX_ID,
    InvalidSince,
    Key,
    Position,
    encode_position,
    parse_since,
    walk_start,
)
from app.timestamps import MAX_MS, MIN_MS
from sandbox import Fault, Sandbox

from .sesam import SETTLE_SECONDS, SesamPipe, assert_in_sync, settle
from .test_continuation import scaled
from .test_sesam_pipe import churn

ARCHIVED_AT = ["deletion time", "last-modified time"]
SETTLE_MS = int(SETTLE_SECONDS * 1000)
CONTACTS = standard_types("lastmodifieddate", {})["contacts"]


def export(service: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = service.get("/get_contacts", params=params)
    assert response.status_code == 200, f"{params}: {response.status_code} {response.text[:300]}"
    return orjson.loads(response.content)


def listings(sandbox: Sandbox) -> int:
    """How many times the archived contacts were listed (first pages of archived=true)."""
    return sum(1 for r in sandbox.request_log
               if r["path"] == "/crm/v3/objects/contacts" and r["query"].get("archived") == ["true"]
               and "after" not in r["query"])


def old_archived_at(sandbox: Sandbox, behaviour: str) -> None:
    sandbox.archived_at_is_modified = behaviour == "last-modified time"


def assert_deletion_arrives(pipe: SesamPipe, sandbox: Sandbox, victim: str, context: str,
                            wait_ms: int | None = None) -> None:
    """Two more runs, each after the snapshot interval (``wait_ms``, default: the settle
    time and lag) has passed: an untrusted archivedAt takes one interval more than a trusted
    one. Then ``victim`` is held deleted and the pipe is in sync."""
    for _ in range(2):
        if wait_ms is None:
            settle(sandbox)
        else:
            sandbox.advance(wait_ms)
        pipe.run()
    assert pipe.dataset[victim].get("_deleted") is True, (
        f"{context}: the deletion of {victim} never arrived: {pipe.dataset[victim]}")
    assert_in_sync(pipe, sandbox, context)


# -- pure parts --------------------------------------------------------------------------

positions = st.one_of(
    st.tuples(st.integers(MIN_MS, MAX_MS), st.integers(0, MAX_ID), st.just(ALL_IDS)),
    st.tuples(st.integers(MIN_MS, MAX_MS), st.integers(1, MAX_ID), st.integers(0, MAX_ID)),
)


class TestPositions:
    @given(positions, positions)
    def test_tokens_sort_like_positions(self, a: tuple, b: tuple) -> None:
        """Merged-away ids and contacts share one order: comparing the tokens as strings (as
        Sesam does) compares the positions."""
        ta, tb = encode_position(a), encode_position(b)
        assert (ta < tb) == (a < b) and (ta == tb) == (a == b), f"{a} {ta} vs {b} {tb}"

    @given(positions)
    def test_tokens_round_trip(self, position: tuple) -> None:
        """A token handed back as since resumes exactly after its entity, and the walk
        restarts where it reaches everything after it."""
        assert parse_since(encode_position(position)) == position
        ms, contact_id, sub = position
        assert walk_start(position) == ((ms, contact_id) if sub == ALL_IDS else (ms, contact_id - 1))

    @pytest.mark.parametrize("token", [
        "2024-03-05T10:11:12.345Z_9223372036854775808",
        "2024-03-05T10:11:12.345Z_9999999999999999999",
        "2024-03-05T10:11:12.345Z_0000000000000012344~9223372036854775808",
        "2024-03-05T10:11:12.345Z_9223372036854775808~0000000000000000001",
    ])
    def test_ids_beyond_hubspot_are_refused(self, token: str) -> None:
        """HubSpot's ids are 64-bit: a token naming a larger one cannot be searched for."""
        with pytest.raises(InvalidSince, match="largest HubSpot id"):
            parse_since(token)


class TestDeletionTime:
    MODIFIED = "2024-03-05T10:11:12.345Z"

    def contact(self, archived_at: str | None) -> dict[str, Any]:
        contact: dict[str, Any] = {"id": "7", "properties": {"lastmodifieddate": self.MODIFIED}}
        if archived_at is not None:
            contact["archivedAt"] = archived_at
        return contact

    def test_archived_after_the_last_change_is_the_deletion_time(self) -> None:
        """archivedAt later than the record's modification time cannot be that time: trusted."""
        assert deletion_ms(archived_record(self.contact("2024-03-05T10:11:13Z"), CONTACTS), 5) == 1709633473000

    @pytest.mark.parametrize("archived_at", [MODIFIED, "2024-03-05T10:11:12.345+00:00", None, "garbage"])
    def test_otherwise_where_it_was_first_seen(self, archived_at: str | None) -> None:
        """archivedAt equal to the modification time (HubSpot's old behaviour), missing or
        unreadable: the deletion sits where the service first saw it."""
        assert deletion_ms(archived_record(self.contact(archived_at), CONTACTS), 5) == 5

    def test_first_seen_lies_after_every_earlier_snapshot(self) -> None:
        """A page answered in second s may have been read up to 999 ms later; first seen is
        after the completeness point of any snapshot read before it."""
        assert first_seen_ms(1_000_000, 60_000) == 1_000_000 + 999 - 60_000

    def test_merged_ids(self) -> None:
        """hs_merged_object_ids, ';'-separated: ascending, without the survivor, junk ignored."""
        assert merged_ids("30;5;;x;4;30", 5) == [4, 30]
        assert merged_ids(None, 5) == []

    def test_snapshot_after(self) -> None:
        """A snapshot hands out the deletions after a position up to a horizon; inside a
        survivor's merged ids, the survivor's own deletion is still to come."""
        snapshot = Snapshot(0, 0.0, [Key(10, 1), Key(10, 5), Key(11, 2), Key(20, 1)], {})
        assert list(snapshot.after(Position(10, 1, ALL_IDS), 15)) == [(10, 5), (11, 2)]
        assert list(snapshot.after(Position(10, 5, 3), 20)) == [(10, 5), (11, 2), (20, 1)]
        assert list(snapshot.after(Position(9, ALL_IDS, ALL_IDS), 10)) == [(10, 1), (10, 5)]


# -- through the HTTP surface --------------------------------------------------------------


class TestSharedSnapshot:
    def test_one_listing_serves_every_request_within_the_interval(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """Twelve incremental requests and a fifteen-page chronological run, all within one
        settle period: the archived contacts are listed once."""
        everything = export(service)
        sandbox.request_log.clear()
        for k in range(12):
            export(service, since=everything[k * 40]["_updated"])
        since = everything[100]["_updated"]
        for _ in range(15):
            page = export(service, since=since, limit=7)
            assert len(page) == 7, f"a chronological page came back short: {len(page)}"
            since = page[-1]["_updated"]
        assert listings(sandbox) == 1, f"the archived contacts were listed {listings(sandbox)} times"

    def test_the_listing_is_read_again_after_the_interval(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """Once the interval (the settle time by default) has passed, the next incremental
        request lists the archived contacts anew; a full export never lists them."""
        since = export(service, limit=1)[0]["_updated"]
        assert listings(sandbox) == 0, "a full export listed the archived contacts"
        export(service, since=since)
        sandbox.advance(SETTLE_MS)
        export(service, since=since)
        assert listings(sandbox) == 2, f"{listings(sandbox)} listings for two intervals"

    @pytest.mark.parametrize("behaviour", ARCHIVED_AT)
    def test_a_deletion_right_after_a_snapshot_is_not_lost(
            self, behaviour: str, configure, sandbox: Sandbox) -> None:
        """A contact deleted just after the snapshot was read is not in it: the export stops
        before the snapshot's completeness point, even when search could go further (an
        interval longer than the settle time), and a later request reports the deletion."""
        old_archived_at(sandbox, behaviour)
        interval_ms = 6 * SETTLE_MS
        pipe = SesamPipe(configure(archived_snapshot_seconds=interval_ms / 1000), "max")
        pipe.run()
        sandbox.advance(SETTLE_MS + 1000)
        pipe.run()  # reads the snapshot
        snapshot_ms = sandbox.now_ms()
        victim, bystander = sorted(sandbox.live(), key=int)[:2]
        sandbox.advance(1)
        sandbox.archive([victim])
        sandbox.advance(1)
        sandbox.modify([bystander], {"firstname": "later"})  # would move the offset past it
        sandbox.advance(4 * SETTLE_MS)  # still within the interval: the same snapshot serves
        pipe.run()
        complete = encode_position((snapshot_ms - SETTLE_MS, ALL_IDS - 1, ALL_IDS))
        assert pipe.offset is not None and pipe.offset <= complete, (
            f"the offset {pipe.offset} passed the snapshot's completeness point {complete}")
        assert_deletion_arrives(pipe, sandbox, victim, behaviour, interval_ms)


class TestFullExport:
    @pytest.mark.parametrize("behaviour", ARCHIVED_AT)
    def test_a_contact_deleted_while_a_long_full_export_runs(
            self, behaviour: str, configure, sandbox: Sandbox) -> None:
        """A full export sends a contact, which is then deleted while the export runs on past
        the settle time (so it reads on to a later horizon): the deletion still reaches the
        pipe, in that export or the next run."""
        old_archived_at(sandbox, behaviour)
        service = configure(search_page_size=50, search_concurrency=1)
        first, bystander = [cid for cid, _ in sorted(sandbox.live().items(),
                                                      key=lambda item: (item[1], int(item[0])))[:2]]

        def delete_then_wait(page: int) -> None:
            if page == 2:  # the first contact went out with page 1
                sandbox.archive([first])
                sandbox.advance(1)
                # The catch-up sends this one, so the pipe's offset passes the deletion.
                sandbox.modify([bystander], {"firstname": "Meanwhile"})
                settle(sandbox)

        pipe = SesamPipe(service, "max")
        sandbox.on_search_page(delete_then_wait)
        pipe.run()
        sandbox.on_search_page(None)
        assert_deletion_arrives(pipe, sandbox, first, f"{behaviour}, deleted during a full export")


    def test_no_catch_up_beyond_the_archived_snapshot(self, configure, sandbox: Sandbox) -> None:
        """A full export that outlasts the settle time reads on only as far as the shared
        archived snapshot is complete: with a snapshot no newer than its own horizon, it
        sends no further search and still ends whole (what changed comes next request)."""
        service = configure(search_page_size=50, search_concurrency=1,
                            archived_snapshot_seconds=600)
        export(service, since=export(service, limit=1)[0]["_updated"])  # reads the snapshot
        searches = []
        for hook in (None, lambda page: settle(sandbox) if page == 2 else None):
            sandbox.request_log.clear()
            sandbox.on_search_page(hook)
            entities = export(service)
            searches.append(sum(r["path"].endswith("/search") for r in sandbox.request_log))
            assert len(entities) == len(sandbox.live()), f"{len(entities)} of {len(sandbox.live())}"
        sandbox.on_search_page(None)
        assert searches[1] == searches[0], f"searches without and with a catch-up due: {searches}"


class TestArchivedAt:
    @pytest.mark.parametrize("behaviour", ARCHIVED_AT)
    def test_a_deletion_after_the_offset_of_a_contact_edited_before_it(
            self, behaviour: str, service: TestClient, sandbox: Sandbox) -> None:
        """The case HubSpot's old archivedAt loses: a contact last edited before the pipe's
        offset and deleted after it is still reported deleted."""
        old_archived_at(sandbox, behaviour)
        pipe = SesamPipe(service, "max")
        pipe.run()
        victim = sorted(sandbox.live(), key=int)[3]
        settle(sandbox)
        pipe.run()
        sandbox.archive([victim])
        assert_deletion_arrives(pipe, sandbox, victim, behaviour)

    @pytest.mark.parametrize("behaviour", ARCHIVED_AT)
    def test_a_restored_contact_is_live_again(
            self, behaviour: str, service: TestClient, sandbox: Sandbox) -> None:
        """HubSpot moves a restored contact's modification time to the restore: the next run
        after its deletion brings it back live, in its restored state."""
        old_archived_at(sandbox, behaviour)
        pipe = SesamPipe(service, "max")
        pipe.run()
        victim = sorted(sandbox.live(), key=int)[5]
        sandbox.archive([victim])
        assert_deletion_arrives(pipe, sandbox, victim, behaviour)
        sandbox.restore([victim])
        settle(sandbox)
        pipe.run()
        assert not pipe.dataset[victim].get("_deleted"), f"{behaviour}: {victim} not restored"
        assert_in_sync(pipe, sandbox, f"{behaviour}: after the restore")


class TestSummary:
    def test_the_summary_line_counts_the_whole_export(self, configure, sandbox: Sandbox,
                                                      caplog: pytest.LogCaptureFixture) -> None:
        """The summary log line an operator reads after each request counts the entities
        sent and the deletions among them, and HubSpot's calls (the archived listing's and
        every search page's) and the retries among them, over the whole export."""
        service = configure(search_page_size=50)
        since = export(service)[10]["_updated"]
        sandbox.archive(sorted(sandbox.live(), key=int)[:3])
        settle(sandbox)
        sandbox.request_log.clear()
        sandbox.inject(Fault(endpoint="search", status=503, times=1))
        with caplog.at_level(logging.INFO, logger="app.web.stream"):
            entities = export(service, since=since)
        (record,) = [r for r in caplog.records if r.name == "app.web.stream"]
        calls = [r for r in sandbox.request_log if r["path"].endswith("/search")
                 or r["query"].get("archived") == ["true"]]
        counts = {k: getattr(record, k) for k in ("entities", "deleted", "upstream_calls", "retries")}
        assert counts == {"entities": len(entities),
                          "deleted": sum(bool(e.get("_deleted")) for e in entities),
                          "upstream_calls": len(calls), "retries": 1}, (
            f"{counts}; {len(calls)} calls: {[(r['path'], r['query']) for r in calls]}")
        assert counts["deleted"] >= 3 and len(calls) > 3, counts


class TestEqualPositions:
    def test_a_deletion_on_the_position_of_its_live_version_wins(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """A contact modified and archived on one millisecond (so its archivedAt is not
        trusted) is placed where the listing first showed it: the last millisecond that
        listing may have covered. When that is the very millisecond of the modification and
        search still lists the live version, both sit on one position: the deletion is the
        one sent, or the pipe would keep the contact for ever."""
        since = export(service)[-1]["_updated"]
        second = sandbox.now_ms() // 1000 * 1000 + 60_000
        sandbox.advance(second + 999 - SETTLE_MS - sandbox.now_ms())
        victim = sorted(sandbox.live(), key=int)[4]
        sandbox.modify_and_archive([victim], {"firstname": "gone"})
        sandbox.search_drop_lag_ms = 100 * SETTLE_MS
        sandbox.advance(SETTLE_MS)  # the listing is read within `second`: first seen here
        first = export(service, since=since)
        assert victim not in [e["_id"] for e in first], f"sent before it settled: {first}"
        sandbox.advance(2 * SETTLE_MS)
        sent = [e for e in export(service, since=since) if e["_id"] == victim]
        assert len(sent) == 1 and sent[0].get("_deleted") is True, (
            f"{victim} modified and archived on its deletion's position came as "
            f"{[(e['_updated'], e.get('_deleted')) for e in sent]}")


class TestUnusableListing:
    def test_an_unusable_archived_listing_is_hubspots_failure(self, service: TestClient,
                                                             sandbox: Sandbox) -> None:
        """An archived listing that parses but cannot be used (a contact without id) is a
        502 that names that answer, so the operator knows which HubSpot call to look at."""
        since = export(service, limit=1)[0]["_updated"]
        sandbox.inject(Fault(endpoint="list", status=200, times=None,
                             body={"results": [{"archived": True}]}))
        response = service.get("/get_contacts", params={"since": since})
        assert response.status_code == 502, response.text[:300]
        assert "list of archived contacts answer could not be used" in response.json()["detail"], (
            response.text)


class TestMerges:
    def test_merged_away_ids_arrive_deleted_just_before_the_survivor(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """A merge: the merged-away contact arrives as _deleted (naming its survivor), right
        before the survivor's own change, in strictly increasing _updated order."""
        since = export(service)[-1]["_updated"]
        survivor, gone = sorted(sandbox.live(), key=int)[10:12]
        sandbox.merge(survivor, gone)
        settle(sandbox)
        entities = export(service, since=since)
        ids = [e["_id"] for e in entities]
        tokens = [e["_updated"] for e in entities]
        assert tokens == sorted(set(tokens)), "entities are not in strictly increasing order"
        at = ids.index(survivor)
        assert ids[at - 1] == gone and entities[at - 1]["_deleted"] is True, entities[at - 2:at + 1]
        assert entities[at - 1]["mergedInto"] == survivor, entities[at - 1]
        merged = entities[at]["properties"]["hs_merged_object_ids"].split(";")
        assert gone in merged, merged

    def test_a_chronological_pipe_resumes_between_merged_ids(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """Pages of one entity: a pipe whose offset lies among a survivor's merged ids gets
        the rest of them and the survivor, nothing twice."""
        synced = SesamPipe(service, "max")
        synced.run()
        settle(sandbox)
        synced.run()  # also the contacts archived after the last live one
        pipe = SesamPipe(service, "chronological", page_size=1)
        pipe.offset = synced.offset
        survivor, *gone = sorted(sandbox.live(), key=int)[20:24]
        for other in gone:
            sandbox.merge(survivor, other)
            sandbox.advance(1)
        settle(sandbox)
        received = pipe.run()
        assert all(pipe.dataset[g].get("_deleted") for g in gone), [pipe.dataset.get(g) for g in gone]
        assert received == len(gone) + 1 and set(pipe.dataset) == {survivor, *gone}, (
            f"{received} entities for 3 merged ids and a survivor: {sorted(pipe.dataset)}")
        assert not pipe.dataset[survivor].get("_deleted"), pipe.dataset[survivor]

    def test_the_sandbox_merges_as_hubspot_does(self, service: TestClient, sandbox: Sandbox) -> None:
        """A merged-away contact leaves search (once the lag passes) and both listings, a GET
        of its id answers with the survivor, whose merged ids grow."""
        survivor, gone = sorted(sandbox.live(), key=int)[:2]
        sandbox.merge(survivor, gone)
        settle(sandbox)
        assert sandbox.contact(gone)["id"] == survivor
        assert gone not in sandbox.live() and gone not in sandbox.archived()
        assert sandbox.merged()[survivor] == [gone], sandbox.merged().get(survivor)
        assert gone not in {e["_id"] for e in export(service)}, "search still finds the merged-away id"


class TestSince:
    def test_an_id_beyond_hubspot_is_a_400_without_calling_hubspot(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """A since HubSpot cannot be asked about is the caller's error, never a 502."""
        sandbox.request_log.clear()
        response = service.get("/get_contacts",
                               params={"since": "2024-03-05T10:11:12.345Z_9300000000000000000"})
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json", response.headers
        assert not sandbox.request_log, f"HubSpot was called: {sandbox.request_log[:2]}"


def churn_with_merges(sandbox: Sandbox, rng: random.Random) -> None:
    """Random creates, modifies, archives and restores, and now and then a merge."""
    churn(sandbox, rng)
    live = sorted(sandbox.live(), key=int)
    if len(live) > 2 and rng.random() < 0.5:
        survivor, gone = rng.sample(live, 2)
        sandbox.merge(survivor, gone)


@pytest.mark.parametrize("behaviour", ARCHIVED_AT)
@pytest.mark.parametrize("strategy,page_size", [("max", 100), ("chronological", 13)])
def test_rounds_of_deletions_merges_and_restores(
        behaviour: str, strategy: str, page_size: int, sandbox: Sandbox, configure) -> None:
    """Many rounds of random deletions, merges and restores between requests, with search
    lag, under both archivedAt behaviours: the pipe ends holding exactly HubSpot's live
    contacts (merged-away and deleted ones gone, restored ones back)."""
    rng = random.Random(f"{behaviour}-{strategy}")
    old_archived_at(sandbox, behaviour)
    sandbox.search_lag_ms = 2000
    pipe = SesamPipe(configure(search_page_size=rng.choice([9, 50])), strategy, page_size=page_size)
    pipe.run()
    rounds = scaled(15)
    for _ in range(rounds):
        churn_with_merges(sandbox, rng)
        pipe.run()
        sandbox.advance(rng.choice([0, 1000, 4000, 9000]))
    for _ in range(2):
        settle(sandbox)
        pipe.run()
    assert_in_sync(pipe, sandbox, f"{behaviour}, {strategy}: after {rounds} rounds ({pipe.requests} requests)")
