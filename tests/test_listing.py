"""The archived listing pinned through the HTTP surface: every way HubSpot may page it, the
property each type's listing asks for, and the snapshot's completeness point when HubSpot's
clock moves while the listing is read.

A mutation audit found each of these unpinned (a listing that reads its first page only,
one that asks every type for contacts' ``lastmodifieddate``, a completeness point taken
from the last page); tests/test_mutants.py keeps those mutants killed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from app.hubspot import ArchivedPage, HubSpotClient
from app.object_types import STANDARD_NAMES, standard_types
from app.sync.deletions import first_seen_ms
from app.timestamps import format_ms
from sandbox import Fault, Sandbox

from .sesam import SETTLE_SECONDS, T0, SesamPipe, settle
from .test_deletions import ARCHIVED_AT, assert_deletion_arrives, old_archived_at

SETTLE_MS = int(SETTLE_SECONDS * 1000)
TYPES = standard_types("lastmodifieddate", {})
SINCE_MS = T0 - 60_000  # after every seeded record: an export since then holds what the test made


def export(service: TestClient, path: str = "/get_contacts", **params: Any) -> list[dict[str, Any]]:
    response = service.get(path, params=params)
    assert response.status_code == 200, f"{path} {params}: {response.status_code} {response.text[:300]}"
    entities: list[dict[str, Any]] = orjson.loads(response.content)
    return entities


def deleted(entities: list[dict[str, Any]]) -> dict[str, str]:
    """id -> archivedAt of the deletions (not the merged-away ids) among ``entities``."""
    return {e["_id"]: e["archivedAt"] for e in entities if e.get("archived") is True}


def listing_requests(sandbox: Sandbox, path: str = "/crm/v3/objects/contacts") -> list[dict[str, Any]]:
    """The query of every archived-listing request, in order."""
    return [r["query"] for r in sandbox.request_log
            if r["path"] == path and r["query"].get("archived") == ["true"]]


def archived(record_id: int, archived_ms: int, modified_ms: int) -> dict[str, Any]:
    """An archived contact as the list API returns it."""
    return {"id": str(record_id), "archived": True, "archivedAt": format_ms(archived_ms),
            "properties": {"lastmodifieddate": format_ms(modified_ms),
                           "hs_object_id": str(record_id)}}


def listing_page(*records: dict[str, Any], after: Any = None) -> Fault:
    """One crafted page of the archived listing (``after``: its ``paging.next.after``)."""
    body: dict[str, Any] = {"results": list(records)}
    if after is not None:
        body["paging"] = {"next": {"after": after, "link": "https://api.hubapi.com/..."}}
    return Fault(endpoint="list", kind="status", status=200, body=body, times=1)


class TestPaging:
    @pytest.mark.parametrize("page_size", [1, 5, 12, 100])
    def test_every_page_is_read(self, page_size: int, configure, sandbox: Sandbox) -> None:
        """With HUBSPOT_LIST_PAGE_SIZE from 1 to more than the portal's 12 archived contacts,
        an incremental export holds the deletion of every one of them, at its archivedAt:
        every page is asked for, each after the cursor the page before gave."""
        service = configure(list_page_size=page_size)
        truth = sandbox.archived()
        entities = export(service, since=str(min(truth.values())))
        assert deleted(entities) == {cid: format_ms(ms) for cid, ms in truth.items()}, (
            f"page size {page_size}: deletions {sorted(deleted(entities))} of {sorted(truth)}")
        pages = listing_requests(sandbox)
        assert len(pages) == max(1, math.ceil(len(truth) / page_size)), (
            f"page size {page_size}: {len(pages)} listing pages for {len(truth)} archived")
        assert all(page["limit"] == [str(page_size)] for page in pages), pages
        assert ["after" in page for page in pages] == [False] + [True] * (len(pages) - 1), pages

    @pytest.mark.parametrize("after", ["7", 7], ids=["text", "number"])
    def test_a_cursor_as_text_or_as_a_number(self, after: Any, service: TestClient,
                                            sandbox: Sandbox) -> None:
        """HubSpot's ``paging.next.after`` is text, but a number is read too: the next page
        is asked for after it, and its deletions are in the export."""
        sandbox.inject(listing_page(archived(900_001, SINCE_MS + 2000, SINCE_MS + 1000), after=after))
        sandbox.inject(listing_page(archived(900_002, SINCE_MS + 4000, SINCE_MS + 3000)))
        entities = export(service, since=str(SINCE_MS))
        assert deleted(entities) == {"900001": format_ms(SINCE_MS + 2000),
                                     "900002": format_ms(SINCE_MS + 4000)}, entities
        pages = listing_requests(sandbox)
        assert [page.get("after") for page in pages] == [None, ["7"]], pages

    def test_an_empty_listing(self, service: TestClient, sandbox: Sandbox) -> None:
        """No archived record at all: one empty page without paging is the whole listing,
        and the export goes on without deletions."""
        sandbox.inject(listing_page())
        entities = export(service, since=str(SINCE_MS))
        assert entities == [], entities
        assert len(listing_requests(sandbox)) == 1, listing_requests(sandbox)

    def test_a_next_page_that_is_empty(self, service: TestClient, sandbox: Sandbox) -> None:
        """A page that announces another, which then holds nothing and announces none: the
        listing ends there with what the first page held."""
        sandbox.inject(listing_page(archived(900_001, SINCE_MS + 2000, SINCE_MS + 1000), after="x1"))
        sandbox.inject(listing_page())
        entities = export(service, since=str(SINCE_MS))
        assert deleted(entities) == {"900001": format_ms(SINCE_MS + 2000)}, entities
        assert [page.get("after") for page in listing_requests(sandbox)] == [None, ["x1"]]


class TestEveryTypesProperty:
    @pytest.mark.parametrize("behaviour", ARCHIVED_AT)
    @pytest.mark.parametrize("name", STANDARD_NAMES)
    def test_the_listing_asks_for_the_types_modification_property(
            self, name: str, behaviour: str, service: TestClient, sandbox: Sandbox) -> None:
        """Every standard type's listing asks for that type's own modification property
        (contacts: lastmodifieddate; the others: hs_lastmodifieddate) and the deletion of a
        record of it sits where it should: at archivedAt when that is later than the record's
        modification time, else just after the first snapshot that held it."""
        old_archived_at(sandbox, behaviour)
        kind = TYPES[name]
        victim = min(sandbox.live(name), key=int)
        sandbox.set_now(T0 + 10_000)
        since = sandbox.now_ms()
        sandbox.advance(1000)
        sandbox.archive([victim], object_type=name)
        archived_ms = sandbox.archived(name)[victim]
        settle(sandbox)
        listed_ms = sandbox.now_ms()
        path = "/get_contacts" if name == "contacts" else f"/objects/{name}"
        entities = export(service, path, since=str(since))
        if behaviour == "last-modified time":
            # Placed just after the first snapshot that held it: the next snapshot's export.
            settle(sandbox)
            entities = export(service, path, since=str(since))
        if behaviour == "deletion time":
            expected = {victim: format_ms(archived_ms)}
        else:  # every archived record, the service's first snapshot being the first to hold them
            expected = dict.fromkeys(sandbox.archived(name), format_ms(first_seen_ms(listed_ms, SETTLE_MS)))
        assert deleted(entities) == expected, f"{name}, {behaviour}: {entities}"
        pages = listing_requests(sandbox, f"/crm/v3/objects/{kind.path}")
        assert pages and all(page.get("properties") == [kind.modified_property] for page in pages), (
            f"{name}: the listing asked for {[page.get('properties') for page in pages]}, "
            f"not {kind.modified_property}")


class TestCompletenessPoint:
    def test_a_deletion_while_the_listing_runs_is_not_hidden(
            self, configure, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        """HubSpot's clock moves on while the listing is read (here three settle times
        between its first and second page), and a contact whose id the listing has passed
        is deleted meanwhile, then another is edited. The snapshot is complete only up to
        its first page's Date minus the settle time: no `_updated` beyond it is handed out,
        so the edit does not move the pipe's offset past the deletion, and the next run
        reports it."""
        first_pages: list[ArchivedPage] = []  # of the one listing that lags
        victim, bystander = sorted(sandbox.live(), key=int)[:2]
        assert int(victim) < min(map(int, sandbox.archived())), "the victim must be on page one"
        pages = HubSpotClient.archived_pages

        def lagging(client: HubSpotClient, *args: Any, **kwargs: Any) -> Iterator[ArchivedPage]:
            """The listing, where HubSpot's clock moves on once its first page is read."""
            for number, page in enumerate(pages(client, *args, **kwargs)):
                yield page
                if number == 0 and not first_pages:
                    first_pages.append(page)
                    sandbox.advance(1000)
                    sandbox.archive([victim])
                    sandbox.advance(1)
                    sandbox.modify([bystander], {"firstname": "later"})
                    sandbox.advance(3 * SETTLE_MS)

        monkeypatch.setattr(HubSpotClient, "archived_pages", lagging)
        pipe = SesamPipe(configure(list_page_size=4), "max")
        pipe.run()  # a full run: no listing
        settle(sandbox)
        pipe.run()  # the listing, with the clock moving under it
        assert len(listing_requests(sandbox)) == 3, "the listing had no pages after the first"
        complete = format_ms(first_pages[0].server_ms - SETTLE_MS)
        beyond = [e["_updated"] for e in pipe.dataset.values() if e["_updated"][:24] > complete]
        assert not beyond, f"handed out beyond the first page's Date - settle ({complete}): {beyond}"
        assert pipe.offset is not None and pipe.offset[:24] <= complete, pipe.offset
        assert_deletion_arrives(pipe, sandbox, victim, "deleted while the listing ran")
