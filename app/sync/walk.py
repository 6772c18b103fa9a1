"""The keyset walk over HubSpot search: which query comes next, which results may be
emitted, and how the pages of one query are read in flight without trusting their offsets.

Everything here is pure (no I/O) so that it can be tested exhaustively.

HubSpot search sorts by one property only, and returns ties in no particular order. The
walk (`KeysetWalk`) therefore never trusts the order inside a tie: it emits a millisecond
only once it has seen all of it, and reads a millisecond that fills whole pages by itself
with a second kind of query sorted by id (`search_body` writes both kinds in HubSpot's
filter language).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any, Iterable, Literal

from ..object_types import ID_PROPERTY
from ..timestamps import MAX_MS, format_ms
from .positions import ALL_IDS, Key

SortKey = tuple[int, int]
"""A result's place in search order, (modified ms, id): a `Key`, or a record's own."""


@dataclass(frozen=True)
class Query:
    """One search request of the walk.

    ``scan``: records after ``after`` up to ``horizon_ms``, sorted by modification time:
    ``(ms == after.ms and id > after.id) or (after.ms < ms <= horizon_ms)``.
    ``tie``: records on millisecond ``after[0]`` with an id above ``after[1]``, sorted by id.
    """

    kind: Literal["scan", "tie"]
    after: SortKey
    horizon_ms: int


class WalkError(RuntimeError):
    """HubSpot answered the walk in a way that would lose or repeat records."""


Keyed = list[tuple[SortKey, Any]]


SEARCH_CAP = 10_000  # HubSpot answers no result of a query beyond its 10,000th


class OverlapJoin:
    """Pages of ONE query read at offsets 0, n-1, 2(n-1), ... (n the page size), each
    overlapping the one before by one result, joined one at a time in offset order.

    This is how the walk keeps several requests in flight without trusting offsets: a page
    is joined only if it starts with the previous page's last result, and if the
    millisecond on the seam is seen whole (its ids on both sides share only that one
    result). Otherwise the result set moved, or HubSpot ordered a tie differently in the
    two answers, and the join stops there; the walk goes on from what it verified.

    With ``check_totals``, HubSpot's ``total`` of each answer must also agree with the
    first: a record that left the result set between two answers shifts the offsets after
    it, and a tie that HubSpot orders anew can bring the previous page's last result to the
    seam by chance, hiding the shift (an unknown total is not trusted).
    """

    def __init__(self, check_totals: bool = True) -> None:
        self._check_totals = check_totals
        self._total: int | None = None
        self._seam: list[SortKey] = []  # the keys of the last millisecond joined so far
        self.pages = 0  # pages joined
        self.has_more = True  # whether results follow the last page joined

    def add(self, keyed: Keyed, has_more: bool, total: int | None = None) -> Keyed | None:
        """The results the next page adds: all of the first page, then all but the one each
        page shares with the page before. None if the page cannot be joined (nor can any
        after it)."""
        if self.pages == 0:
            added = list(keyed)
            self._total = total
        else:
            if not (self.has_more and keyed and self._seam and keyed[0][0] == self._seam[-1]):
                return None
            if self._check_totals and (total is None or total != self._total):
                return None
            seam_ms = keyed[0][0][0]
            before = self._seam
            after = [key for key, _ in keyed if key[0] == seam_ms]
            if len(set(before) | set(after)) != len(before) + len(after) - 1:
                return None
            added = list(keyed[1:])
        self.pages += 1
        self.has_more = has_more
        for key, _ in added:
            if self._seam and key[0] != self._seam[-1][0]:
                self._seam = []
            self._seam.append(key)
        return added


def join_overlapping(pages: list[tuple[Keyed, bool]],
                     totals: list[int | None] | None = None) -> tuple[Keyed, bool]:
    """Join pages of one query fetched together (see `OverlapJoin`); pages are (results in
    HubSpot's order, has_more), ``totals`` HubSpot's ``total`` of each, if checked.
    Returns the verified union and whether results follow it."""
    join = OverlapJoin(check_totals=totals is not None)
    joined: Keyed = []
    for number, (keyed, more) in enumerate(pages):
        added = join.add(keyed, more, None if totals is None else totals[number])
        if added is None:
            break
        joined += added
    return joined, join.has_more


class KeysetWalk:
    """Reads every record after ``start`` up to the horizon, in strictly increasing key order.

    Each query starts from the last key emitted (keyset paging), so records that change
    during the read cannot shift an offset and be skipped. A query's further pages (read
    at offsets by `QueryRead`) are used only where `OverlapJoin` verifies them, and never
    past HubSpot's 10,000th result; the next query then goes on from the last key emitted.

    The horizon is the last millisecond up to which search is known to be complete. When
    it is not known yet (it comes from HubSpot's clock, i.e. from a response), the first
    query is open-ended and the caller fixes the horizon before handing over its page::

        while (query := walk.next_query()) is not None:
            page, has_more, server_ms = run(query)
            walk.fix_horizon(server_ms - settle_ms)   # no-op once fixed
            emit(walk.accept(query, page, has_more))
    """

    def __init__(self, start: SortKey, horizon_ms: int | None = None,
                 read_by_id_from: int | None = None) -> None:
        """``read_by_id_from``: a held-back millisecond with at least this many records is
        read by id instead of being held on (it is held in memory until it is whole)."""
        self._after = start
        self._horizon_ms = horizon_ms
        self._read_by_id_from = read_by_id_from
        self._tie_ms: int | None = None
        self._held: Keyed = []  # results after `_after` held back within a stream
        self._done = False
        self._sent: set[Query] = set()  # queries begun since `_after` last moved
        self._sent_from = start

    def begin(self, query: Query) -> None:
        """``query`` is about to be sent. Raises WalkError if it was sent before and the walk
        has not moved on since: HubSpot's answers made no progress (a scan whose page is one
        millisecond that a read by id finds empty, again and again), and the walk would
        loop. Each query otherwise emits a result, moves on to reading by id, or ends."""
        if self._after != self._sent_from:
            self._sent.clear()
            self._sent_from = self._after
        if query in self._sent:
            raise WalkError(f"HubSpot's answers made no progress: the walk came back to the "
                            f"same {query.kind} query after {self._after}")
        self._sent.add(query)

    @property
    def horizon_ms(self) -> int | None:
        return self._horizon_ms

    def fix_horizon(self, horizon_ms: int) -> None:
        """Set the horizon if it is still unknown; a fixed horizon never moves back."""
        if self._horizon_ms is None:
            self._horizon_ms = horizon_ms

    def next_query(self) -> Query | None:
        if self._done:
            return None
        horizon = MAX_MS if self._horizon_ms is None else self._horizon_ms
        return Query("scan" if self._tie_ms is None else "tie", self._after, horizon)

    def accept(
        self, query: Query, keyed: Iterable[tuple[SortKey, Any]], has_more: bool,
        continued: bool = False,
    ) -> Keyed:
        """Take one page of results for ``query``; return what may be emitted now, in order.

        ``keyed`` holds (key, record) pairs in any order; ``has_more`` is HubSpot's word
        that the query has results beyond this page. ``continued``: these are the next
        results of the query whose page came before (read at a further offset and joined
        to it, see `QueryRead`), so what that page held back is still held, not re-read.
        """
        if self._horizon_ms is None:
            raise WalkError("the horizon must be fixed before the first page is accepted")
        held, self._held = (self._held if continued else []), []
        page = sorted(chain(held, (item for item in keyed if item[0] > self._after)),
                      key=lambda i: i[0])
        within = [item for item in page if item[0][0] <= self._horizon_ms]
        if query.kind == "tie":
            return self._accept_tie(within, has_more)
        if len(within) < len(page):
            # Results are sorted by time, so everything up to the horizon came before the
            # first result beyond it: the walk is complete with this page.
            has_more = False
        return self._accept_scan(within, has_more, continued)

    def _accept_scan(self, page: Keyed, has_more: bool,
                     continued: bool) -> Keyed:
        if not has_more:
            self._done = True
            return self._emit(page)
        if not page:
            raise WalkError("HubSpot announced more search results but sent none")
        # The last millisecond on the page may go on in the next one: hold it back.
        last_ms = page[-1][0][0]
        ready = [item for item in page if item[0][0] < last_ms]
        held = page[len(ready):]
        if (not ready and not continued) or (
                self._read_by_id_from is not None and len(held) >= self._read_by_id_from):
            # A query's first page all on one millisecond says nothing about its order, and
            # a held-back millisecond this big would cost memory: read that millisecond on
            # its own, sorted by id.
            emitted = self._emit(ready)
            self._read_by_id(last_ms)
            return emitted
        # The next page of the same query brings the rest of it, or the next query (from
        # the last key emitted) reads it again whole.
        self._held = held
        return self._emit(ready)

    def cut(self, page_size: int) -> None:
        """The query's results end here though HubSpot has more (its 10,000th result). A
        held-back millisecond that fills a page is read by id next: a scan from before it
        would find it alone on its first page and turn to reading it by id only then, one
        request (and the pages requested with it) later."""
        if len(self._held) >= page_size:  # dropped by the next query's first page
            self._read_by_id(self._held[-1][0][0])

    def _read_by_id(self, ms: int) -> None:
        self._tie_ms = ms
        if self._after[0] != ms:
            self._after = Key(ms, -1)

    def _accept_tie(self, page: Keyed, has_more: bool) -> Keyed:
        page = [item for item in page if item[0][0] == self._tie_ms]
        if has_more and not page:
            raise WalkError("HubSpot announced more results on one millisecond but sent none")
        emitted = self._emit(page)
        if not has_more:
            # The millisecond is complete: scan on from its last id.
            self._tie_ms = None
        return emitted

    def _emit(self, page: Keyed) -> Keyed:
        if page:
            self._after = page[-1][0]
        return page


class QueryRead:
    """One query of the walk, read as a stream of overlapping pages in flight together.

    The pages of one query are read at offsets 0, n-1, 2(n-1), ... and handed to the walk
    in that order as they are joined (`OverlapJoin`), so that HubSpot's latency is paid
    once per query, not once per page, without trusting an offset: a page that does not
    join ends the read, and the walk's next query (a keyset query from the last key
    emitted) goes on from what was verified. The read also ends where the walk no longer
    wants this query (it turned to reading a millisecond by id, or is complete), at
    HubSpot's 10,000th result (where a held millisecond that fills a page is read by id
    next, `KeysetWalk.cut`), and where nothing more is needed. The caller requests the
    offsets `next_offset` gives (as many as it keeps in flight) and hands each answer, in
    offset order, to `take`::

        read = QueryRead(walk, query, page_size)
        while (offset := read.next_offset()) is not None or in_flight:
            ...                                  # request it; take the oldest answer:
            walk.fix_horizon(server_ms - settle_ms)
            emit(read.take(page, has_more, total))
            if not read.open: break              # answers still in flight are dropped
    """

    def __init__(self, walk: KeysetWalk, query: Query, page_size: int, *,
                 expected: int | None = None, wanted: int | None = None,
                 check_totals: bool = True) -> None:
        """``expected``: how many results the query is thought to have (from the query
        before it), so that its pages can be requested before the first answer says;
        otherwise only the first page is. ``wanted``: results worth reading (a limit)."""
        self._walk = walk
        self.query = query
        self._step = page_size - 1
        self._last_offset = SEARCH_CAP - page_size
        self._join = OverlapJoin(check_totals)
        # A query sent before the horizon was known is open-ended: a record modified while
        # it is read moves within its results rather than out of them, so HubSpot's totals
        # cannot reveal the shift; only its first page is read.
        self._bounded = walk.horizon_ms is not None
        self._known = expected  # the query's total, once its first answer says
        self._wanted = wanted
        self._requested = 0
        self.open = True  # whether the rest of this query is still worth reading
        self.refused = False  # whether a page could not be joined
        self.emitted = 0  # results of this query the walk emitted

    def next_offset(self) -> int | None:
        """The offset of the next page to request, if it is worth requesting now."""
        offset = self._requested * self._step
        if not self.open or offset > self._last_offset:
            return None
        if self._requested:
            needed = self._known if self._wanted is None or self._known is None \
                else min(self._known, self._wanted)
            if not self._bounded or needed is None or offset >= needed:
                return None
        self._requested += 1
        return offset

    def take(self, keyed: Keyed, has_more: bool, total: int | None) -> Keyed:
        """The next answer, in offset order: what the walk emits from it. Raises WalkError
        if the answer contradicts its own query (`check_answer`)."""
        check_answer(self.query, keyed)
        if self._join.pages == 0:
            self._known = total
        added = self._join.add(keyed, has_more, total)
        if added is None:
            self.open, self.refused = False, True
            return []
        emitted = self._walk.accept(self.query, added, self._join.has_more,
                                    continued=self._join.pages > 1)
        if self._join.has_more and self._join.pages * self._step > self._last_offset:
            self._walk.cut(self._step + 1)  # HubSpot's 10,000th result: no page after this
        self.emitted += len(emitted)
        following = self._walk.next_query()
        if following is None or following.kind != self.query.kind:
            self.open = False
        return emitted

    def left(self) -> int | None:
        """How many results a query from where the walk stands is thought to have, if this
        query's total said and the next query is of the same kind."""
        following = self._walk.next_query()
        if self._known is None or following is None or following.kind != self.query.kind:
            return None
        return max(self._known - self.emitted, 0) or None


def check_answer(query: Query, keyed: Keyed) -> None:
    """Raise WalkError if a search answer for ``query`` (results in HubSpot's order) is not
    the answer to that query: a result that breaks the query's sort order, or its filter.

    The walk rests on search returning, for each record, the values it filtered and sorted
    on (see docs/design.md, "What the walk assumes of search"): it ends a pass at the first
    result beyond the horizon, and goes on from the last key it emitted. An answer whose
    values are not those would make it skip records silently, so it is refused instead.

    Order: a scan is sorted by modification time only (ties come in any order of id), a
    read by id by id on one millisecond. Filter: every result lies after ``query.after``
    (HubSpot's GT), on the millisecond a read by id is on, and at or before the horizon
    where a scan sent it (LTE; the first query is open-ended and sends none)."""
    ms, last_id = query.after
    previous: SortKey | None = None
    for key, _ in keyed:
        record = f"record {key[1]} (modified {_shown_ms(key[0])})"
        if key <= query.after:
            raise WalkError(f"{record} is not after {_shown_key(query.after)}, where the "
                            f"{query.kind} query asked only for results after it")
        if query.kind == "tie" and key[0] != ms:
            raise WalkError(f"{record} is not on {_shown_ms(ms)}, the only millisecond the "
                            "query by id asked for")
        if query.kind == "scan" and key[0] > query.horizon_ms:  # MAX_MS: none sent
            raise WalkError(f"{record} is beyond the horizon {_shown_ms(query.horizon_ms)} "
                            "the query asked for results up to")
        if previous is not None and (key[1] < previous[1] if query.kind == "tie"
                                     else key[0] < previous[0]):
            raise WalkError(f"{record} comes after record {previous[1]} (modified "
                            f"{_shown_ms(previous[0])}) in an answer sorted by "
                            f"{'id' if query.kind == 'tie' else 'modification time'}: the "
                            "answer's order goes backwards")
        previous = key


def _shown_ms(ms: int) -> str:
    try:
        return format_ms(ms)
    except ValueError:
        return f"{ms} ms"


def _shown_key(key: SortKey) -> str:
    ms, record_id = key
    if record_id < 0:
        return f"the start of {_shown_ms(ms)}"
    if record_id >= ALL_IDS:
        return f"the end of {_shown_ms(ms)}"
    return f"record {record_id} (modified {_shown_ms(ms)})"


def search_body(
    query: Query, modified_property: str, properties: list[str], limit: int, offset: int = 0
) -> dict[str, Any]:
    """The search request of one step of the keyset walk (see `Query`); an offset only to
    read ahead within it (see `OverlapJoin`)."""
    ms, last_id = query.after

    def where(operator: str, value: int, name: str = modified_property) -> dict[str, str]:
        return {"propertyName": name, "operator": operator, "value": str(value)}

    if query.kind == "tie":
        groups = [[where("EQ", ms), where("GT", last_id, ID_PROPERTY)]]
        sort = ID_PROPERTY
    else:
        upper = [] if query.horizon_ms >= MAX_MS else [where("LTE", query.horizon_ms)]
        if last_id == -1:  # all of millisecond `ms` is still to come
            groups = [[where("GTE", ms), *upper]]
        else:
            groups = [[where("GTE", ms + 1), *upper]]
            if last_id < ALL_IDS:  # the rest of millisecond `ms`
                groups.insert(0, [where("EQ", ms), where("GT", last_id, ID_PROPERTY)])
        sort = modified_property
    body = {
        "filterGroups": [{"filters": filters} for filters in groups],
        "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
        "properties": properties,
        "limit": limit,
    }
    if offset:
        body["after"] = str(offset)
    return body
