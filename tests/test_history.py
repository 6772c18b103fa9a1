"""Property history (`history=`) through the HTTP surface: each live entity carries
`propertiesWithHistory` (values and sources newest first), read with HubSpot's v3 batch read
50 records at a time beside the walk; names are checked against the catalogue; deleted
entities carry none; a record gone before its batch read goes out without it (counted); a
batch read failing mid-stream cuts the body; the token never shows. The sandbox's batch read
in HubSpot's published shape. A Sesam pipe with `history`, full and incremental."""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from app.sync.history import HISTORY_BATCH
from sandbox import Fault, Sandbox
from sandbox.batch import KEPT_PER_PROPERTY, MAX_INPUTS_WITH_HISTORY, Source

from .crm import Crm, serve
from .sesam import SETTLE_SECONDS, T0, SesamPipe, assert_in_sync, settle

BATCH_PATH = "/crm/v3/objects/contacts/batch/read"
USER = Source("CRM_UI", "userId:4471", "Ada Admin", 4471)
WORKFLOW = Source("WORKFLOW", "workflow:88", None, None)


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    # 130 contacts, 3 of them archived: a full export is 127 live records, three batch
    # reads with history (50, 50, 27).
    return Sandbox(contacts=130, seed=7, now_ms=T0)


def export(service: TestClient, path: str = "/get_contacts", **params: Any) -> list[dict]:
    response = service.get(path, params=params)
    assert response.status_code == 200, f"{path} {params}: {response.status_code} {response.text[:500]}"
    return orjson.loads(response.content)


def batch_reads(sandbox: Sandbox) -> list[dict]:
    """The batch reads the sandbox was sent since its counters were reset."""
    return [r for r in sandbox.request_log if r["path"].endswith("/batch/read") and "/v3/" in r["path"]]


def problem(response: Any, status: int) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text[:500]}"
    assert response.headers["content-type"] == "application/problem+json", response.headers
    return response.json()


def first_on_search(sandbox: Sandbox) -> str:
    """The live contact the walk meets first (search's order: modification time, then id)."""
    return min(sandbox.live().items(), key=lambda item: (item[1], int(item[0])))[0]


class TestHistory:
    def test_values_and_sources_newest_first(self, service: TestClient, sandbox: Sandbox) -> None:
        """A contact's firstname written three times by three sources: its entity carries
        the four values (the original one first written by the import) newest first, each
        with its time, sourceType, sourceId and user; another property asked for is there
        too, and the properties not asked for are not."""
        contact = sorted(sandbox.live(), key=int)[5]
        original = sandbox.contact(contact)["properties"]["firstname"]
        times = []
        for value, source in (("Ann", USER), ("Bea", WORKFLOW), ("Cleo", None)):
            sandbox.advance(60_000)
            sandbox.modify([contact], {"firstname": value}, source=source)
            times.append(sandbox.now_ms())
        settle(sandbox)
        entities = {e["_id"]: e for e in export(service, history="firstname,email")}
        history = entities[contact]["propertiesWithHistory"]
        assert set(history) == {"firstname", "email"}, history
        got = [(v["value"], v["sourceType"], v.get("sourceId"), v.get("updatedByUserId"))
               for v in history["firstname"]]
        assert got == [("Cleo", "API", "sandbox-app", None), ("Bea", "WORKFLOW", "workflow:88", None),
                       ("Ann", "CRM_UI", "userId:4471", 4471), (original, "IMPORT", "sandbox-seed", None)], got
        stamps = [v["timestamp"] for v in history["firstname"]]
        assert stamps[:3] == [f"{t}" for t in map(iso_ms, reversed(times))], stamps
        assert history["firstname"][2]["sourceLabel"] == "Ada Admin", history["firstname"][2]
        assert entities[contact]["properties"]["firstname"] == "Cleo", "the value itself is the walk's"
        assert all("propertiesWithHistory" in e for e in entities.values()), "every live entity has history"

    def test_batches_of_the_documented_size(self, service: TestClient, sandbox: Sandbox) -> None:
        """127 live contacts: one batch read per 50 (HubSpot's most with history), every one
        but the last full, each asking for the live ids the walk found and only the
        properties asked; without `history`, none at all."""
        live = sandbox.live()
        sandbox.reset_counters()
        assert len(export(service)) == len(live)
        assert not batch_reads(sandbox), "a plain export read history"
        entities = export(service, history="firstname,lifecyclestage")
        reads = batch_reads(sandbox)
        sizes = [len(r["body"]["inputs"]) for r in reads]
        assert HISTORY_BATCH == MAX_INPUTS_WITH_HISTORY == 50
        assert len(reads) == math.ceil(len(live) / 50) and sizes[:-1] == [50] * (len(sizes) - 1), sizes
        asked = [i["id"] for r in reads for i in r["body"]["inputs"]]
        assert asked == [e["id"] for e in entities], "the batch reads ask for the walk's records, in order"
        assert {tuple(r["body"]["propertiesWithHistory"]) for r in reads} == {("firstname", "lifecyclestage")}

    @pytest.mark.parametrize("names,status,named", [
        ("firstname,no_such_property", 404, "no_such_property"),
        ("dealname", 404, "dealname"),  # a deal's property, not a contact's
        (",".join(f"p{i}" for i in range(21)), 400, "history"),  # more than 20 names
        ("FirstName", 400, "history"),  # no HubSpot property name
        ("firstname,", 400, "history"),
    ])
    def test_a_name_that_is_no_property_is_refused(self, service: TestClient, sandbox: Sandbox,
                                                   names: str, status: int, named: str) -> None:
        """HubSpot ignores a name it does not know (every record would seem to have no
        history): a well-formed name the type lacks is a 404 naming it ("Unknown property",
        as an unknown type is), before any search or batch read; more than 20 names and
        names HubSpot cannot have are a 400. None counts as an export in progress."""
        sandbox.reset_counters()
        body = problem(service.get("/get_contacts", params={"history": names}), status)
        assert named in body["detail"] and (status == 400 or body["title"] == "Unknown property"), body
        counts = sandbox.request_counts()
        assert counts["search"] == counts["batch-read"] == 0, counts
        in_progress = [line for line in service.get("/metrics").text.splitlines()
                       if line.startswith("hubspot_sesam_exports_in_progress{")]
        assert all(line.endswith(" 0.0") for line in in_progress), f"a refused export counts as running: {in_progress}"

    def test_a_record_gone_before_its_batch_read(self, service: TestClient, sandbox: Sandbox,
                                                 caplog: pytest.LogCaptureFixture) -> None:
        """A contact archived after the search page that held it and before its batch read:
        HubSpot leaves it out of the answer (207). Its entity goes out as the walk found
        it, without `propertiesWithHistory` (never another's, never an empty one), the
        others keep theirs, and the export's summary counts it."""
        gone = first_on_search(sandbox)
        sandbox.on_search_page(lambda n: sandbox.archive([gone]) if n == 1 else None)
        with caplog.at_level(logging.INFO):
            entities = {e["_id"]: e for e in export(service, history="firstname")}
        sandbox.on_search_page(None)
        assert gone in entities and "propertiesWithHistory" not in entities[gone], entities.get(gone)
        others = [e for cid, e in entities.items() if cid != gone]
        assert all(e["propertiesWithHistory"]["firstname"] for e in others), "the others lost theirs"
        summary = [r for r in caplog.records if r.getMessage() == "export of contacts ok"]
        assert summary and summary[-1].history_missing == 1, [vars(r) for r in summary]

    def test_a_record_sent_twice_in_one_batch(self, configure, sandbox: Sandbox) -> None:
        """A record changed while a full export runs comes again in its catch-up pass, here
        within the same batch of 50 as its first entity: HubSpot is asked for it once and
        both entities carry its history (before, the answer was refused as answering an id
        twice, or the request asked for it twice)."""
        service = configure(search_page_size=20, search_concurrency=1)
        order = sorted(sandbox.live().items(), key=lambda item: (item[1], int(item[0])))
        again = order[100][0]  # the first of the last batch (101..127)

        def change(page: int) -> None:
            if page == 6:  # records 101..120 were just read
                sandbox.advance(int(SETTLE_SECONDS * 1000) + 2000)
                sandbox.modify([again], {"firstname": "Again"})
                sandbox.advance(int(SETTLE_SECONDS * 1000) + 2000)

        sandbox.on_search_page(change)
        sandbox.reset_counters()
        entities = export(service, history="firstname")
        sandbox.on_search_page(None)
        twice = [e for e in entities if e["_id"] == again]
        assert len(twice) == 2, f"{again} was not sent again: {[e['_id'] for e in entities[-5:]]}"
        assert all(e["propertiesWithHistory"]["firstname"][0]["value"] == "Again" for e in twice), twice
        last = batch_reads(sandbox)[-1]["body"]["inputs"]
        assert [i["id"] for i in last].count(again) == 1, last

    def test_deleted_entities_carry_none(self, service: TestClient, sandbox: Sandbox) -> None:
        """An incremental export with deletions and a merge: the `_deleted` entities carry
        no history and are not asked about; the survivors and changed ones carry theirs."""
        offset = export(service)[-1]["_updated"]
        live = sorted(sandbox.live(), key=int)
        sandbox.advance(10_000)
        sandbox.modify(live[:3], {"firstname": "Zed"})
        sandbox.archive(live[3:5])
        sandbox.merge(live[6], live[7])
        settle(sandbox)
        sandbox.reset_counters()
        entities = export(service, since=offset, history="firstname")
        deleted = [e for e in entities if e.get("_deleted")]
        assert {e["_id"] for e in deleted} >= {live[3], live[4], live[7]}, deleted
        assert not any("propertiesWithHistory" in e for e in deleted), deleted
        changed = [e for e in entities if not e.get("_deleted")]
        assert {e["_id"] for e in changed} >= {*live[:3], live[6]}, changed
        assert all(e["propertiesWithHistory"]["firstname"][0]["value"] == "Zed" for e in changed
                   if e["_id"] in live[:3]), changed
        asked = {i["id"] for r in batch_reads(sandbox) for i in r["body"]["inputs"]}
        assert asked == {e["_id"] for e in changed}, "deleted records were asked about"

    def test_a_failure_mid_stream_cuts_the_body(self, configure, sandbox: Sandbox) -> None:
        """HubSpot failing every batch read from the third on (after the first chunk went
        out): the body ends with the EXPORT ABORTED trailer and is no JSON array, as for
        any failure mid-stream; the first batch read failing is a 502 before any byte."""
        service = configure(max_retries=1)
        sandbox.inject(Fault("batch-read", status=500, skip=2, times=None))
        response = service.get("/get_contacts", params={"history": "firstname"})
        body = response.content
        assert response.status_code == 200 and body.startswith(b"[{"), body[:200]
        assert b"\n!! EXPORT ABORTED: HubSpot failed: HubSpot answered 500" in body, body[-300:]
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        sandbox.clear_faults()
        sandbox.inject(Fault("batch-read", status=503, times=None))
        body = problem(service.get("/get_contacts", params={"history": "firstname"}), 503)
        assert "HubSpot" in body["title"], body

    def test_the_token_never_shows(self, configure, sandbox: Sandbox,
                                   caplog: pytest.LogCaptureFixture) -> None:
        """A batch read rejected with a message that quotes the token: the 502 and the log
        say HubSpot rejected it, without the token."""
        service = configure(max_retries=0)
        sandbox.inject(Fault("batch-read", status=400, times=None, body={
            "status": "error", "category": "VALIDATION_ERROR",
            "message": f"Bearer {sandbox.token} may not read history"}))
        with caplog.at_level(logging.DEBUG):
            response = service.get("/get_contacts", params={"history": "firstname"})
        body = problem(response, 502)
        assert "rejected" in body["title"] and "may not read history" in body["detail"], body
        assert sandbox.token not in response.text and sandbox.token not in caplog.text, body


class TestUntrustedAnswers:
    def answer(self, sandbox: Sandbox, results: list[dict]) -> None:
        sandbox.inject(Fault("batch-read", status=200, times=None, body={
            "status": "COMPLETE", "results": results}))

    def test_values_out_of_order_go_out_newest_first(self, service: TestClient,
                                                     sandbox: Sandbox) -> None:
        """HubSpot's values in another order: the entity has them newest first."""
        first = first_on_search(sandbox)
        values = [{"value": v, "timestamp": t, "sourceType": "API"}
                  for v, t in (("old", "2023-01-01T00:00:00Z"), ("new", "2024-01-01T00:00:00.5Z"),
                               ("mid", "2023-06-01T00:00:00Z"))]
        self.answer(sandbox, [{"id": first, "propertiesWithHistory": {"firstname": values}}])
        entity = export(service, limit="1", history="firstname")[0]
        assert entity["_id"] == first, entity
        got = [v["value"] for v in entity["propertiesWithHistory"]["firstname"]]
        assert got == ["new", "mid", "old"], got

    @pytest.mark.parametrize("result,named", [
        ({"id": "999999"}, "not asked for"),
        ({"id": "x1"}, "no usable id"),
        ({"propertiesWithHistory": {"firstname": [{"value": "a", "sourceType": "API"}]}}, "'timestamp'"),
        ({"propertiesWithHistory": {"firstname": [{"value": "a", "timestamp": "yesterday",
                                                    "sourceType": "API"}]}}, "ISO-8601"),
        ({"propertiesWithHistory": {"firstname": "a"}}, "not a list"),
        ({"propertiesWithHistory": {"firstname": [{"value": 1, "timestamp": "2024-01-01T00:00:00Z",
                                                    "sourceType": "API"}]}}, "'value'"),
        ({"propertiesWithHistory": {"firstname": [{"value": "a", "timestamp": "2024-01-01T00:00:00Z",
                                                    "sourceType": "API", "updatedByUserId": -1}]}},
         "'updatedByUserId'"),
    ])
    def test_an_unusable_answer_is_a_502(self, service: TestClient, sandbox: Sandbox,
                                         result: dict, named: str) -> None:
        """A batch answer for a record not asked for, or with values that are not HubSpot's
        ValueWithTimestamp: a 502 that says what was wrong, never an entity with another
        record's history or a made-up one."""
        self.answer(sandbox, [{"id": first_on_search(sandbox), **result}])
        body = problem(service.get("/get_contacts", params={"limit": "1", "history": "firstname"}), 502)
        assert body["title"] == "HubSpot answer unusable" and named in body["detail"], body


@pytest.mark.parametrize("strategy", ["max", "chronological"])
def test_a_sesam_pipe_with_history(service: TestClient, sandbox: Sandbox, strategy: str) -> None:
    """A pipe with `history` in its URL, full then incremental: in sync with HubSpot, and
    each changed record's newest value first in its history."""
    pipe = SesamPipe(service, strategy, page_size=40, history="firstname")  # type: ignore[arg-type]
    pipe.run()
    assert_in_sync(pipe, sandbox, "full run")
    assert all(e["propertiesWithHistory"]["firstname"] for e in pipe.dataset.values()
               if not e.get("_deleted")), "full run"
    live = sorted(sandbox.live(), key=int)
    sandbox.advance(10_000)
    sandbox.modify(live[10:15], {"firstname": "Nova"}, source=USER)
    sandbox.archive(live[20:22])
    settle(sandbox)
    pipe.run()
    assert_in_sync(pipe, sandbox, "incremental run")
    for cid in live[10:15]:
        newest = pipe.dataset[cid]["propertiesWithHistory"]["firstname"][0]
        assert (newest["value"], newest["sourceType"]) == ("Nova", "CRM_UI"), (cid, newest)
    assert all(pipe.dataset[cid].get("_deleted") and "propertiesWithHistory" not in pipe.dataset[cid]
               for cid in live[20:22]), "deleted records"


def iso_ms(ms: int) -> str:
    """A sandbox timestamp as HubSpot writes it."""
    from sandbox.common import iso
    return iso(ms)


# -- the sandbox's batch read -------------------------------------------------------------


@pytest.fixture(name="crm")
def _crm(sandbox: Sandbox) -> Iterator[Crm]:
    with serve(sandbox) as crm:
        yield crm


class TestSandboxBatchRead:
    def test_the_published_shape(self, crm: Crm, sandbox: Sandbox) -> None:
        """HubSpot's own client (generated from its published description, required
        fields checked) reads the batch read's answers, with history and without, whole
        and with an id not found (207: BatchResponseSimplePublicObjectWithErrors); each
        value has exactly ValueWithTimestamp's fields."""
        def read(response: Any, klass: str) -> Any:
            module = importlib.import_module("hubspot.crm.objects")
            return module.ApiClient().deserialize(SimpleNamespace(data=response.text), klass)

        ids = sorted(sandbox.live(), key=int)[:3]
        sandbox.modify(ids[:1], {"firstname": "Ann"}, source=USER)
        body = {"inputs": [{"id": i} for i in ids], "properties": ["email"],
                "propertiesWithHistory": ["firstname"]}
        whole = crm.post(BATCH_PATH, body)
        assert whole.status_code == 200, whole.text[:300]
        parsed = read(whole, "BatchResponseSimplePublicObject")
        assert [r.id for r in parsed.results] == ids and parsed.status == "COMPLETE", parsed
        newest = parsed.results[0].properties_with_history["firstname"][0]
        assert (newest.value, newest.source_type, newest.updated_by_user_id) == ("Ann", "CRM_UI", 4471)
        fields = {"value", "timestamp", "sourceType", "sourceId", "sourceLabel", "updatedByUserId"}
        for result in whole.json()["results"]:
            for values in result["propertiesWithHistory"].values():
                assert all(set(v) <= fields and {"value", "timestamp", "sourceType"} <= set(v)
                           for v in values), values
        partial = crm.post(BATCH_PATH, {**body, "inputs": [*body["inputs"], {"id": "1"}]})
        assert partial.status_code == 207, partial.text[:300]
        parsed = read(partial, "BatchResponseSimplePublicObjectWithErrors")
        assert parsed.num_errors == 1 and parsed.errors[0].context == {"ids": ["1"]}, parsed
        plain = crm.post(BATCH_PATH, {"inputs": [{"id": i} for i in ids], "properties": ["email"]})
        assert plain.status_code == 200 and all("propertiesWithHistory" not in r for r in plain.json()["results"])

    def test_the_input_limits(self, crm: Crm, sandbox: Sandbox) -> None:
        """100 inputs at most, 50 with history: more is HubSpot's 400."""
        ids = [{"id": i} for i in sorted(sandbox.live(), key=int)[:101]]
        assert crm.post(BATCH_PATH, {"inputs": ids[:100], "properties": []}).status_code == 200
        assert crm.post(BATCH_PATH, {"inputs": ids[:101], "properties": []}).status_code == 400
        with_history = {"properties": [], "propertiesWithHistory": ["email"]}
        assert crm.post(BATCH_PATH, {"inputs": ids[:50], **with_history}).status_code == 200
        refused = crm.post(BATCH_PATH, {"inputs": ids[:51], **with_history})
        assert refused.status_code == 400 and "at most 50" in refused.json()["message"], refused.text

    def test_history_is_bounded(self, sandbox: Sandbox) -> None:
        """A property written more often than the sandbox keeps: its newest values, newest first."""
        contact = sorted(sandbox.live(), key=int)[0]
        for n in range(KEPT_PER_PROPERTY + 5):
            sandbox.advance(1000)
            sandbox.modify([contact], {"firstname": f"v{n}"})
        store = sandbox._store("contacts")
        version = store.current(contact)
        values = [v["value"] for v in store.history.values(store, version, "firstname")]
        assert values == [f"v{n}" for n in reversed(range(5, KEPT_PER_PROPERTY + 5))], values
