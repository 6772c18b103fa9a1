"""GET /get_contacts against the sandbox: what a Sesam pipe and an operator rely on."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from concurrent.futures import Future
from itertools import count
from typing import Any, Iterator

import orjson
import pytest
from starlette.testclient import TestClient

from app.config import Settings
from app.hubspot import HubSpotError, SearchPage
from app.sync import export as export_module
from app.sync.export import ExportStats, _count_dropped
from app.sync.positions import encode_key
from app.sync.workers import READERS, ShuttingDown, Workers
from app.timestamps import format_ms, parse_timestamp
from sandbox import Fault, Sandbox, SandboxServer

from .conftest import make_service, sandbox_clock
from .sesam import SETTLE_SECONDS, T0, settle

TOKEN_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z_\d{19}")


def export(service: TestClient, **params) -> list[dict]:
    response = service.get("/get_contacts", params=params)
    assert response.status_code == 200, f"{params}: {response.status_code} {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return orjson.loads(response.content)


def caught_up(service: TestClient) -> str:
    """The offset of a pipe that has read everything there is so far (a full run, then
    an incremental one for the deletions that came before it)."""
    offset = export(service)[-1]["_updated"]
    rest = export(service, since=offset)
    return rest[-1]["_updated"] if rest else offset


def search_requests(sandbox: Sandbox) -> list[dict]:
    return [r for r in sandbox.request_log if r["path"].endswith("/search")]


class TestFullExport:
    def test_every_live_contact_once(self, service: TestClient, sandbox: Sandbox) -> None:
        """Without since: every non-archived contact, exactly once, none archived."""
        entities = export(service)
        ids = [e["_id"] for e in entities]
        assert len(ids) == len(set(ids)), "a contact came twice"
        assert set(ids) == set(sandbox.live()), (
            f"missing {sorted(set(sandbox.live()) - set(ids))[:5]}, "
            f"extra {sorted(set(ids) - set(sandbox.live()))[:5]}")
        assert not any(e.get("_deleted") for e in entities), "a full export carries no deletions"

    def test_strictly_increasing_fixed_width_updated(self, service: TestClient) -> None:
        """_updated is the fixed-width (time, id) token and strictly increases as strings."""
        updates = [e["_updated"] for e in export(service)]
        assert all(TOKEN_SHAPE.fullmatch(u) for u in updates), [u for u in updates if not TOKEN_SHAPE.fullmatch(u)][:3]
        assert all(a < b for a, b in zip(updates, updates[1:])), "not strictly increasing"

    def test_entity_is_the_hubspot_contact(self, service: TestClient, sandbox: Sandbox) -> None:
        """An entity is HubSpot's contact object, all properties included, plus _id and
        _updated built from its id and lastmodifieddate."""
        entity = export(service, limit=1)[0]
        truth = sandbox.contact(entity["id"])
        assert entity["_id"] == entity["id"] == truth["id"]
        assert entity["properties"] == truth["properties"], "properties differ from HubSpot's"
        assert entity["_updated"] == encode_key(
            (parse_timestamp(truth["properties"]["lastmodifieddate"]), int(truth["id"])))
        assert {"createdAt", "updatedAt", "archived"} <= entity.keys(), entity.keys()

    def test_limit_returns_the_first_n(self, service: TestClient) -> None:
        """limit=n is the first n entities of the same export."""
        everything = export(service)
        assert export(service, limit=25) == everything[:25]

    def test_pages_split_ties(self, sandbox: Sandbox, configure) -> None:
        """With pages much smaller than the ties in the portal, nothing is lost or doubled."""
        tied = sandbox.create(count=45)  # one call: one millisecond
        settle(sandbox)
        entities = export(configure(search_page_size=7))
        ids = [e["_id"] for e in entities]
        assert sorted(ids, key=int) == sorted(sandbox.live(), key=int), "contacts lost or doubled"
        assert set(tied) <= set(ids)


    def test_a_long_full_export_catches_up_with_changes_made_meanwhile(
        self, sandbox: Sandbox, configure
    ) -> None:
        """A contact modified while a full export runs leaves its place in the order; once
        the export has run longer than the settle time it reads on to a later horizon, so
        the contact still comes (in its new version) and a rescan does not miss it."""
        service = configure(search_page_size=50, search_concurrency=1)
        last = max(sandbox.live().items(), key=lambda item: (item[1], int(item[0])))[0]

        def modify_then_wait(page: int) -> None:
            if page == 2:  # the horizon came with page 1
                sandbox.modify([last], {"firstname": "Meanwhile"})
                settle(sandbox)  # the export runs on for longer than the settle time

        sandbox.on_search_page(modify_then_wait)
        entities = export(service)
        sandbox.on_search_page(None)
        versions = [e["properties"]["firstname"] for e in entities if e["_id"] == last]
        assert versions == ["Meanwhile"], f"contact {last} modified mid-export came as {versions}"
        assert set(sandbox.live()) == {e["_id"] for e in entities}, "a contact is missing"


    def test_a_full_export_holds_back_changes_within_the_settle_time(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """A full export stops at HubSpot's clock minus the settle time too (search may not
        show younger changes completely): a contact modified a second ago is not in it."""
        settle(sandbox)
        young = sorted(sandbox.live(), key=int)[0]
        sandbox.modify([young], {"firstname": "Young"})
        sandbox.advance(1000)
        ids = {e["_id"] for e in export(service)}
        assert young not in ids, "a change younger than the settle time was exported"
        assert ids == set(sandbox.live()) - {young}, "older contacts are missing"


class TestIncremental:
    def test_since_a_token_resumes_strictly_after_it(self, service: TestClient,
                                                     sandbox: Sandbox) -> None:
        """since = the _updated of entity k returns exactly the live entities after k,
        and the contacts archived after k as deletions."""
        everything = export(service)
        for k in (0, 1, 137, len(everything) - 2, len(everything) - 1):
            since = everything[k]["_updated"]
            rest = export(service, since=since)
            live = [e for e in rest if not e.get("_deleted")]
            assert live == everything[k + 1:], f"since entity {k}: {len(live)} live entities"
            deleted = {e["_id"] for e in rest if e.get("_deleted")}
            archived_after = {cid for cid, ms in sandbox.archived().items()
                              if encode_key((ms, int(cid))) > since}
            merged_away = {cid for e in live
                           for cid in (e["properties"]["hs_merged_object_ids"] or "").split(";") if cid}
            assert deleted == archived_after | merged_away, f"since entity {k}: deletions differ"

    def test_changes_and_deletions_after_since(self, service: TestClient, sandbox: Sandbox) -> None:
        """After since: the modified and created contacts, and the archived ones as
        _deleted entities, merged in _updated order."""
        offset = caught_up(service)
        live = sorted(sandbox.live(), key=int)
        sandbox.advance(10_000)
        sandbox.modify(live[:3], {"firstname": "Changed"})
        sandbox.advance(1)
        created = sandbox.create(count=2)
        sandbox.advance(1)
        sandbox.archive(live[3:5])
        settle(sandbox)
        entities = export(service, since=offset)
        got = {e["_id"]: e for e in entities}
        assert set(got) == {*live[:5], *created}, sorted(got)
        assert all(got[i]["properties"]["firstname"] == "Changed" for i in live[:3])
        assert all(got[i]["_deleted"] is True for i in live[3:5]), [got[i] for i in live[3:5]]
        updates = [e["_updated"] for e in entities]
        assert updates == sorted(updates) and all(u > offset for u in updates), updates

    def test_plain_timestamp_since_includes_its_millisecond(self, service: TestClient,
                                                            sandbox: Sandbox) -> None:
        """since as ISO-8601 (with or without milliseconds) or epoch ms, e.g. a pipe's
        initial_since_value, includes contacts modified on that very millisecond."""
        at = (sandbox.now_ms() // 1000 + 60) * 1000
        sandbox.set_now(at)
        changed = sandbox.create(count=3)
        settle(sandbox)
        for since in (str(at), format_ms(at), format_ms(at)[:19] + "Z"):
            ids = {e["_id"] for e in export(service, since=since)}
            assert ids == set(changed), f"since={since}: {sorted(ids)} instead of {changed}"

    @pytest.mark.parametrize("include_deleted", [True, False])
    def test_changes_within_the_settle_time_wait(self, configure, sandbox: Sandbox,
                                                 include_deleted: bool) -> None:
        """A change younger than the settle time is not handed out yet (search may not
        show it completely): it comes in a later run instead, so the offset never passes it.
        Also with HUBSPOT_INCLUDE_DELETED=false, where no archived listing comes first to
        take HubSpot's clock from."""
        service = configure(include_deleted=include_deleted)
        offset = caught_up(service)
        sandbox.advance(60_000)
        new = sandbox.create(count=1)
        assert export(service, since=offset) == [], "a change inside the settle time was exported"
        settle(sandbox)
        assert [e["_id"] for e in export(service, since=offset)] == new

    def test_search_lag_is_covered_by_the_settle_time(self, service: TestClient, sandbox: Sandbox) -> None:
        """A write that search shows only seconds later is still delivered, in a later run."""
        sandbox.search_lag_ms = 4000
        offset = caught_up(service)
        sandbox.advance(60_000)
        new = sandbox.create(count=1)
        sandbox.advance(4500)  # past the lag, still inside the settle time
        assert export(service, since=offset) == []
        settle(sandbox)
        assert [e["_id"] for e in export(service, since=offset)] == new


class TestCost:
    """Reading ahead pays HubSpot's latency once for several pages, but never for pages the
    export does not need: the search calls are counted (page size 50, so 49 new results a
    page after the overlap)."""

    @pytest.fixture(name="small_pages")
    def _small_pages(self, configure) -> TestClient:
        return configure(search_page_size=50)

    @pytest.mark.parametrize("limit", [None, 10_000])
    def test_a_full_export_reads_each_page_once(self, small_pages: TestClient,
                                                sandbox: Sandbox, limit: int | None) -> None:
        """No page is read that the export does not use: ceil(live / 49) searches, also
        when the limit is above what there is (HubSpot's total then sizes the reads)."""
        live = len(export(small_pages, **({} if limit is None else {"limit": limit})))
        calls = len(search_requests(sandbox))
        assert calls == -(-live // 49), f"{calls} searches for {live} contacts"

    def test_a_small_incremental_export_is_one_search(self, small_pages: TestClient,
                                                      sandbox: Sandbox) -> None:
        """One change since the offset: one search call, not a round of speculative pages."""
        since = export(small_pages)[-1]["_updated"]
        sandbox.request_log.clear()
        sandbox.modify([sorted(sandbox.live(), key=int)[0]], {"firstname": "Once"})
        settle(sandbox)
        assert len(export(small_pages, since=since)) >= 1
        assert len(search_requests(sandbox)) == 1, search_requests(sandbox)

    @pytest.mark.parametrize("incremental", [False, True])
    def test_a_limit_reads_only_the_pages_it_needs(self, small_pages: TestClient,
                                                   sandbox: Sandbox, incremental: bool) -> None:
        """limit=60 needs two pages of 49 new results: two searches, however many follow,
        on a full export as on an incremental one."""
        params: dict = {"limit": 60}
        if incremental:
            params["since"] = export(small_pages, limit=1)[0]["_updated"]
            sandbox.request_log.clear()
        assert len(export(small_pages, **params)) == 60
        assert len(search_requests(sandbox)) == 2, search_requests(sandbox)

    @pytest.mark.parametrize("reordered", [False, True])
    def test_a_tie_over_several_pages_costs_its_pages(self, small_pages: TestClient,
                                                      sandbox: Sandbox, reordered: bool) -> None:
        """A bulk update of 150 contacts on one millisecond, between single edits: when
        HubSpot keeps a tie's order between requests, one stream of overlapping pages reads
        it (held, then sent in id order), no page twice and no query by id; when it orders
        ties anew on every request, the seams inside the tie do not join and the tie is read
        by id. Either way every change comes once, in order."""
        since = export(small_pages)[-1]["_updated"]
        ids = sorted(sandbox.live(), key=int)
        for batch in [[one] for one in ids[:60]] + [ids[60:210]] + [[one] for one in ids[210:270]]:
            sandbox.modify(batch)
            sandbox.advance(1)  # each edit on a millisecond of its own
        settle(sandbox)
        sandbox.reorder_ties_per_request = reordered
        sandbox.request_log.clear()
        entities = export(small_pages, since=since)
        live = [e for e in entities if not e.get("_deleted")]
        assert sorted(e["_id"] for e in live) == sorted(ids[:270]), "a change is missing or doubled"
        assert [e["_updated"] for e in entities] == sorted({e["_updated"] for e in entities})
        searches = search_requests(sandbox)
        by_id = [r for r in searches if r["body"]["sorts"][0]["propertyName"] == "hs_object_id"]
        if reordered:
            assert by_id, "a tie HubSpot reorders was joined across pages by offset"
        else:
            assert not by_id and len(searches) <= -(-270 // 49) + 1, (
                f"{len(searches)} searches ({len(by_id)} by id) for 270 changes, 150 on one millisecond")

    def test_a_tie_beyond_the_hold_limit_is_read_by_id(self, small_pages: TestClient,
                                                       sandbox: Sandbox) -> None:
        """A millisecond is held across the pages of one stream only up to 10 pages' worth
        (490 results at page size 50), so that memory stays bounded: an import of 550
        contacts on one millisecond, after 60 single edits, is read by id, however stable
        HubSpot's order is."""
        since = export(small_pages)[-1]["_updated"]
        singles = sorted(sandbox.live(), key=int)[:60]
        for one in singles:  # so that a stream of pages reaches the tie
            sandbox.modify([one])
            sandbox.advance(1)
        bulk = sandbox.create(count=550)  # an import: all on one millisecond
        settle(sandbox)
        sandbox.request_log.clear()
        entities = export(small_pages, since=since)
        assert sorted(e["_id"] for e in entities if not e.get("_deleted")) == sorted(singles + bulk)
        by_id = [r for r in search_requests(sandbox)
                 if r["body"]["sorts"][0]["propertyName"] == "hs_object_id"]
        assert len(by_id) >= -(-550 // 49), f"{len(by_id)} searches by id for a tie of 550"

    def test_pages_dropped_in_flight_still_count_as_calls(self) -> None:
        """A page the stream no longer wanted, but that was already sent, counts in the
        summary's HubSpot calls when it comes back; one that failed does not, and its
        error goes nowhere."""
        stats = ExportStats()
        answered: Future = Future()
        answered.set_result(SearchPage([], False, None, 0, calls=2))
        failed: Future = Future()
        failed.set_exception(HubSpotError(502, "HubSpot failed", "gone"))
        _count_dropped(answered, stats)
        _count_dropped(failed, stats)
        assert (stats.upstream_calls, stats.retries) == (2, 1), stats


def handing_over(thread: threading.Thread) -> bool:
    """Whether ``thread`` waits inside a hand-over's ``put``, i.e. for room to hand over."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None and not (frame.f_code.co_name == "wait" and frame.f_back is not None
                                     and frame.f_back.f_code.co_name == "put"):
        frame = frame.f_back
    return frame is not None


@pytest.fixture(name="workers")
def _workers() -> Iterator[Workers]:
    workers = Workers()
    yield workers
    workers.close()


def blocked_reader(items: Iterator[int], workers: Workers) -> tuple[Iterator[int], threading.Thread]:
    """``read_ahead`` over ``items`` (one ahead), once its first item has been taken and its
    thread waits for room to hand over the third (the second fills the hand-over)."""
    pulled: list[int] = []

    def source() -> Iterator[int]:
        for item in items:
            pulled.append(item)
            yield item

    before = set(threading.enumerate())
    reader = workers.read_ahead(source(), 1)
    assert next(reader) == 0
    (thread,) = [t for t in threading.enumerate()
                 if t not in before and t.name.startswith(READERS)]
    for _ in range(3000):
        if len(pulled) == 3 and handing_over(thread):
            break
        thread.join(timeout=0.01)
    assert len(pulled) == 3 and handing_over(thread), f"the reader is not waiting: {pulled}"
    return reader, thread


class TestReadAhead:
    def test_a_consumer_that_stops_early_stops_the_reader(self, workers: Workers) -> None:
        """An export cut short (a limit, a client that hangs up) leaves no reader behind
        blocked on handing over a page that nobody will take, nor one reading on."""
        source = iter(range(1000))
        reader, thread = blocked_reader(source, workers)
        reader.close()  # type: ignore[attr-defined]
        for _ in range(1000):
            if workers.readers == 0:
                break
            time.sleep(0.01)
        assert workers.readers == 0 and not handing_over(thread), "the reader outlived its consumer"
        assert next(source, None) is not None, "it read on to the end after the consumer left"

    def test_a_slow_consumer_gets_everything(self, workers: Workers) -> None:
        """A consumer slower than the reader (Sesam still taking a page while the next one is
        read) gets every item in order: the reader waits for room as long as it takes."""
        reader, _ = blocked_reader(iter(range(5)), workers)
        time.sleep(0.5)  # the reader waits for room all that time
        assert list(reader) == [1, 2, 3, 4]

    def test_with_every_reader_busy_the_consumer_reads_itself(self) -> None:
        """Readers are bounded: beyond them an export reads as it sends, and still gets
        everything in order, instead of waiting for another export to end."""
        workers = Workers(reader_threads=1)
        try:
            busy = workers.read_ahead(iter(range(10)), 1)
            assert next(busy) == 0 and workers.readers == 1
            inline = workers.read_ahead(iter(range(5)), 1)
            assert list(inline) == [0, 1, 2, 3, 4]
            assert workers.readers == 1, "a second reader started beyond the bound"
            busy.close()  # type: ignore[attr-defined]
        finally:
            workers.close()

    def test_stopping_the_service_fails_the_export_being_read(self, workers: Workers) -> None:
        """A service that stops while an export is read ahead makes that export fail (the
        body then ends with its abort trailer), never end as if it were complete."""
        release = threading.Event()

        def source() -> Iterator[int]:
            yield 1
            release.wait(10)
            yield 2

        reader = workers.read_ahead(source(), 1)
        assert next(reader) == 1
        threading.Timer(0.2, workers.close).start()
        try:
            with pytest.raises(ShuttingDown):
                next(reader)
        finally:
            release.set()

    def test_an_error_reaches_the_consumer(self, workers: Workers) -> None:
        """A failure while reading ahead is raised where the export is consumed, after what
        was read before it."""
        def source():
            yield 1
            raise ValueError("page 2 failed")

        reader = workers.read_ahead(source(), 1)
        assert next(reader) == 1
        with pytest.raises(ValueError, match="page 2 failed"):
            next(reader)


class TestProperties:
    def test_every_catalogue_property_in_the_search_body(self, service: TestClient, sandbox: Sandbox) -> None:
        """By default every property of the catalogue is requested, in the POST body
        (never in a URL), and the catalogue is fetched once, then cached."""
        export(service)
        export(service, limit=3)
        catalogue = sandbox.request_log
        assert sum(r["path"].endswith("/properties/contacts") for r in catalogue) == 1, \
            "the property catalogue was not cached"
        asked = search_requests(sandbox)[0]["body"]["properties"]
        assert "custom_field_01" in asked and "email" in asked, asked
        assert all("properties" not in r["query"] for r in search_requests(sandbox))

    def test_a_real_portals_catalogue(self) -> None:
        """With a real portal's catalogue (247 properties, 72 datetimes) the export asks
        search for every one and returns every live contact with all of them, null where
        the contact has no value, as HubSpot answers."""
        realistic = Sandbox(contacts=600, seed=7, now_ms=T0, realistic_catalogues=True)
        with SandboxServer(realistic) as server:
            settings = Settings(token=realistic.token, base_url=server.url, settle_seconds=SETTLE_SECONDS,
                                search_rate_per_second=100, general_rate_per_10s=1000, retry_initial_wait=0.01,
                                max_retries=3, read_timeout=5, connect_timeout=2)
            with make_service(settings, sandbox_clock(realistic)) as service:
                entities = export(service)
        names = [p["name"] for p in realistic._stores["contacts"].catalogue]
        assert len(names) == 247, len(names)
        searches = search_requests(realistic)
        assert searches and all(set(r["body"]["properties"]) == set(names) for r in searches), \
            "every search asks for the whole catalogue"
        assert sorted(e["_id"] for e in entities) == sorted(realistic.live()), "every live contact once"
        for entity in entities:
            assert set(names) <= set(entity["properties"]), sorted(set(names) - set(entity["properties"]))[:5]
        unset = sum(entity["properties"]["hs_sandbox_datetime_01"] is None for entity in entities)
        assert 0 < unset < len(entities), "a sparse property: set on some contacts, null on the rest"

    def test_configured_properties_override(self, configure, sandbox: Sandbox) -> None:
        """HUBSPOT_PROPERTIES replaces the catalogue; the two the walk keys on and the merged
        ids (for merge deletions) are added."""
        entities = export(configure(properties=("email",)), limit=5)
        asked = search_requests(sandbox)[-1]["body"]["properties"]
        assert asked == ["email", "lastmodifieddate", "hs_object_id", "hs_merged_object_ids"], asked
        assert "custom_field_01" not in entities[0]["properties"]

    def test_request_urls_stay_short(self, service: TestClient, sandbox: Sandbox) -> None:
        """No request URL the service sends comes near HubSpot's ~15,000-character limit,
        and none carries the token."""
        sandbox.advance(1000)
        offset = export(service)[0]["_updated"]
        export(service, since=offset)
        for request in sandbox.request_log:
            url = request["path"] + "?" + "&".join(f"{k}={v}" for k, v in request["query"].items())
            assert len(url) < 2000, url[:200]
            assert sandbox.token not in url, "the token is in a URL"


class TestBadInput:
    @pytest.mark.parametrize("query,says", [
        ({"since": "yesterday"}, "since"),
        ({"since": ""}, "since"),
        ({"since": "x" * 10_000}, "since"),
        ({"since": "1969-12-31T23:59:59Z"}, "1970"),
        ({"since": "10000-01-01T00:00:00Z"}, "9999"),
        ({"since": "2024-02-30T00:00:00Z"}, "ISO-8601"),
        ({"since": "999999999999999999"}, "epoch"),
        ({"since": "2024-03-05T10:11:12.345Z_12"}, "token"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-3"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"limit": "99999999999"}, "limit"),
        ({"offset": "3"}, "offset"),
    ])
    def test_rejected_with_a_problem(self, service: TestClient, sandbox: Sandbox, query: dict,
                                     says: str) -> None:
        """Malformed or unknown parameters get 400 application/problem+json saying what
        was wrong, and HubSpot is not called."""
        sandbox.reset_counters()
        response = service.get("/get_contacts", params=query)
        assert response.status_code == 400, f"{query}: {response.status_code} {response.text[:300]}"
        assert response.headers["content-type"] == "application/problem+json", response.headers
        problem = response.json()
        assert problem["status"] == 400 and says in problem["detail"], problem
        assert sandbox.request_log == [], f"{query}: HubSpot was called: {sandbox.request_log}"


class TestUpstreamFailure:
    def test_refused_token_is_a_502_that_names_the_token(self, configure, sandbox: Sandbox) -> None:
        """A token HubSpot refuses gives 502 problem+json telling the operator to check the
        token, without the token itself."""
        response = configure(token="pat-na1-wrong").get("/get_contacts")
        assert response.status_code == 502, response.text
        problem = response.json()
        assert "HUBSPOT_ACCESS_TOKEN" in problem["detail"] and "pat-na1-wrong" not in response.text
        assert problem.get("correlationId"), problem

    def test_failure_before_the_first_byte_is_a_problem(self, service: TestClient, sandbox: Sandbox) -> None:
        """HubSpot unavailable at the start: 503 problem+json with Retry-After, not a 200."""
        sandbox.inject(Fault(endpoint="search", status=503, times=None))
        response = service.get("/get_contacts")
        assert response.status_code == 503, response.text[:300]
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["retry-after"]) >= 1, response.headers

    @pytest.mark.parametrize("body,says", [
        ({"results": [], "paging": {"next": {"after": "200"}}}, "announced more search results but sent none"),
        ({"results": [{"id": "1", "properties": {}}]}, "record '1' has no usable 'lastmodifieddate'"),
        ({"results": [{"properties": {"lastmodifieddate": "2024-01-01T00:00:00Z"}}]}, "has no usable id"),
        ({"results": [], "paging": "next"}, "'paging' is not HubSpot's paging object"),
        ({"results": 5}, "'results' is int, not a list"),
        ({"results": ["5"]}, "has no usable id"),
    ])
    def test_an_unusable_answer_is_hubspots_failure(self, service: TestClient, sandbox: Sandbox,
                                                   body: dict, says: str) -> None:
        """A HubSpot answer that parses but cannot be used (more promised but nothing sent,
        a contact without time or id, paging or results of the wrong shape) is a 502 that
        says so, names the search and what was wrong, not a 500 or a short array."""
        sandbox.inject(Fault(endpoint="search", status=200, body=body, times=None))
        response = service.get("/get_contacts")
        assert response.status_code == 502, response.text[:300]
        detail = response.json()["detail"]
        assert detail.startswith("HubSpot's search answer could not be used: ") and says in detail, detail

    @pytest.mark.parametrize("limit", [None, 5])
    def test_an_answer_without_a_total_is_used(self, service: TestClient, sandbox: Sandbox,
                                               limit: int | None) -> None:
        """HubSpot's ``total`` only sizes the next round of reads: an answer without one is
        exported all the same, with or without a limit."""
        contact = {"id": "5", "properties": {"lastmodifieddate": "2024-01-01T00:00:00Z"}}
        sandbox.inject(Fault(endpoint="search", status=200, body={"results": [contact]},
                             times=None))
        params = {} if limit is None else {"limit": limit}
        entities = export(service, **params)
        assert [entity["_id"] for entity in entities] == ["5"], entities

    def test_failure_mid_stream_breaks_the_json(self, configure, sandbox: Sandbox,
                                                caplog: pytest.LogCaptureFixture) -> None:
        """HubSpot failing after the body has begun ends it as invalid JSON, so Sesam
        cannot take a partial export for a complete one; the last line says why, and so
        does one error in the log: the export's summary, without a traceback (HubSpot's
        failure is no bug of the service)."""
        service = configure(search_page_size=50, search_concurrency=1)
        sandbox.inject(Fault(endpoint="search", status=500, skip=5, times=None))
        with caplog.at_level(logging.ERROR):
            response = service.get("/get_contacts")
        logged = [(r.name, r.getMessage(), getattr(r, "detail", None), r.exc_info) for r in caplog.records
                  if r.levelno >= logging.ERROR]
        assert [(name, message) for name, message, _, _ in logged] == [
            ("app.web.stream", "export of contacts aborted")], logged
        assert "HubSpot answered 500" in str(logged[0][2]) and not logged[0][3], logged
        assert response.status_code == 200 and response.content.startswith(b"[{")
        assert b"EXPORT ABORTED: HubSpot failed: HubSpot answered 500" in response.content, (
            response.content[-300:])
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)


def test_a_long_export_says_how_far_it_got(service: TestClient, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A running export logs a progress line every PROGRESS_SECONDS (here: at once), with the
    entities sent so far, the rate, and what HubSpot's count says is left, before its
    summary."""
    monkeypatch.setattr("app.web.stream.PROGRESS_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="app.web.stream"):
        everything = orjson.loads(service.get("/get_contacts").content)
    (first, *_) = [r for r in caplog.records if "in progress" in r.getMessage()]
    assert first.expected == len(everything), (first.expected, len(everything))  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.web.stream"):
        entities = orjson.loads(service.get("/get_contacts", params={"limit": "50"}).content)
    lines = [r for r in caplog.records if r.name == "app.web.stream"]
    progress = [r for r in lines if "in progress" in r.getMessage()]
    assert len(progress) == len(entities) == 50 and lines[-1].getMessage() == "export of contacts ok", (
        [r.getMessage() for r in lines][-3:])
    assert [r.entities for r in progress] == list(range(1, 51)), [r.entities for r in progress][:5]  # type: ignore[attr-defined]
    assert all(r.entities_per_s > 0 for r in progress)  # type: ignore[attr-defined]
    assert {r.expected for r in progress} == {50}, {r.expected for r in progress}  # type: ignore[attr-defined]
    assert progress[-1].seconds_left < progress[0].seconds_left, "the time left does not fall"  # type: ignore[attr-defined]


class TestFailureLoggedOnce:
    """Each failed export is one error line in the log, its summary, whichever way it failed."""

    @pytest.mark.parametrize("fault", [Fault(endpoint="search", status=503, times=None),
                                       Fault(endpoint="search", status=400, times=None)])
    def test_a_hubspot_failure_before_the_first_byte(self, service: TestClient, sandbox: Sandbox,
                                                     caplog: pytest.LogCaptureFixture, fault: Fault) -> None:
        sandbox.inject(fault)
        with caplog.at_level(logging.WARNING):
            response = service.get("/get_contacts")
        assert response.status_code in (502, 503), response.text
        errors = [(r.name, r.getMessage(), getattr(r, "outcome", None)) for r in caplog.records
                  if r.levelno >= logging.ERROR]
        assert errors == [("app.web.stream", "export of contacts failed", "failed")], errors

    def test_hubspots_correlation_id_from_its_header(self, service: TestClient, sandbox: Sandbox) -> None:
        """An answer whose body names no correlation id (an HTML error page, a body of
        another shape) still gets HubSpot's, from its X-HubSpot-Correlation-Id header."""
        correlation = "0a1b2c3d-0000-4000-8000-00000000beef"
        sandbox.inject(Fault(endpoint="search", status=400, body={"message": "no"}, times=None,
                             headers={"X-HubSpot-Correlation-Id": correlation}))
        response = service.get("/get_contacts")
        assert response.status_code == 502 and response.json().get("correlationId") == correlation, (
            response.text)


class TestOwnBugs:
    """A bug in the service is the service's: a 500, or the abort trailer once the body has
    begun, with its traceback in the log; never a 502 that blames HubSpot."""

    def test_a_bug_before_the_first_byte_is_a_500_with_its_traceback(
            self, service: TestClient, monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture) -> None:
        """A 500 that does not name HubSpot, logged once, by the export's summary line, with
        the traceback."""
        def broken(self: Any, record: Any) -> list:
            raise TypeError("a bug in the service")

        monkeypatch.setattr(export_module._Pass, "_entities", broken)
        with caplog.at_level(logging.WARNING):
            response = service.get("/get_contacts")
        assert response.status_code == 500 and response.json()["title"] == "Internal Server Error", (
            response.text[:300])
        assert "HubSpot" not in response.text, response.text
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == ["export of contacts failed"], errors
        assert errors[0].exc_info and isinstance(errors[0].exc_info[1], TypeError)

    def test_a_bug_mid_stream_ends_the_body_and_logs_its_traceback(
            self, configure, monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture) -> None:
        service = configure(search_page_size=50, search_concurrency=1)
        original, done = export_module._Pass._entities, count()

        def broken_later(self: Any, record: Any) -> list:
            if next(done) >= 300:
                raise TypeError("a bug in the service")
            return original(self, record)

        monkeypatch.setattr(export_module._Pass, "_entities", broken_later)
        with caplog.at_level(logging.ERROR, logger="app.web.stream"):
            response = service.get("/get_contacts")
        assert response.status_code == 200 and response.content.startswith(b"[{")
        assert b"EXPORT ABORTED: a bug in the service" in response.content, response.content[-300:]
        (logged,) = [r for r in caplog.records if r.name == "app.web.stream"]
        assert logged.exc_info and isinstance(logged.exc_info[1], TypeError), logged.getMessage()


class TestSurface:
    def test_health(self, service: TestClient, sandbox: Sandbox) -> None:
        """/health answers without calling HubSpot."""
        sandbox.reset_counters()
        response = service.get("/health")
        assert response.status_code == 200 and response.json()["status"] == "ok", response.text
        assert sandbox.request_log == [], f"/health called HubSpot: {sandbox.request_log}"

    def test_spec_and_ui_are_served(self, service: TestClient) -> None:
        """The contract is served at /openapi.json and browsable at /ui/."""
        spec = service.get("/openapi.json")
        assert spec.status_code == 200 and "/get_contacts" in spec.json()["paths"]
        assert service.get("/ui/").status_code == 200
