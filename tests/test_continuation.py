"""The continuation logic, pure: `_updated` tokens, `since` parsing and the keyset walk.

The walk is driven against a minimal in-memory search engine that evaluates the very
request bodies the service sends (`search_body`), returns ties in a shuffled order, and
can move contacts while a read is under way.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.hubspot import HubSpotError
from app.hubspot.answers import record
from app.object_types import ID_PROPERTY, standard_types
from app.sync.positions import (
    ALL_IDS,
    MAX_ID,
    START,
    START_POSITION,
    InvalidSince,
    Key,
    encode_key,
    parse_since,
)
from app.sync.walk import KeysetWalk, QueryRead, WalkError, join_overlapping, search_body
from app.timestamps import MAX_MS, format_ms, parse_timestamp

PROP = "lastmodifieddate"
CONTACTS = standard_types(PROP, {})["contacts"]


def contact_key(result: dict[str, Any]) -> tuple[int, int]:
    """A search result's key, as the service reads it at HubSpot's boundary."""
    return record(result, CONTACTS).key

ms_values = st.integers(min_value=0, max_value=MAX_MS)
ids = st.integers(min_value=0, max_value=ALL_IDS - 1)


def scaled(n: int) -> int:
    """``n`` (examples, rounds), or a quarter of it in the mutation run (hypothesis profile
    "mutation", see docs/testing.md): there every surviving mutant runs each test that covers
    it, and the property walks and random rounds are the slowest of them."""
    return n // 4 if settings.get_current_profile_name() == "mutation" else n


class TestTokens:
    @given(ms_values, ids, ms_values, ids)
    def test_token_order_is_key_order(self, ms1: int, id1: int, ms2: int, id2: int) -> None:
        """`_updated` compares bytewise exactly as the (time, id) key: Sesam's "max"
        strategy and chronological paging both rely on it."""
        a, b = encode_key((ms1, id1)), encode_key((ms2, id2))
        assert len(a) == len(b) == 44, f"tokens are not fixed width: {a!r}, {b!r}"
        assert (a < b) == ((ms1, id1) < (ms2, id2)), f"{a} vs {b}"

    @given(ms_values, st.integers(min_value=0, max_value=MAX_ID))
    def test_token_round_trips(self, ms: int, contact_id: int) -> None:
        """A token handed back as since resumes exactly after that contact."""
        assert parse_since(encode_key((ms, contact_id))) == (ms, contact_id, ALL_IDS)

    def test_an_id_wider_than_the_token_is_refused(self) -> None:
        """An id of 20 digits would make a token that no longer sorts like its key."""
        with pytest.raises(ValueError, match="19 digits"):
            encode_key((0, ALL_IDS))

    def test_token_is_readable(self) -> None:
        """The token shows the UTC time with milliseconds and the zero-padded id."""
        assert encode_key((1709633472345, 12345)) == "2024-03-05T10:11:12.345Z_0000000000000012345"

    @pytest.mark.parametrize("value,expected,canonical", [
        ("2024-03-05T10:11:12.345Z", 1709633472345, "2024-03-05T10:11:12.345Z"),
        ("2024-03-05T10:11:12Z", 1709633472000, "2024-03-05T10:11:12.000Z"),
        ("2024-03-05T10:11:12.3Z", 1709633472300, "2024-03-05T10:11:12.300Z"),
        ("2024-03-05T11:11:12.345+01:00", 1709633472345, "2024-03-05T10:11:12.345Z"),
        ("2024-03-04T23:11:12.345-11:00", 1709633472345, "2024-03-05T10:11:12.345Z"),
        ("2024-03-05T10:11:12.345", 1709633472345, "2024-03-05T10:11:12.345Z"),
        ("1709633472345", 1709633472345, "2024-03-05T10:11:12.345Z"),
        ("1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999Z", MAX_MS, "9999-12-31T23:59:59.999Z"),
    ])
    def test_timestamps_in_hubspot_formats(self, value: str, expected: int, canonical: str) -> None:
        """HubSpot writes timestamps with and without milliseconds, in UTC or with an
        offset, or as epoch ms; each is read as that exact instant and written back as
        one fixed-width UTC form."""
        assert parse_timestamp(value) == expected, f"{value} read as {parse_timestamp(value)}"
        assert format_ms(expected) == canonical, f"{expected} written as {format_ms(expected)}"


class TestSince:
    def test_what_the_messages_name(self) -> None:
        """Each refusal says what was wrong with which value: the operator reads it in a
        400's or a 502's detail."""
        with pytest.raises(InvalidSince, match=r"^since=' 2024' is not valid: it has white space"):
            parse_since(" 2024")
        with pytest.raises(ValueError, match=r"^epoch ms -5 is outside 1970-01-01 \.\. 9999-12-31$"):
            format_ms(-5)
        with pytest.raises(HubSpotError) as caught:
            contact_key({"id": "42", "properties": {}})
        assert caught.value.detail.startswith("HubSpot's search answer could not be used: contacts "
                                              "record '42' has no usable 'lastmodifieddate': "), caught.value

    def test_the_largest_hubspot_id_is_accepted(self) -> None:
        """A token may name HubSpot's largest id (2^63 - 1), as a record or merged away;
        only a larger one is refused."""
        token = encode_key((1709633472345, MAX_ID))
        assert parse_since(token) == (1709633472345, MAX_ID, ALL_IDS)
        assert parse_since(f"{encode_key((1709633472345, 5))}~{MAX_ID:019d}") == (1709633472345, 6, MAX_ID)

    def test_absent_is_a_full_export(self) -> None:
        """No since: start before every contact."""
        assert parse_since(None) == START_POSITION

    @pytest.mark.parametrize("value", ["2024-03-05T10:11:12.345Z", "1709633472345"])
    def test_plain_timestamp_is_inclusive(self, value: str) -> None:
        """A bare timestamp (initial_since_value) includes contacts on that very millisecond."""
        start = parse_since(value)
        assert start < (1709633472345, 0), f"{value} would skip its own millisecond: {start}"
        assert start > (1709633472344, ALL_IDS - 1), f"{value} reaches back too far: {start}"

    @pytest.mark.parametrize("value,reason", [
        ("yesterday", "not an ISO-8601 timestamp"),
        ("", "not an ISO-8601 timestamp"),
        ("1969-12-31T23:59:59Z", "outside"),
        ("-5", "outside"),
        ("2024-03-05T10:11:12.345Z_12345", "continuation token but is not one"),
        ("2024-03-05T10:11:12.345Z_00000000000000123x5", "continuation token but is not one"),
        ("2024-13-05T10:11:12.345Z_0000000000000012345", "not valid"),
        ("9" * 20, "outside"),
        ("2024-03-05T10:11:12.345Z_9999999999999999999", "the largest HubSpot id"),
    ])
    def test_malformed_since_is_refused(self, value: str, reason: str) -> None:
        """Anything that is neither a token nor a timestamp is refused, saying why."""
        with pytest.raises(InvalidSince, match=reason):
            parse_since(value)


SEARCH_CAP = 10_000  # HubSpot: no search query pages past its 10,000th result


class SearchCapExceeded(AssertionError):
    """What HubSpot answers with a 400: a page that reaches past the 10,000th result."""


class FakeSearch:
    """Evaluates the service's search bodies over an in-memory portal, like HubSpot would:
    ties come back shuffled (stable per query), `paging.next` when more remain, and no
    page reaches past the 10,000th result of its query."""

    def __init__(self, keys: list[Key], seed: int, unstable_ties: bool = False) -> None:
        self.modified: dict[int, int] = {cid: ms for ms, cid in keys}
        self._random = random.Random(seed)
        self._order = {cid: self._random.random() for cid in self.modified}
        self._unstable_ties = unstable_ties
        self.calls = 0

    def _value(self, cid: int, name: str) -> int:
        return self.modified[cid] if name == PROP else cid

    def _match(self, cid: int, flt: dict[str, str]) -> bool:
        left, right = self._value(cid, flt["propertyName"]), int(flt["value"])
        return {"EQ": left == right, "GT": left > right, "GTE": left >= right,
                "LT": left < right, "LTE": left <= right}[flt["operator"]]

    def __call__(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        self.calls += 1
        if self._unstable_ties:  # a tie may come back in another order on every request
            self._order = {cid: self._random.random() for cid in self.modified}
        groups = body["filterGroups"]
        assert 1 <= len(groups) <= 5 and sum(len(g["filters"]) for g in groups) <= 18, body
        hits = [cid for cid in self.modified
                if any(all(self._match(cid, f) for f in g["filters"]) for g in groups)]
        (sort,) = body["sorts"]
        hits.sort(key=lambda cid: (self._value(cid, sort["propertyName"]), self._order[cid]))
        offset = int(body.get("after", 0))
        if offset + body["limit"] > SEARCH_CAP:
            raise SearchCapExceeded(f"after={offset} + limit={body['limit']} > {SEARCH_CAP}")
        page = hits[offset: offset + body["limit"]]
        results = [{"id": str(cid), "properties": {PROP: format_ms(self.modified[cid]),
                                                    ID_PROPERTY: str(cid)}} for cid in page]
        self.total = len(hits)  # HubSpot's `total` of the last answer
        return results, len(hits) > offset + len(page)


class RecordingSearch(FakeSearch):
    """A FakeSearch that keeps every request and its results."""

    def __init__(self, keys: list[Key], seed: int) -> None:
        super().__init__(keys, seed)
        self.answers: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    def __call__(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        results, has_more = super().__call__(body)
        self.answers.append((body, results))
        return results, has_more


def walk_all(search: FakeSearch, start: Key, horizon: int | None, page_size: int,
             between_pages=lambda n: None, round_pages: int = 1,
             read_by_id_from: int | None = None, seen: set[str] | None = None) -> list[Key]:
    """Run a walk to its end the way the exporter does: each query read as a stream of
    overlapping pages (`QueryRead`), ``round_pages`` of them requested before the oldest
    answer is taken (the exporter's requests in flight); return the keys emitted.
    ``between_pages`` runs after every request (results may move in between). ``seen``
    collects which hard cases the walk met: "tie query", "page held back", "seam refused"
    (a page of the stream could not be joined)."""
    walk = KeysetWalk(start, read_by_id_from=read_by_id_from)
    emitted: list[Key] = []
    seen = set() if seen is None else seen
    expected = None
    while (query := walk.next_query()) is not None:
        read = QueryRead(walk, query, page_size, expected=expected)
        answers: deque = deque()
        while True:
            while len(answers) < round_pages and (offset := read.next_offset()) is not None:
                results, has_more = search(search_body(query, PROP, [PROP], page_size, offset=offset))
                answers.append(([(contact_key(c), c) for c in results], has_more, search.total))
                between_pages(search.calls)
            if not answers:
                break
            keyed, has_more, total = answers.popleft()
            walk.fix_horizon(MAX_MS if horizon is None else horizon)
            accepted = read.take(keyed, has_more, total)
            if query.kind == "tie":
                seen.add("tie query")
            if read.refused:
                seen.add("seam refused")
            elif has_more and len(accepted) < len(keyed) - 1:
                seen.add("page held back")
            emitted += [key for key, _ in accepted]
            assert search.calls < 10_000, "the walk does not terminate"
            if not read.open:
                break
        expected = read.left()
    return emitted


# Portals with heavy ties: few distinct milliseconds, many contacts on each.
portals = st.lists(
    st.tuples(st.integers(min_value=0, max_value=40), st.integers(min_value=1, max_value=500)),
    max_size=120, unique_by=lambda k: k[1],
)


@st.composite
def seam_portals(draw: st.DrawFn) -> tuple[list[Key], int]:
    """(keys, page size) where ties are as long as pages: a few milliseconds, each holding
    from 1 to 4 pages' worth of contacts, often more than a page (HubSpot's bulk updates)."""
    page_size = draw(st.integers(2, 12))
    milliseconds = draw(st.lists(st.integers(0, 40), min_size=1, max_size=6, unique=True))
    sizes = [draw(st.one_of(st.integers(1, page_size), st.integers(page_size, 4 * page_size)))
             for _ in milliseconds]
    contact_ids = draw(st.lists(st.integers(1, 10**6), min_size=sum(sizes),
                                max_size=sum(sizes), unique=True))
    ids_left = iter(contact_ids)
    keys = [(ms, next(ids_left)) for ms, size in zip(milliseconds, sizes) for _ in range(size)]
    longest = max(sizes)
    event("longest tie: " + ('over 2 pages' if longest > 2 * page_size else 'over a page' if longest > page_size
                             else 'a page or less'))
    return keys, page_size


class TestKeysetWalk:
    @settings(max_examples=scaled(400), deadline=None)
    @given(portals, st.integers(2, 12), st.integers(0, 2**32),
           st.one_of(st.none(), st.integers(0, 40)),
           st.one_of(st.just(START), st.tuples(st.integers(-1, 40), st.integers(-1, 501))))
    def test_emits_exactly_the_contacts_after_start_in_order(
        self, keys: list[Key], page_size: int, seed: int, horizon: int | None, start: Key
    ) -> None:
        """Every contact after `since` and up to the horizon comes out once, in strictly
        increasing key order, whatever the ties, page size and starting point."""
        search = FakeSearch(keys, seed)
        emitted = walk_all(search, start, horizon, page_size)
        limit = MAX_MS if horizon is None else horizon
        expected = sorted(k for k in keys if k > start and k[0] <= limit)
        assert emitted == expected, (
            f"page_size={page_size} start={start} horizon={horizon}: "
            f"missing {sorted(set(expected) - set(emitted))}, "
            f"extra {sorted(set(emitted) - set(expected))}, order ok={emitted == sorted(emitted)}"
        )

    @settings(max_examples=scaled(400), deadline=None)
    @given(portals, st.integers(2, 12), st.integers(0, 2**32), st.integers(2, 4),
           st.booleans(), st.one_of(st.just(START), st.tuples(st.integers(-1, 40), st.integers(-1, 501))),
           st.one_of(st.none(), st.integers(1, 12)))
    def test_overlapping_pages_read_ahead_without_loss(
        self, keys: list[Key], page_size: int, seed: int, round_pages: int, unstable: bool,
        start: Key, read_by_id_from: int | None,
    ) -> None:
        """Several overlapping pages per query (read ahead to hide HubSpot's latency), and
        reading big ties by id as soon as they show, emit exactly what one page at a time
        does, even if HubSpot orders ties differently in each answer."""
        search = FakeSearch(keys, seed, unstable_ties=unstable)
        emitted = walk_all(search, start, None, page_size, round_pages=round_pages,
                           read_by_id_from=read_by_id_from)
        expected = sorted(k for k in keys if k > start)
        assert emitted == expected, (
            f"page_size={page_size} round_pages={round_pages} unstable={unstable}: missing "
            f"{sorted(set(expected) - set(emitted))}, extra {sorted(set(emitted) - set(expected))}")

    @settings(max_examples=scaled(300), deadline=None)
    @given(portals, st.integers(2, 12), st.integers(0, 2**32), st.integers(1, 3))
    def test_contacts_changing_during_a_read_lose_no_other(
        self, keys: list[Key], page_size: int, seed: int, round_pages: int
    ) -> None:
        """Contacts modified between two pages (moving past the horizon) do not make the
        walk skip any contact that stayed put: the weakness of offset paging."""
        search = FakeSearch(keys, seed)
        horizon = 40
        moved: set[int] = set()
        rng = random.Random(seed)

        def modify(_: int) -> None:
            for cid in rng.sample(sorted(search.modified), k=min(2, len(search.modified))):
                search.modified[cid] = horizon + 1 + rng.randrange(5)
                moved.add(cid)

        emitted = walk_all(search, START, horizon, page_size, between_pages=modify,
                           round_pages=round_pages)
        stayed = sorted(k for k in keys if k[1] not in moved)
        assert emitted == sorted(emitted) and len(set(emitted)) == len(emitted), emitted
        missing = set(stayed) - set(emitted)
        assert not missing, f"contacts that never changed were skipped: {sorted(missing)}"

    @settings(max_examples=scaled(300), deadline=None)
    @given(seam_portals(), st.integers(0, 2**32), st.integers(1, 4), st.booleans(),
           st.one_of(st.none(), st.integers(1, 12)), st.data())
    def test_ties_longer_than_a_page_at_the_seams(
        self, portal: tuple[list[Key], int], seed: int, round_pages: int, unstable: bool,
        read_by_id_from: int | None, data: st.DataObject,
    ) -> None:
        """Ties longer than a page, several pages on one millisecond, resuming inside a tie,
        overlapping pages whose seams fall inside ties ordered anew on every request: every
        contact after `since` comes out once, in order.

        How often the hard cases are drawn (300 examples, measured with
        --hypothesis-show-statistics): the longest tie is over a page in about 35% of
        draws and over two pages in about 29% (the old `portals` strategy: 1%); a tie query
        (a millisecond read by id) runs in about 38%, a page is held back in about 44%,
        and join_overlapping refuses a seam in about 5%."""
        keys, page_size = portal
        start = data.draw(st.one_of(st.just(START), st.sampled_from(sorted(keys))), label="start")
        search = FakeSearch(keys, seed, unstable_ties=unstable)
        seen: set[str] = set()
        emitted = walk_all(search, start, None, page_size, round_pages=round_pages,
                           read_by_id_from=read_by_id_from, seen=seen)
        for case in sorted(seen):
            event(case)
        expected = sorted(k for k in keys if k > start)
        assert emitted == expected, (
            f"page_size={page_size} round_pages={round_pages} unstable={unstable} start={start}: "
            f"missing {sorted(set(expected) - set(emitted))[:10]}, "
            f"extra {sorted(set(emitted) - set(expected))[:10]}, in order={emitted == sorted(emitted)}")

    @settings(max_examples=scaled(300), deadline=None)
    @given(seam_portals(), st.integers(0, 2**32), st.integers(2, 4))
    def test_results_moving_between_overlapping_pages(
        self, portal: tuple[list[Key], int], seed: int, round_pages: int
    ) -> None:
        """Contacts modified (moving past the horizon, so later results shift to lower
        offsets) between the overlapping pages of one round, with ties longer than a page
        ordered anew on every request: no contact that stayed put is skipped or doubled.

        How often the hard case is drawn (300 examples, measured with
        --hypothesis-show-statistics): join_overlapping refuses a seam because results
        moved or a tie was reordered in about 38% of draws; a tie query runs in about 39%;
        the longest tie is over a page in about 38%. The rarest case, a shift hidden by a
        reordered tie that only HubSpot's totals reveal, came up once in about 3,000 draws
        before totals were checked (pinned by TestJoinOverlapping)."""
        keys, page_size = portal
        search = FakeSearch(keys, seed, unstable_ties=True)
        horizon = 40
        moved: set[int] = set()
        rng = random.Random(seed)

        def modify(_: int) -> None:
            if rng.random() < 0.5:
                cid = rng.choice(sorted(search.modified))
                search.modified[cid] = horizon + 1 + rng.randrange(5)
                moved.add(cid)

        seen: set[str] = set()
        emitted = walk_all(search, START, horizon, page_size, between_pages=modify,
                           round_pages=round_pages, seen=seen)
        for case in sorted(seen):
            event(case)
        assert emitted == sorted(set(emitted)), f"not strictly increasing: {emitted}"
        missing = {k for k in keys if k[1] not in moved} - set(emitted)
        assert not missing, (f"contacts that never changed were skipped: {sorted(missing)[:10]} "
                             f"(keys={sorted(keys)} page_size={page_size} seed={seed} round_pages={round_pages})")

    def test_accept_drops_what_was_already_emitted(self) -> None:
        """HubSpot's filter is not trusted: a result at or before the last key emitted (an
        answer that moved under the query) is dropped, not emitted a second time."""
        walk = KeysetWalk(START, horizon_ms=50)
        query = walk.next_query()
        first = walk.accept(query, [((5, 1), "a"), ((6, 2), "b"), ((9, 3), "c")], has_more=True)
        assert [key for key, _ in first] == [(5, 1), (6, 2)], first
        query = walk.next_query()
        again = walk.accept(query, [((6, 2), "b"), ((5, 1), "a"), ((9, 3), "c")], has_more=False)
        assert [key for key, _ in again] == [(9, 3)], f"emitted twice: {again}"

    @pytest.mark.parametrize("round_pages", [1, 3])
    def test_more_than_a_page_on_one_millisecond(self, round_pages: int) -> None:
        """A millisecond that fills many pages is read by id, from the last id read, so
        even more than 10,000 contacts on one millisecond come out whole and in id order
        from a search that, like HubSpot, refuses to page past its 10,000th result."""
        keys = [(7, cid) for cid in range(1, 10_402)] + [(3, 50_000), (9, 20_000)]
        search = FakeSearch(keys, seed=3)
        emitted = walk_all(search, START, None, 200, round_pages=round_pages)
        assert emitted == sorted(keys), f"{len(emitted)} of {len(keys)} emitted"
        assert search.calls <= round_pages * (len(keys) // 200 + 4), (
            f"{search.calls} calls for {len(keys)} contacts")

    @pytest.mark.parametrize("round_pages", [1, 5])
    @pytest.mark.parametrize("tie", [150, 1_000])
    def test_a_tie_across_hubspots_10000th_result(self, tie: int, round_pages: int) -> None:
        """A bulk update whose millisecond begins before a query's 10,000th result and goes
        on past it comes out whole, once, in order. Where the part held at the cap fills a
        page, the walk reads that millisecond by id next, rather than sending a scan from
        before it that finds it alone on its first page (one request, and the pages sent
        along with it, spent for nothing: bench B4 counts them)."""
        bulk_ms = 20_000
        keys = ([(ms, ms) for ms in range(1, 9_501)] + [(bulk_ms, cid) for cid in range(100_001, 100_001 + tie)]
                + [(ms, ms) for ms in range(bulk_ms + 1, bulk_ms + 301)])
        search = RecordingSearch(keys, seed=5)
        emitted = walk_all(search, START, None, 200, round_pages=round_pages)
        assert emitted == sorted(keys), f"{len(emitted)} of {len(keys)} emitted"
        alone = [body for body, results in search.answers
                 if body["sorts"][0]["propertyName"] == PROP and "after" not in body and len(results) == 200
                 and all(contact_key(c)[0] == bulk_ms for c in results)]
        assert not alone, (f"a scan found the {tie}-contact millisecond alone on its first page "
                           f"after the cap: {alone[0]['filterGroups']}")
        by_id = [body for body, _ in search.answers if body["sorts"][0]["propertyName"] == ID_PROPERTY]
        assert bool(by_id) == (tie > 200), (
            f"{len(by_id)} reads by id for a tie of {tie} across the cap (by id only if it fills a page)")

    def test_the_fake_search_enforces_the_cap(self) -> None:
        """The fake behind these tests refuses, like HubSpot, a page past 10,000 results:
        a walk that paged a big tie by offset would fail here."""
        search = FakeSearch([(7, cid) for cid in range(1, 10_402)], seed=3)
        body = search_body(KeysetWalk(START, horizon_ms=7).next_query(), PROP, [PROP], 200,
                           offset=9_801)
        with pytest.raises(SearchCapExceeded):
            search(body)

    def test_resumes_inside_a_tie(self) -> None:
        """since = a token in the middle of a tie resumes with the rest of that millisecond."""
        keys = [(5, cid) for cid in range(1, 600)] + [(6, 1)]
        emitted = walk_all(FakeSearch(keys, seed=1), (5, 300), None, 50)
        assert emitted == [(5, cid) for cid in range(301, 600)] + [(6, 1)], emitted[:5]

    def test_upstream_that_promises_more_but_sends_nothing_fails(self) -> None:
        """A page that says "more" but is empty would loop or lose: the walk stops loudly,
        saying what HubSpot did (the operator reads it in the 502's detail)."""
        walk = KeysetWalk(START, horizon_ms=10)
        query = walk.next_query()
        assert query is not None
        with pytest.raises(WalkError, match="^HubSpot announced more search results but sent none$"):
            walk.accept(query, [], has_more=True)

    def test_a_tie_query_that_promises_more_but_sends_nothing_fails(self) -> None:
        """The same for a millisecond read by id: the walk stops, saying so."""
        walk = KeysetWalk(START, horizon_ms=10, read_by_id_from=2)
        scan = walk.next_query()
        assert walk.accept(scan, [((5, cid), None) for cid in (1, 2)], has_more=True) == []
        tie = walk.next_query()
        assert tie is not None and tie.kind == "tie", tie
        with pytest.raises(WalkError,
                           match="^HubSpot announced more results on one millisecond but sent none$"):
            walk.accept(tie, [], has_more=True)

    def test_horizon_must_be_known_before_results(self) -> None:
        """Results cannot be judged before the horizon is fixed."""
        walk = KeysetWalk(START)
        query = walk.next_query()
        assert query is not None and query.horizon_ms == MAX_MS, query
        with pytest.raises(WalkError, match="^the horizon must be fixed before the first page is accepted$"):
            walk.accept(query, [], has_more=False)


def keyed(*keys: Key) -> list[tuple[Key, str]]:
    return [(key, f"c{key[1]}") for key in keys]


class TestQueryRead:
    """One query read as a stream of overlapping pages: which offsets are requested, and
    what the walk makes of the answers (page size 4, so 3 new results a page)."""

    @staticmethod
    def bounded(read_by_id_from: int | None = None) -> KeysetWalk:
        return KeysetWalk(START, horizon_ms=100, read_by_id_from=read_by_id_from)

    @staticmethod
    def offsets(read: QueryRead) -> list[int]:
        return list(iter(read.next_offset, None))

    def test_pages_are_requested_as_far_as_hubspots_total(self) -> None:
        """Before the first answer only its page is worth requesting; then HubSpot's total
        says how many follow, at offsets n-1 apart."""
        walk = self.bounded()
        read = QueryRead(walk, walk.next_query(), 4)
        assert self.offsets(read) == [0], "pages requested before the total was known"
        read.take(keyed((1, 1), (2, 2), (3, 3), (4, 4)), True, 10)
        assert self.offsets(read) == [3, 6, 9], "the pages up to the total, each overlapping by one"
        read.take(keyed((4, 4), (5, 5), (6, 6), (7, 7)), True, 10)
        assert read.left() == 4, "what is left after 6 of 10 results emitted"
        assert read.open and read.refused is False, "a page that joins was refused"

    def test_an_expected_total_requests_pages_at_once(self) -> None:
        """The previous query's total (what is left of it) sizes the next one's requests
        before its first answer, and a limit caps them."""
        walk = self.bounded()
        assert self.offsets(QueryRead(walk, walk.next_query(), 4, expected=7)) == [0, 3, 6]
        assert self.offsets(QueryRead(walk, walk.next_query(), 4, expected=7, wanted=4)) == [0, 3]

    def test_no_page_past_hubspots_10000th_result(self) -> None:
        """HubSpot refuses offset + limit beyond 10,000: the read stops before it."""
        walk = self.bounded()
        offsets = self.offsets(QueryRead(walk, walk.next_query(), 200, expected=50_000))
        assert offsets[-1] == 9_751 and offsets[-1] + 200 <= 10_000, offsets[-3:]
        assert offsets == list(range(0, 9_752, 199)), "an offset skipped or repeated"
        small = self.offsets(QueryRead(walk, walk.next_query(), 4, expected=50_000))
        assert small[-1] == 9_996, f"the last page that fits was not read: {small[-2:]}"

    @pytest.mark.parametrize("size, held, by_id", [(200, 199, False), (200, 200, True), (100, 250, True)])
    def test_at_the_cap_a_held_millisecond_that_fills_a_page_is_read_by_id(
            self, size: int, held: int, by_id: bool) -> None:
        """A stream that reaches HubSpot's 10,000th result holding ``held`` results of one
        millisecond (which goes on past the cap): the walk reads that millisecond by id next
        if it fills a page, else scans on from the last key it emitted. Not before the
        stream's final page, the last one HubSpot answers."""
        walk = KeysetWalk(START, horizon_ms=MAX_MS - 1)
        final = (10_000 - size) // (size - 1) * (size - 1)
        seen = final + size  # results the stream's pages cover
        results = [(ms, ms) for ms in range(1, seen - held + 1)] + [(50_000, cid) for cid in range(1, held + 301)]
        read = QueryRead(walk, walk.next_query(), size, expected=len(results))
        offsets = self.offsets(read)
        assert offsets[-1] == final, offsets[-2:]
        for offset in offsets:
            if offset == final:
                assert read.open and walk.next_query().kind == "scan", (
                    f"the walk left the stream before its final page (offset {final})")
            read.take(keyed(*results[offset:offset + size]), True, len(results))
        query = walk.next_query()
        if by_id:
            assert query.kind == "tie" and query.after == (50_000, -1), (
                f"{held} results of one millisecond held at the cap (page size {size}): {query}")
        else:
            assert query.kind == "scan" and query.after == (seen - held, seen - held), (
                f"{held} results held at the cap, less than a page of {size}, were read by id: {query}")

    def test_an_open_ended_query_reads_one_page(self) -> None:
        """A query sent before the horizon was known (no upper bound on time) reads only its
        first page, but its total still sizes the next query."""
        walk = KeysetWalk(START)
        read = QueryRead(walk, walk.next_query(), 4)
        assert self.offsets(read) == [0]
        walk.fix_horizon(100)
        assert read.take(keyed((1, 1), (2, 2), (3, 3), (4, 4)), True, 50) == keyed((1, 1), (2, 2), (3, 3))
        assert self.offsets(read) == [], "an open-ended query was read at an offset"
        assert read.left() == 47, "the next query was not sized by what is left"

    def test_a_millisecond_held_across_pages_comes_out_whole_in_order(self) -> None:
        """A tie that runs over several pages of one stream is held (not re-read) and
        emitted in id order once a later millisecond shows it is complete."""
        walk = self.bounded()
        read = QueryRead(walk, walk.next_query(), 4, expected=10)
        pages = [(keyed((1, 1), (5, 9), (5, 3), (5, 7)), True),
                 (keyed((5, 7), (5, 2), (5, 8), (5, 4)), True),
                 (keyed((5, 4), (5, 6), (6, 1), (7, 1)), False)]
        out = [read.take(page, more, 10) for page, more in pages]
        assert out[0] == keyed((1, 1)) and out[1] == [], f"emitted before the tie was whole: {out}"
        assert [key for key, _ in out[2]] == [(5, 2), (5, 3), (5, 4), (5, 6), (5, 7), (5, 8), (5, 9),
                                              (6, 1), (7, 1)], out[2]
        assert walk.next_query() is None and not read.open

    def test_a_page_that_does_not_join_ends_the_read(self) -> None:
        """A page from a result set that moved ends the stream; the walk's next query
        starts from the last key it emitted, and re-reads what it held."""
        walk = self.bounded()
        read = QueryRead(walk, walk.next_query(), 4, expected=10)
        read.take(keyed((1, 1), (2, 2), (3, 3), (3, 4)), True, 10)
        assert read.take(keyed((4, 5), (4, 6), (5, 7), (6, 8)), True, 10) == []
        assert read.refused and not read.open
        query = walk.next_query()
        assert query.kind == "scan" and query.after == (2, 2), query
        assert read.left() == 8, "the next query was not sized by what this one left (10 - 2)"

    def test_a_page_from_a_result_set_of_another_size_ends_the_read(self) -> None:
        """The totals are checked on every page of the stream."""
        walk = self.bounded()
        read = QueryRead(walk, walk.next_query(), 4, expected=10)
        read.take(keyed((1, 1), (2, 2), (3, 3), (3, 4)), True, 10)
        assert read.take(keyed((3, 4), (4, 6), (5, 7), (6, 8)), True, 9) == [] and read.refused

    def test_a_big_tie_turns_the_walk_to_reading_by_id(self) -> None:
        """A held millisecond that reaches ``read_by_id_from`` (here 6 results) ends the
        stream: the walk reads that millisecond by id, from its start."""
        walk = self.bounded(read_by_id_from=6)
        read = QueryRead(walk, walk.next_query(), 4, expected=20)
        read.take(keyed((1, 1), (5, 9), (5, 3), (5, 7)), True, 20)
        assert read.open, "the stream ended before the tie reached the limit"
        read.take(keyed((5, 7), (5, 2), (5, 8), (5, 4)), True, 20)
        query = walk.next_query()
        assert not read.open and query.kind == "tie" and query.after == (5, -1), query


class TestJoinOverlapping:
    def test_pages_that_line_up_are_joined(self) -> None:
        """Pages at offsets 0 and n-1 that share their seam result join into one page."""
        first = ([((1, 10), "a"), ((5, 11), "b"), ((5, 12), "c")], True)
        second = ([((5, 12), "c"), ((5, 13), "d"), ((9, 14), "e")], False)
        joined, has_more = join_overlapping([first, second])
        assert [k for k, _ in joined] == [(1, 10), (5, 11), (5, 12), (5, 13), (9, 14)], joined
        assert has_more is False

    def test_a_shifted_page_is_not_joined(self) -> None:
        """A page that does not start with the previous page's last result (a contact left
        the result set between the two requests) is dropped: its offset would skip one."""
        first = ([((1, 10), "a"), ((2, 11), "b")], True)
        shifted = ([((3, 13), "d"), ((4, 14), "e")], False)
        assert join_overlapping([first, shifted]) == first, "a shifted page was trusted"

    def test_a_tie_ordered_differently_on_the_seam_is_not_joined(self) -> None:
        """If HubSpot orders the tie on the seam differently in the two answers, the shared
        result can match while others are doubled or missing: the join stops there."""
        first = ([((1, 10), "a"), ((5, 11), "x"), ((5, 12), "y")], True)
        reordered = ([((5, 12), "y"), ((5, 11), "x"), ((9, 14), "z")], False)
        assert join_overlapping([first, reordered]) == first, "a reordered tie was trusted"

    def test_a_page_from_a_result_set_of_another_size_is_not_joined(self) -> None:
        """A contact left the result set between the two answers and the tie on the seam
        came back reordered, so the second page starts with the first one's last result by
        chance: HubSpot's totals differ, and the page is dropped (its offset skipped W)."""
        first = ([((0, 1), "A"), ((1, 2), "s")], True)
        shifted = ([((1, 2), "s"), ((2, 4), "B")], False)  # W = (1, 3) slid before s
        assert join_overlapping([first, shifted], [5, 4]) == first, "a shifted page was trusted"
        assert join_overlapping([first, shifted], [5, None]) == first, "an unknown total was trusted"
        assert join_overlapping([first, shifted], [5, 5])[0] == [*first[0], shifted[0][1]]

    def test_nothing_is_joined_after_the_last_page(self) -> None:
        """Once a page says it is the last, later pages are ignored."""
        last = ([((1, 10), "a")], False)
        assert join_overlapping([last, ([((1, 10), "a")], False)]) == last


class TestSearchBody:
    def test_resume_in_a_tie_uses_two_groups(self) -> None:
        """After (ms, id): the rest of that millisecond by id, OR later milliseconds up to
        the horizon; values are epoch ms strings; sorted by modification time."""
        walk = KeysetWalk((1000, 42), horizon_ms=5000)
        body = search_body(walk.next_query(), PROP, ["email"], 200)
        assert body["filterGroups"] == [
            {"filters": [{"propertyName": PROP, "operator": "EQ", "value": "1000"},
                         {"propertyName": ID_PROPERTY, "operator": "GT", "value": "42"}]},
            {"filters": [{"propertyName": PROP, "operator": "GTE", "value": "1001"},
                         {"propertyName": PROP, "operator": "LTE", "value": "5000"}]},
        ], body
        assert body["sorts"] == [{"propertyName": PROP, "direction": "ASCENDING"}]
        assert body["limit"] == 200 and body["properties"] == ["email"]
        assert "after" not in body, "the first page of a query was read at an offset"

    def test_a_scan_from_the_start_of_a_millisecond_is_one_group(self) -> None:
        """After a millisecond read by id turned out empty (its records moved on), the scan
        goes on from the start of that millisecond: one group, from it up to the horizon."""
        body = search_body(KeysetWalk((1000, -1), horizon_ms=5000).next_query(), PROP, [PROP], 200)
        assert body["filterGroups"] == [
            {"filters": [{"propertyName": PROP, "operator": "GTE", "value": "1000"},
                         {"propertyName": PROP, "operator": "LTE", "value": "5000"}]}], body

    def test_full_export_first_query_is_open_ended(self) -> None:
        """The first query of a full export has no upper bound: the horizon comes from
        HubSpot's clock in its answer."""
        body = search_body(KeysetWalk(START).next_query(), PROP, [], 200)
        assert body["filterGroups"] == [
            {"filters": [{"propertyName": PROP, "operator": "GTE", "value": "0"}]}], body
