"""An emulated Sesam pipe, and what the tests compare it with."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from starlette.testclient import TestClient

from app.timestamps import parse_timestamp
from sandbox import Sandbox

# 2024-06-01T00:00:00Z: a frozen sandbox clock, so that every run is reproducible.
T0 = 1717200000000
SETTLE_SECONDS = 5.0


def settle(sandbox: Sandbox) -> None:
    """Let the sandbox clock pass the settle time, so every write so far is exportable
    (and shown by search and the archived listing, whatever lags are switched on)."""
    lags = (sandbox.search_lag_ms + sandbox.search_lag_jitter_ms + sandbox.search_drop_lag_ms
            + sandbox.archived_list_lag_ms + max(0, -sandbox.date_skew_ms))
    sandbox.advance(int(SETTLE_SECONDS * 1000) + 1000 + lags)


class SesamPipe:
    """Consumes /get_contacts the way a Sesam json source with supports_since does.

    ``max``: one request per run; after a successful run the offset becomes the greatest
    `_updated` seen (compared as strings). ``chronological``: requests of ``page_size``
    entities (sent as `limit`), the offset moving with every entity. A body that is not a
    valid JSON array fails the run: entities already read may be kept (as Sesam writes
    them as it goes), but a "max" offset does not move.
    """

    def __init__(self, service: TestClient, strategy: Literal["max", "chronological"],
                 page_size: int = 100, path: str = "/get_contacts",
                 modified_property: str = "lastmodifieddate", **params: str) -> None:
        self.service = service
        self.strategy = strategy
        self.page_size = page_size
        self.path = path  # the export it reads, e.g. /objects/deals
        self.modified_property = modified_property
        self.params = params  # sent on every request, e.g. associations
        self.offset: str | None = None
        self.dataset: dict[str, dict[str, Any]] = {}
        self.requests = 0

    def _fetch(self, limit: int | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = dict(self.params)
        if self.offset is not None:
            params["since"] = self.offset
        if limit is not None:
            params["limit"] = limit
        self.requests += 1
        response = self.service.get(self.path, params=params)
        assert response.status_code == 200, f"{params}: {response.status_code} {response.text[:500]}"
        entities = orjson.loads(response.content)
        assert isinstance(entities, list), f"{params}: body is not an array"
        return entities

    def _store(self, entity: dict[str, Any]) -> None:
        assert isinstance(entity["_updated"], str) and entity["_id"], entity
        if self.offset is not None:
            assert entity["_updated"] > self.offset, (
                f"entity {entity['_id']} at {entity['_updated']} is not after since={self.offset}")
        self.dataset[entity["_id"]] = entity

    def run(self) -> int:
        """One pipe run; returns how many entities it received.

        A run without an offset is a full run: like Sesam's full rescan, it ends with
        exactly the entities it received (the others count as deleted)."""
        full = self.offset is None
        before = self.dataset
        if full:
            self.dataset = {}
        try:
            return self._run()
        except BaseException:
            if full:
                self.dataset = before
            raise

    def _run(self) -> int:
        if self.strategy == "max":
            entities = self._fetch(None)
            updates = [e["_updated"] for e in entities]
            assert updates == sorted(set(updates)), "entities are not in strictly increasing order"
            for entity in entities:
                self._store(entity)
            if entities:
                self.offset = max([self.offset or "", *updates])
            return len(entities)
        received = 0
        while True:
            entities = self._fetch(self.page_size)
            for entity in entities:
                self._store(entity)
                self.offset = entity["_updated"]
            received += len(entities)
            if len(entities) < self.page_size:
                return received

    def reset(self) -> None:
        """A pipe reset: the next run starts over without since."""
        self.offset = None

    def live(self) -> dict[str, int]:
        """What the pipe holds: record id -> last modification ms, deleted ones left out."""
        # With values=typed the time is a Sesam datetime, "~t" and the ISO text.
        return {
            cid: parse_timestamp(entity["properties"][self.modified_property].removeprefix("~t"))
            for cid, entity in self.dataset.items() if not entity.get("_deleted")
        }


def assert_in_sync(pipe: SesamPipe, sandbox: Sandbox, context: str = "",
                   object_type: str = "contacts") -> None:
    """The pipe holds exactly HubSpot's live records of its type, each in its latest version."""
    truth, held = sandbox.live(object_type), pipe.live()
    missing = sorted(set(truth) - set(held), key=int)
    extra = sorted(set(held) - set(truth), key=int)
    stale = sorted((cid for cid in truth.keys() & held.keys() if truth[cid] != held[cid]), key=int)
    assert not (missing or extra or stale), (
        f"{context}: pipe out of sync with HubSpot: {len(missing)} missing {missing[:10]}, "
        f"{len(extra)} not deleted {extra[:10]}, {len(stale)} stale {stale[:10]}"
    )
