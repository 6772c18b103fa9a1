"""Recorded HubSpot traffic (vcrpy cassettes in cassettes/test_cassettes/), replayed offline.

The export runs on the cassettes exactly as on HubSpot: the property catalogue, the
archived listing and the keyset search walk. The assertions hold for any portal, so the
cassettes can be re-recorded against a real HubSpot test account (see docs/testing.md):
`HUBSPOT_RECORD_TOKEN=… tox -- tests/test_cassettes.py --record-mode=rewrite`. Without a
token, recording uses the sandbox, under HubSpot's host name.
"""

from __future__ import annotations

import email.utils
import json
import os
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from app.config import Settings
from app.hubspot import HubSpotClient
from app.object_types import standard_types
from app.sync import Crm, Exporter, ExportStats
from app.sync.positions import START_POSITION, parse_since
from app.sync.workers import Workers
from app.timestamps import parse_timestamp
from sandbox import Sandbox, SandboxServer
from sandbox.portal import PORTAL_ID

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes" / "test_cassettes"
HUBSPOT = "https://api.hubapi.com"
REPLAY_TOKEN = "replayed-no-token-needed"
SETTLE_SECONDS = 60.0
CUSTOM_OBJECT = f"p{PORTAL_ID}_cars"  # the fully qualified name of the recorded portal's custom object


@pytest.fixture(name="vcr_cassette_dir")
def _vcr_cassette_dir() -> str:
    return str(CASSETTES)


@pytest.fixture(name="target")
def _target(record_mode: str) -> Iterator[tuple[str, str]]:
    """(base URL, token): HubSpot itself when replaying or recording with a real token,
    else a sandbox whose traffic is recorded under HubSpot's host name."""
    if record_mode == "none" or os.environ.get("HUBSPOT_RECORD_TOKEN"):
        yield HUBSPOT, os.environ.get("HUBSPOT_RECORD_TOKEN", REPLAY_TOKEN)
        return
    sandbox = Sandbox(contacts=150, seed=21, now_ms=1717200000000, custom_properties=2,
                      archived_fraction=0.1)
    sandbox.create(count=70)  # a tie on the newest millisecond, wider than a page
    sandbox.advance(120_000)
    with SandboxServer(sandbox) as server:
        yield server.url, sandbox.token


@pytest.fixture(name="vcr_config")
def _vcr_config(target: tuple[str, str]) -> dict:
    base_url, _ = target

    def as_hubspot(request):
        request.uri = request.uri.replace(base_url, HUBSPOT, 1)
        return request

    return {
        "filter_headers": [("authorization", None)],
        "decode_compressed_response": True,
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
        "before_record_request": as_hubspot,
    }


@pytest.fixture(name="exporter")
def _exporter(target: tuple[str, str]) -> Iterator[Exporter]:
    base_url, token = target
    settings = Settings(token=token, base_url=base_url, settle_seconds=SETTLE_SECONDS,
                        search_page_size=50, search_rate_per_second=4, max_retries=0,
                        # vcrpy records requests from several threads unreliably
                        # (kevin1024/vcrpy#849): one page at a time while recording.
                        search_concurrency=1)
    client = HubSpotClient(settings)
    workers = Workers(request_threads=2)
    yield Exporter(client, standard_types(settings.modified_property, {})["contacts"], settings, workers)
    workers.close()
    client.close()


def recorded_search_records(cassette, path: str = "/objects/contacts/search",
                            modified: str = "lastmodifieddate") -> tuple[dict[str, int], int]:
    """Every record HubSpot's search answers at ``path`` in the cassette carried (id ->
    modified ms), and the earliest horizon their Date headers allowed. Works while
    recording too."""
    records: dict[str, int] = {}
    horizon = None
    for request, response in cassette.data:
        if not request.path.endswith(path):
            continue
        headers = {k.lower(): v for k, v in response["headers"].items()}
        server_ms = int(email.utils.parsedate_to_datetime(headers["date"][0]).timestamp()) * 1000
        horizon = min(horizon or server_ms, server_ms) - int(SETTLE_SECONDS * 1000)
        for record in json.loads(response["body"]["string"])["results"]:
            records[record["id"]] = parse_timestamp(record["properties"][modified])
    assert horizon is not None, f"the cassette has no search answer at {path}"
    return records, horizon


@pytest.mark.vcr
def test_full_then_incremental_export(exporter: Exporter, vcr) -> None:
    """Replaying a full export then an incremental one from its middle: each contact that
    HubSpot's recorded answers carried up to the horizon comes out exactly once, in
    strictly increasing _updated order, and the incremental run is the tail of the full
    one plus the deletions since."""
    full = list(exporter.entities(START_POSITION, None, ExportStats()))
    updates = [e["_updated"] for e in full]
    assert updates == sorted(set(updates)), "the full export is not strictly increasing"
    seen, horizon = recorded_search_records(vcr)
    expected = {cid for cid, ms in seen.items() if ms <= horizon}
    got = [e["_id"] for e in full]
    assert set(got) >= expected, f"recorded contacts not exported: {sorted(expected - set(got))[:10]}"
    assert len(got) == len(set(got)), "a contact was exported twice"

    middle = full[len(full) // 2]["_updated"]
    incremental = list(exporter.entities(parse_since(middle), None, ExportStats()))
    live = [e for e in incremental if not e.get("_deleted")]
    assert [e["_id"] for e in live] == [e["_id"] for e in full[len(full) // 2 + 1:]], \
        "the incremental run is not the tail of the full one"
    tokens = [e["_updated"] for e in incremental]
    assert tokens == sorted(set(tokens)) and all(t > middle for t in tokens), tokens[:5]


def test_cassettes_hold_no_credentials() -> None:
    """No recorded request carries an Authorization header or a token."""
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, f"no cassettes in {CASSETTES}"
    for path in files:
        text = path.read_text()
        assert "Bearer" not in text and "hapikey" not in text, f"{path.name} holds a credential"
        for interaction in yaml.safe_load(text)["interactions"]:
            headers = {k.lower() for k in interaction["request"]["headers"]}
            assert "authorization" not in headers, f"{path.name}: Authorization was recorded"


@pytest.fixture(name="crm")
def _crm(target: tuple[str, str]) -> Iterator[Crm]:
    base_url, token = target
    settings = Settings(token=token, base_url=base_url, settle_seconds=SETTLE_SECONDS,
                        search_page_size=50, search_rate_per_second=4, max_retries=0,
                        search_concurrency=1, include_deleted=False)
    client = HubSpotClient(settings)
    yield Crm(client, settings)
    client.close()


@pytest.mark.vcr
def test_other_types_custom_objects_and_associations(crm: Crm, vcr) -> None:
    """Replaying HubSpot's answers for other object types: the schemas API names a custom
    object, whose export (by its fully qualified name) holds every record its recorded
    searches carried; a deals export with associations gives every deal the contacts that
    the recorded v4 answers hold for it, all pages joined."""
    kind = crm.types.resolve(CUSTOM_OBJECT)
    schemas = [json.loads(response["body"]["string"]) for request, response in vcr.data
               if request.path.endswith("/crm/v3/schemas")]
    assert kind.path in {s["objectTypeId"] for s in schemas[0]["results"]}, schemas
    custom = list(crm.entities(kind, START_POSITION, None, ExportStats()))
    seen, horizon = recorded_search_records(vcr, f"/objects/{kind.path}/search", "hs_lastmodifieddate")
    assert {e["_id"] for e in custom} >= {i for i, ms in seen.items() if ms <= horizon}, "custom records lost"

    deals = list(crm.entities(crm.types.resolve("deals"), START_POSITION, None, ExportStats(),
                              (crm.types.resolve("contacts"),)))
    recorded: dict[str, set[str]] = {}
    for request, response in vcr.data:
        if "/crm/v4/associations/deals/contacts/batch/read" in request.path:
            for result in json.loads(response["body"]["string"]).get("results", []):
                recorded.setdefault(str(result["from"]["id"]), set()).update(
                    str(to["toObjectId"]) for to in result["to"])
    assert deals and recorded, "the cassette holds no deals or no association answers"
    for deal in deals:
        got = {a["id"] for a in deal["associations"]["contacts"]}
        assert got == recorded.get(deal["id"], set()), f"deal {deal['id']}: {got} vs {recorded.get(deal['id'])}"
