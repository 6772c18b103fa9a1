"""Pins the fake HubSpot portal (sandbox) to the HubSpot behaviour the exporter relies on.

The sandbox is the test bed for the whole project, so these tests check that it is faithful
(shapes the official client accepts, the search API's limits and lag) and adversarial where
real HubSpot is (shuffled ties, the 10,000 cap, rate limits, faults).
"""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from sandbox import Fault, Sandbox, SandboxServer

from .crm import ROOT, Crm

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z, a frozen sandbox clock
DAY = 86_400_000
SEARCH = "/crm/v3/objects/contacts/search"
LIST = "/crm/v3/objects/contacts"
PROPERTIES = "/crm/v3/properties/contacts"


class Api(Crm):
    """A requests session against one sandbox server, authenticated like the exporter, for contacts."""

    def search(self, body: dict) -> requests.Response:
        return self.session.post(self.url + SEARCH, json=body, timeout=10)

    def list_all(self, **params: Any) -> list[dict]:
        """Every result of the list API, following paging.next.after."""
        results: list[dict] = []
        after = None
        while True:
            response = self.get(LIST, limit=100, **params, **({"after": after} if after else {}))
            assert response.status_code == 200, f"list page after={after!r}: {response.status_code} {response.text}"
            page = response.json()
            results += page["results"]
            if "paging" not in page:
                return results
            after = page["paging"]["next"]["after"]

    def search_all(self, body: dict) -> list[str]:
        """The ids of every contact search result in order, paging by offset 200 at a time."""
        return self.search_ids("contacts", body)


def by(name: str, operator: str, value: Any = None, **extra: Any) -> dict:
    """One search filter."""
    return {"propertyName": name, "operator": operator, **({"value": value} if value is not None else {}), **extra}


def deserialize(text: str, klass: str, package: str = "contacts") -> Any:
    """Deserialize a raw JSON response with the official client's own deserializer."""
    module = importlib.import_module(f"hubspot.crm.{package}")
    return module.ApiClient().deserialize(SimpleNamespace(data=text), klass)


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    return Sandbox(contacts=300, now_ms=NOW)


@pytest.fixture(name="server")
def _server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox) as server:
        yield server


@pytest.fixture(name="api")
def _api(server: SandboxServer, sandbox: Sandbox) -> Iterator[Api]:
    api = Api(server.url, sandbox.token)
    yield api
    api.session.close()


@pytest.fixture(name="truth")
def _truth(sandbox: Sandbox) -> dict[str, dict]:
    """id -> all current properties of every live contact."""
    return {cid: sandbox.contact(cid)["properties"] for cid in sandbox.live()}


@pytest.fixture(name="big", scope="module")
def _big() -> Iterator[tuple[Sandbox, Api]]:
    """A portal with more than 10,000 live contacts, shared by the read-only tests of the cap."""
    sandbox = Sandbox(contacts=10_500, now_ms=NOW, archived_fraction=0)
    with SandboxServer(sandbox) as server:
        api = Api(server.url, sandbox.token)
        yield sandbox, api
        api.session.close()


class TestSeededData:
    def test_same_seed_same_portal(self) -> None:
        """Seeding is deterministic: the same seed gives the same contacts, values and timestamps."""
        first, second = Sandbox(contacts=200, now_ms=NOW, seed=7), Sandbox(contacts=200, now_ms=NOW, seed=7)
        assert first.live() == second.live(), "live contacts differ between two sandboxes with one seed"
        assert first.archived() == second.archived(), "archived contacts differ between two sandboxes with one seed"
        some = next(iter(first.live()))
        assert first.contact(some) == second.contact(some), (
            f"contact {some} differs between two sandboxes with one seed")
        assert Sandbox(contacts=200, now_ms=NOW, seed=8).live() != first.live(), "another seed gave the same portal"

    def test_ids_numeric_increasing_with_gaps(self, sandbox: Sandbox) -> None:
        """Ids are numeric strings from 101 upwards with gaps, and hs_object_id equals the id."""
        ids = sorted(int(cid) for cid in [*sandbox.live(), *sandbox.archived()])
        assert ids[0] == 101, f"first id is {ids[0]}, expected 101"
        gaps = {b - a for a, b in zip(ids, ids[1:])}
        assert gaps <= {1, 2, 3} and len(gaps) > 1, f"gaps between ids should vary within 1..3, got {gaps}"
        for cid in list(sandbox.live())[:20]:
            assert sandbox.contact(cid)["properties"]["hs_object_id"] == cid, f"hs_object_id of {cid} is not its id"

    def test_timestamps_cluster_and_render_both_ways(self) -> None:
        """Seeded lastmodifieddates cluster on shared milliseconds (one cluster >= 250) and
        include whole seconds, which render without a fraction, next to ones with milliseconds."""
        sandbox = Sandbox(contacts=3000, now_ms=NOW)
        times = Counter(sandbox.live().values())
        biggest = max(times.values())
        shared = sum(count for count in times.values() if count > 1)
        assert biggest >= 250, f"largest same-millisecond cluster is {biggest}, expected >= 250"
        assert shared >= 0.10 * len(sandbox.live()), f"only {shared} contacts share a millisecond, expected >= 10%"
        rendered = [sandbox.contact(cid)["updatedAt"] for cid in list(sandbox.live())[:1000]]
        whole = [text for text in rendered if len(text) == len("2024-03-05T10:11:12Z")]
        fractional = [text for text in rendered if len(text) == len("2024-03-05T10:11:12.345Z")]
        assert whole and fractional, f"expected both ISO forms, got {len(whole)} whole and {len(fractional)} with ms"
        assert len(whole) + len(fractional) == len(rendered), "some timestamps have neither ISO form"

    def test_times_within_window_and_ordered(self, sandbox: Sandbox) -> None:
        """lastmodifieddate lies within 90 days before start, createdate before it, and archivedAt
        between lastmodifieddate and start; about archived_fraction of contacts are archived."""
        for cid, modified in sandbox.live().items():
            assert NOW - 90 * DAY <= modified < NOW, f"contact {cid} modified at {modified}, outside the window"
        contact = sandbox.contact(next(iter(sandbox.live())))
        assert contact["createdAt"] < contact["updatedAt"], f"createdAt not before updatedAt: {contact}"
        archived = sandbox.archived()
        assert len(archived) == 6, f"2% of 300 contacts should be archived, got {len(archived)}"
        for cid, archived_at in archived.items():
            contact = sandbox.contact(cid)
            assert contact["archived"] is True and "archivedAt" in contact, f"archived contact renders wrong: {contact}"
            assert contact["updatedAt"] < contact["archivedAt"] and archived_at < NOW, (
                f"archivedAt out of order: {contact}")

    def test_most_properties_have_values(self, truth: dict[str, dict]) -> None:
        """Default and custom properties exist on every contact and most carry a value."""
        properties = next(iter(truth.values()))
        assert {"email", "firstname", "phone", "lifecyclestage", "custom_field_01",
                "custom_field_20"} <= set(properties)
        values = [value for contact in truth.values() for value in contact.values()]
        filled = sum(value is not None for value in values) / len(values)
        assert 0.6 < filled < 1, f"{filled:.0%} of property values are set; expected most but not all"


class TestWrites:
    def test_create_in_one_call_shares_a_millisecond(self, sandbox: Sandbox) -> None:
        """Contacts created in one call share the current ms; given properties override generated ones."""
        highest = max(int(cid) for cid in [*sandbox.live(), *sandbox.archived()])
        ids = sandbox.create(3, {"firstname": "Tie"})
        live = sandbox.live()
        assert {live[cid] for cid in ids} == {NOW}, "contacts created together should all be modified at now"
        numbers = [int(cid) for cid in ids]
        assert numbers == sorted(numbers) and numbers[0] > highest, f"new ids {ids} should follow {highest}"
        contact = sandbox.contact(ids[0])
        assert contact["properties"]["firstname"] == "Tie", f"override lost: {contact}"
        assert contact["properties"]["email"], f"email should be generated: {contact}"

    def test_modify_archive_restore(self, sandbox: Sandbox) -> None:
        """modify bumps lastmodifieddate to now; archive moves a contact to archived(); restore moves it back."""
        cid = next(iter(sandbox.live()))
        sandbox.advance(5)
        sandbox.modify([cid], {"city": "Tromsø", "phone": None})
        properties = sandbox.contact(cid)["properties"]
        assert sandbox.live()[cid] == NOW + 5, "modify should set lastmodifieddate to the sandbox now"
        assert properties["city"] == "Tromsø" and properties["phone"] is None, f"modify lost a value: {properties}"
        sandbox.archive([cid])
        assert cid not in sandbox.live() and sandbox.archived()[cid] == NOW + 5, "archive did not move the contact"
        sandbox.advance(5)
        sandbox.restore([cid])
        assert sandbox.live()[cid] == NOW + 10 and cid not in sandbox.archived(), "restore did not bring it back"

    def test_write_errors(self, sandbox: Sandbox) -> None:
        """Unknown or archived ids raise KeyError; unknown or read-only properties raise ValueError."""
        archived = next(iter(sandbox.archived()))
        with pytest.raises(KeyError):
            sandbox.modify(["99999999"], {"city": "x"})
        with pytest.raises(KeyError):
            sandbox.modify([archived], {"city": "x"})
        with pytest.raises(ValueError):
            sandbox.create(1, {"no_such_property": "x"})
        with pytest.raises(ValueError):
            sandbox.create(1, {"lastmodifieddate": 1})


class TestClock:
    def test_frozen_clock_moves_only_on_request(self, sandbox: Sandbox) -> None:
        """A sandbox given now_ms keeps that time until advance() or set_now(); set_now refuses to go back."""
        time.sleep(0.01)
        assert sandbox.now_ms() == NOW, "a frozen clock moved by itself"
        sandbox.advance(1500)
        assert sandbox.now_ms() == NOW + 1500, "advance did not move the clock"
        sandbox.set_now(NOW + DAY)
        assert sandbox.now_ms() == NOW + DAY, "set_now did not move the clock"
        with pytest.raises(ValueError):
            sandbox.set_now(NOW)

    def test_wall_clock_plus_offset(self) -> None:
        """Without now_ms the clock follows the wall clock, shifted by advance()."""
        sandbox = Sandbox(contacts=0)
        assert abs(sandbox.now_ms() - time.time() * 1000) < 1000, "clock does not follow the wall clock"
        sandbox.advance(DAY)
        assert abs(sandbox.now_ms() - time.time() * 1000 - DAY) < 1000, "advance did not shift the wall clock"

    def test_date_header_follows_sandbox_clock(self, api: Api, sandbox: Sandbox) -> None:
        """Every response's Date header is the sandbox's now, not the wall clock's."""
        response = api.get(PROPERTIES)
        assert parsedate_to_datetime(response.headers["Date"]).timestamp() == NOW // 1000, response.headers["Date"]
        sandbox.advance(3 * DAY)
        response = api.search({})
        assert parsedate_to_datetime(response.headers["Date"]).timestamp() == (NOW + 3 * DAY) // 1000


class TestAuth:
    @pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic c2FuZGJveC10b2tlbg=="])
    def test_bad_credentials_401(self, server: SandboxServer, header: str | None) -> None:
        """A missing, wrong or non-bearer Authorization header gets 401 INVALID_AUTHENTICATION."""
        headers = {"Authorization": header} if header else {}
        for response in (
            requests.get(server.url + LIST, headers=headers, timeout=5),
            requests.post(server.url + SEARCH, json={}, headers=headers, timeout=5),
        ):
            body = response.json()
            assert response.status_code == 401, f"{header!r}: status {response.status_code}"
            assert body["category"] == "INVALID_AUTHENTICATION" and body["status"] == "error", body
            assert body["message"].startswith("Authentication credentials not found"), body
            assert len(body["correlationId"]) == 36, f"correlationId should be a uuid: {body}"

    def test_hapikey_never_accepted(self, server: SandboxServer, sandbox: Sandbox) -> None:
        """A hapikey query parameter is refused with 401, even next to a valid bearer token."""
        response = requests.get(server.url + LIST, params={"hapikey": sandbox.token},
                                headers={"Authorization": f"Bearer {sandbox.token}"}, timeout=5)
        assert response.status_code == 401, f"hapikey got {response.status_code}"
        assert "API keys" in response.json()["message"], response.json()

    def test_error_body_matches_client_model(self, server: SandboxServer) -> None:
        """The error body deserializes into the official client's Error model."""
        response = requests.get(server.url + LIST, timeout=5)
        error = deserialize(response.text, "Error")
        assert error.category == "INVALID_AUTHENTICATION" and error.correlation_id, error

    def test_unknown_path_404(self, api: Api) -> None:
        """Unknown API paths get a HubSpot-shaped 404."""
        response = api.get("/crm/v3/widgets")
        assert response.status_code == 404 and response.json()["category"] == "OBJECT_NOT_FOUND", response.text


class TestProperties:
    def test_catalogue(self, api: Api) -> None:
        """The catalogue lists default and custom properties, typed like HubSpot's."""
        response = api.get(PROPERTIES)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json;charset=utf-8"
        catalogue = {entry["name"]: entry for entry in response.json()["results"]}
        assert {"email", "lifecyclestage", "hs_merged_object_ids", "custom_field_01",
                "custom_field_20"} <= set(catalogue)
        assert "custom_field_21" not in catalogue, "20 custom properties expected by default"
        types = {name: catalogue[name]["type"] for name in ("createdate", "lastmodifieddate", "hs_object_id", "email")}
        assert types == {"createdate": "datetime", "lastmodifieddate": "datetime",
                         "hs_object_id": "number", "email": "string"}, types
        assert catalogue["lifecyclestage"]["options"], "an enumeration should list its options"

    def test_catalogue_matches_client_model(self, api: Api) -> None:
        """The catalogue deserializes into hubspot.crm.properties' CollectionResponsePropertyNoPaging."""
        collection = deserialize(api.get(PROPERTIES).text, "CollectionResponsePropertyNoPaging", "properties")
        names = [prop.name for prop in collection.results]
        assert "custom_field_05" in names and collection.results[0].group_name, names[:5]


class TestListApi:
    def test_walks_every_live_contact_once(self, api: Api, sandbox: Sandbox) -> None:
        """Following paging.next.after visits every live contact exactly once, in numeric id order."""
        ids = [result["id"] for result in api.list_all()]
        assert len(ids) == len(set(ids)), "a contact was listed twice"
        assert set(ids) == set(sandbox.live()), "listed contacts differ from the live ones"
        assert ids == sorted(ids, key=int), "list results are not in id order"

    def test_after_is_opaque(self, api: Api) -> None:
        """paging.next.after is an opaque token (not the last id), and a link repeats the query."""
        page = api.get(LIST, limit=5).json()
        after = page["paging"]["next"]["after"]
        assert after != page["results"][-1]["id"], "after should not be a plain id"
        assert f"after={after}" in page["paging"]["next"]["link"], page["paging"]
        assert api.get(LIST, limit=5, after=page["results"][-1]["id"]).status_code == 400, "a raw id is no cursor"
        assert api.get(LIST, after="%%%").status_code == 400, "a malformed cursor should be 400"

    @pytest.mark.parametrize("limit", ["0", "101", "ten", "-5"])
    def test_limit_bounds(self, api: Api, limit: str) -> None:
        """limit must be an integer from 1 to 100."""
        response = api.get(LIST, limit=limit)
        assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR", response.text

    def test_default_limit_and_properties(self, api: Api) -> None:
        """Without limit a page holds 10; without properties only the default six come back."""
        results = api.get(LIST).json()["results"]
        assert len(results) == 10, f"default page size is {len(results)}"
        assert set(results[0]["properties"]) == {
            "firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"}, results[0]

    def test_requested_properties(self, api: Api) -> None:
        """properties may be comma-separated and repeated; unknown names are ignored."""
        response = api.session.get(api.url + LIST, timeout=5,
                                   params=[("properties", "phone,website"), ("properties", "custom_field_02,nope")])
        properties = response.json()["results"][0]["properties"]
        assert set(properties) == {"phone", "website", "custom_field_02",
                                   "createdate", "lastmodifieddate", "hs_object_id"}, properties

    def test_archived_lists_only_archived(self, api: Api, sandbox: Sandbox) -> None:
        """archived=true lists only archived contacts, each with archived true and archivedAt."""
        results = api.list_all(archived="true")
        assert {r["id"] for r in results} == set(sandbox.archived()), "archived listing differs from truth"
        assert all(r["archived"] is True and r["archivedAt"] for r in results), results[:2]
        assert api.get(LIST, archived="maybe").status_code == 400, "archived must be a boolean"

    def test_uri_too_long_414(self, api: Api) -> None:
        """A request line longer than 16,000 characters gets 414 with a HubSpot-ish JSON body."""
        response = api.get(LIST, properties=",".join(f"custom_field_{n:02d}" for n in range(1, 1200)))
        assert response.status_code == 414, f"long URL got {response.status_code}"
        assert response.json()["status"] == "error", response.text

    def test_list_page_matches_client_model(self, api: Api) -> None:
        """A list page deserializes into the client's
        CollectionResponseSimplePublicObjectWithAssociationsForwardPaging."""
        response = api.get(LIST, limit=3)
        page = deserialize(response.text, "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")
        raw = response.json()
        assert [result.id for result in page.results] == [r["id"] for r in raw["results"]], page
        assert page.paging.next.after == raw["paging"]["next"]["after"], page.paging
        assert page.results[0].updated_at.tzinfo is not None, "updatedAt should parse as an aware datetime"


OPERATOR_CASES: list[tuple[dict, Callable[[dict], bool]]] = [
    (by("firstname", "EQ", "ADA"), lambda p: p["firstname"] == "Ada"),
    (by("firstname", "NEQ", "ada"), lambda p: p["firstname"] != "Ada"),
    (by("firstname", "IN", values=["mei", "Sven"]), lambda p: p["firstname"] in ("Mei", "Sven")),
    (by("firstname", "NOT_IN", values=["mei", "sven"]), lambda p: p["firstname"] not in ("Mei", "Sven")),
    (by("jobtitle", "HAS_PROPERTY"), lambda p: p["jobtitle"] is not None),
    (by("phone", "NOT_HAS_PROPERTY"), lambda p: p["phone"] is None),
    (by("email", "CONTAINS_TOKEN", "*@example.org"), lambda p: p["email"].endswith("@example.org")),
    (by("city", "NOT_CONTAINS_TOKEN", "paulo"), lambda p: p["city"] != "São Paulo"),
    (by("lastname", "LT", "d"), lambda p: p["lastname"].lower() < "d"),
    (by("custom_field_02", "GT", "50000"),
     lambda p: p["custom_field_02"] is not None and int(p["custom_field_02"]) > 50000),
    (by("custom_field_02", "LTE", 2000),
     lambda p: p["custom_field_02"] is not None and int(p["custom_field_02"]) <= 2000),
    (by("hs_object_id", "GTE", "500"), lambda p: int(p["hs_object_id"]) >= 500),
    (by("hs_object_id", "BETWEEN", "200", highValue=300), lambda p: 200 <= int(p["hs_object_id"]) <= 300),
    (by("lastmodifieddate", "LT", str(NOW - 45 * DAY)), lambda p: p["lastmodifieddate"] < "2023-09-30T22:13:20"),
    (by("lastmodifieddate", "GTE", NOW - 45 * DAY), lambda p: p["lastmodifieddate"] >= "2023-09-30T22:13:20"),
    (by("createdate", "BETWEEN", NOW - 400 * DAY, highValue=str(NOW - 300 * DAY)),
     lambda p: "2022-10-10T22:13:20" <= p["createdate"] <= "2023-01-18T22:13:20Z"),
]


class TestSearchFilters:
    @pytest.mark.parametrize(("search_filter", "expected"), OPERATOR_CASES,
                             ids=[f"{f['propertyName']}-{f['operator']}" for f, _ in OPERATOR_CASES])
    def test_operator(self, api: Api, truth: dict[str, dict], search_filter: dict,
                      expected: Callable[[dict], bool]) -> None:
        """Each operator selects exactly the live contacts whose current value satisfies it."""
        found = api.search_all({"filterGroups": [{"filters": [search_filter]}]})
        wanted = {cid for cid, properties in truth.items() if expected(properties)}
        assert wanted and wanted != set(truth), f"case {search_filter} should select some but not all contacts"
        assert sorted(found, key=int) == sorted(wanted, key=int), (
            f"{search_filter}: {len(found)} found, {len(wanted)} expected")

    @pytest.mark.parametrize("value", ["2023-09-30T22:13:20Z", "2023-09-30", "yesterday", 1.5])
    def test_datetime_needs_epoch_ms(self, api: Api, value: Any) -> None:
        """A datetime filter with anything but epoch milliseconds is a 400, as ISO dates are in HubSpot."""
        response = api.search({"filterGroups": [{"filters": [by("lastmodifieddate", "GTE", value)]}]})
        assert response.status_code == 400, f"{value!r} got {response.status_code}"
        assert "epoch milliseconds" in response.json()["message"], response.json()

    @pytest.mark.parametrize("bad_filter", [
        by("firstname", "LIKE", "a"), by("no_such_property", "EQ", "a"), by("firstname", "EQ"),
        by("firstname", "IN", "ada"), by("hs_object_id", "BETWEEN", 1), by("custom_field_02", "GT", "many"),
    ])
    def test_invalid_filter_400(self, api: Api, bad_filter: dict) -> None:
        """Unknown operators or properties and missing or malformed values are a 400."""
        response = api.search({"filterGroups": [{"filters": [bad_filter]}]})
        assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR", (
            f"{bad_filter}: {response.text}")

    def test_groups_or_filters_and(self, api: Api, truth: dict[str, dict]) -> None:
        """Filter groups are ORed and the filters inside a group ANDed."""
        either = api.search_all({"filterGroups": [{"filters": [by("firstname", "EQ", "Ada")]},
                                                  {"filters": [by("firstname", "EQ", "Mei")]}]})
        both = api.search_all({"filterGroups": [{"filters": [by("firstname", "EQ", "Ada"),
                                                             by("lifecyclestage", "EQ", "lead")]}]})
        assert set(either) == {c for c, p in truth.items() if p["firstname"] in ("Ada", "Mei")}, "groups not ORed"
        assert set(both) == {c for c, p in truth.items() if p["firstname"] == "Ada" and p["lifecyclestage"] == "lead"}
        assert both and set(both) < set(either), "AND should narrow the OR"

    @pytest.mark.parametrize(("groups", "per_group", "status"), [
        (5, 3, 200), (6, 1, 400), (1, 6, 200), (1, 7, 400), (3, 6, 200), (4, 5, 400),
    ])
    def test_filter_limits(self, api: Api, groups: int, per_group: int, status: int) -> None:
        """At most 5 groups, 6 filters per group and 18 filters in total."""
        body = {"filterGroups": [{"filters": [by("hs_object_id", "GT", n) for n in range(per_group)]}] * groups}
        response = api.search(body)
        assert response.status_code == status, f"{groups} groups x {per_group} filters: {response.status_code}"

    def test_text_query(self, api: Api, truth: dict[str, dict]) -> None:
        """query matches a token prefix of the default searchable properties."""
        found = api.search_all({"query": "ingr"})
        assert set(found) == {c for c, p in truth.items() if p["firstname"] == "Ingrid"}, "query did not match names"


class TestSearchOrderAndPaging:
    def test_one_sort_only(self, api: Api) -> None:
        """More than one sort rule is a 400; so is an unknown direction."""
        two = api.search({"sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"},
                                    {"propertyName": "hs_object_id", "direction": "ASCENDING"}]})
        assert two.status_code == 400, f"two sorts got {two.status_code}"
        assert api.search({"sorts": [{"propertyName": "email", "direction": "UP"}]}).status_code == 400

    def test_sort_forms_and_default(self, api: Api, sandbox: Sandbox) -> None:
        """Default order is id ascending; "-prop" and DESCENDING sort descending."""
        assert api.search_all({}) == sorted(sandbox.live(), key=int), "default search order is not by id"
        modified = sandbox.live()
        descending = api.search_all({"sorts": ["-lastmodifieddate"]})
        assert [modified[cid] for cid in descending] == sorted(modified.values(), reverse=True), (
            "'-prop' is not descending")
        explicit = api.search_all({"sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}]})
        assert explicit == descending, "the two descending forms disagree"

    def test_ties_shuffled_but_stable(self, api: Api, sandbox: Sandbox) -> None:
        """By default, contacts with one sort value come back shuffled, not in id order, and
        identically every time (see TestWorstHabits for the order that changes)."""
        ids = sandbox.create(60)
        body = {"filterGroups": [{"filters": [by("lastmodifieddate", "EQ", NOW)]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]}
        first = api.search_all(body)
        assert sorted(first, key=int) == ids, "the tie should hold exactly the created contacts"
        assert first != ids, "ties came back in id order"
        paged = []
        for offset in range(0, 60, 7):
            paged += [r["id"] for r in api.search({**body, "limit": 7, "after": offset}).json()["results"]]
        assert paged == first, "small pages over the unchanged tie disagree with one big page"

    def test_offset_paging(self, api: Api, sandbox: Sandbox) -> None:
        """after is an integer offset (string or number); paging.next.after is offset + limit; the last
        page has no paging."""
        page = api.search({"limit": 100, "after": "100"}).json()
        assert page["paging"]["next"]["after"] == "200" and page["total"] == len(sandbox.live()), page.get("paging")
        last = api.search({"limit": 100, "after": 200}).json()
        assert "paging" not in last and len(last["results"]) == len(sandbox.live()) - 200, "last page wrong"

    @pytest.mark.parametrize("limit", [0, 201, "x"])
    def test_limit_bounds(self, api: Api, limit: Any) -> None:
        """Search limit must be 1..200."""
        assert api.search({"limit": limit}).status_code == 400, f"limit {limit!r} accepted"

    def test_results_carry_requested_and_always_properties(self, api: Api) -> None:
        """Results hold the requested properties plus hs_object_id, createdate and lastmodifieddate."""
        result = api.search({"properties": ["email", "nope"], "limit": 1}).json()["results"][0]
        assert set(result["properties"]) == {"email", "hs_object_id", "createdate", "lastmodifieddate"}, result
        assert result["archived"] is False and result["updatedAt"] and result["createdAt"], result

    def test_search_page_matches_client_model(self, api: Api) -> None:
        """A search page deserializes into the client's CollectionResponseWithTotalSimplePublicObjectForwardPaging."""
        response = api.search({"limit": 5, "after": 10})
        page = deserialize(response.text, "CollectionResponseWithTotalSimplePublicObjectForwardPaging")
        assert page.total == response.json()["total"] and page.paging.next.after == "15", page.paging
        assert [r.id for r in page.results] == [r["id"] for r in response.json()["results"]]

    def test_ten_thousand_cap(self, big: tuple[Sandbox, Api]) -> None:
        """No query pages past 10,000 results: offset + limit > 10,000 is a 400, though total counts them all."""
        sandbox, api = big
        edge = api.search({"limit": 200, "after": 9800})
        assert edge.status_code == 200, f"offset 9800 + 200 should be allowed: {edge.text}"
        assert edge.json()["total"] == len(sandbox.live()) > 10_000, edge.json()["total"]
        assert edge.json()["paging"]["next"]["after"] == "10000", "HubSpot still offers the next page"
        for after, limit in ((9801, 200), (10_000, 1), (9999, 2)):
            response = api.search({"limit": limit, "after": after})
            assert response.status_code == 400, f"after {after} limit {limit} got {response.status_code}"
            assert "10000" in response.json()["message"], response.json()

    def test_cluster_splits_across_pages(self, big: tuple[Sandbox, Api]) -> None:
        """The largest same-millisecond cluster spans a 200-result page boundary when sorted by time."""
        sandbox, api = big
        stamp, size = Counter(sandbox.live().values()).most_common(1)[0]
        body = {"filterGroups": [{"filters": [by("lastmodifieddate", "EQ", stamp)]}], "sorts": ["lastmodifieddate"]}
        first = api.search({**body, "limit": 200}).json()
        assert first["total"] == size >= 250 and first["paging"]["next"]["after"] == "200", first["total"]
        ids = api.search_all(body)
        assert len(set(ids)) == size, "paging through the cluster lost or repeated contacts"


class TestSearchLag:
    @pytest.fixture(name="lagged")
    def _lagged(self, sandbox: Sandbox) -> Sandbox:
        sandbox.search_lag_ms = 1000
        return sandbox

    def find(self, api: Api, cid: str) -> list[dict]:
        body = {"filterGroups": [{"filters": [by("hs_object_id", "EQ", cid)]}], "properties": ["city"]}
        return api.search(body).json()["results"]

    def test_new_contact_visible_after_lag(self, api: Api, lagged: Sandbox) -> None:
        """A new contact is listed at once but found by search only once the lag has passed."""
        (cid,) = lagged.create(1)
        assert cid in {r["id"] for r in api.list_all()}, "the list API should see the write at once"
        assert self.find(api, cid) == [], "search saw the write before the lag"
        lagged.advance(999)
        assert self.find(api, cid) == [], "search saw the write 1 ms before the lag passed"
        lagged.advance(1)
        assert [r["id"] for r in self.find(api, cid)] == [cid], "search missed the write after the lag"

    def test_modified_contact_shows_old_version(self, api: Api, lagged: Sandbox) -> None:
        """Until the lag passes, search still returns the previous version of a modified contact."""
        cid = next(iter(lagged.live()))
        old = self.find(api, cid)[0]
        lagged.modify([cid], {"city": "Hammerfest"})
        assert self.find(api, cid) == [old], "search showed the new version early"
        lagged.advance(1000)
        (new,) = self.find(api, cid)
        assert new["properties"]["city"] == "Hammerfest" and new["updatedAt"] == "2023-11-14T22:13:20Z", new

    def test_archived_leaves_search_after_lag(self, api: Api, lagged: Sandbox) -> None:
        """An archived contact is listed as archived at once but leaves search only after the lag."""
        cid = next(iter(lagged.live()))
        lagged.archive([cid])
        assert cid in {r["id"] for r in api.list_all(archived="true")}, "archived list missed the archive"
        assert len(self.find(api, cid)) == 1, "search dropped the contact before the lag"
        lagged.advance(1000)
        assert self.find(api, cid) == [], "search still shows an archived contact after the lag"


class TestWorstHabits:
    """The switches for HubSpot's worst habits: each off by default, each doing what it says."""

    TIE = {"filterGroups": [{"filters": [by("lastmodifieddate", "EQ", NOW)]}],
           "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 200}

    def ids_found(self, api: Api, ids: list[str]) -> set[str]:
        body = {"filterGroups": [{"filters": [by("hs_object_id", "IN", values=ids)]}], "limit": 200}
        return {r["id"] for r in api.search(body).json()["results"]}

    def test_all_off_by_default(self, sandbox: Sandbox) -> None:
        """A new sandbox (the quick start's) has every habit switched off."""
        assert (sandbox.reorder_ties_per_request, sandbox.archived_list_lag_ms, sandbox.search_lag_jitter_ms,
                sandbox.search_drop_lag_ms, sandbox.date_skew_ms) == (False, 0, 0, 0, 0)

    def test_tie_order_changes_on_every_request(self, api: Api, sandbox: Sandbox) -> None:
        """reorder_ties_per_request: the same tie comes back in a new order on each request,
        always the same contacts, and values that differ keep their order."""
        ids = sandbox.create(60)
        sandbox.advance(1)
        later = sandbox.create(3)
        sandbox.reorder_ties_per_request = True
        body = {**self.TIE, "filterGroups": [{"filters": [by("lastmodifieddate", "GTE", NOW)]}]}
        orders = [[r["id"] for r in api.search(body).json()["results"]] for _ in range(4)]
        assert all(sorted(order[:60], key=int) == ids for order in orders), "the tie's members changed"
        assert all(sorted(order[60:], key=int) == later for order in orders), "the later ms moved into the tie"
        assert len({tuple(order[:60]) for order in orders}) == 4, "a tie came back twice in one order"

    def test_archived_listing_lags(self, api: Api, sandbox: Sandbox) -> None:
        """archived_list_lag_ms: a contact archived now shows in the archived listing only
        once the lag has passed; contacts archived earlier still show."""
        sandbox.archived_list_lag_ms = 1000
        earlier = {r["id"] for r in api.list_all(archived="true")}
        assert earlier == set(sandbox.archived()), "the lag hid contacts archived long ago"
        cid = next(iter(sandbox.live()))
        sandbox.archive([cid])
        sandbox.advance(999)
        assert cid not in {r["id"] for r in api.list_all(archived="true")}, "listed before the lag"
        sandbox.advance(1)
        assert cid in {r["id"] for r in api.list_all(archived="true")}, "not listed after the lag"

    def test_search_lag_varies_per_record_and_out_of_order(self, api: Api, sandbox: Sandbox) -> None:
        """search_lag_jitter_ms: each write shows after search_lag_ms plus its own extra lag
        within the jitter, so a later write can show before an earlier one; search shows a
        contact exactly from search_visible_at() on."""
        sandbox.search_lag_ms, sandbox.search_lag_jitter_ms = 500, 4000
        written: dict[str, int] = {}
        for _ in range(40):
            (cid,) = sandbox.create(1)
            written[cid] = sandbox.now_ms()
            sandbox.advance(10)
        due = {cid: sandbox.search_visible_at(cid) for cid in written}
        lags = sorted(due[cid] - written[cid] for cid in written)
        assert 500 <= lags[0] and lags[-1] <= 4500 and len(set(lags)) > 20, f"lags {lags}"
        in_order = sorted(written, key=written.get)
        assert sorted(in_order, key=due.get) != in_order, "every write showed in the order it was made"
        for moment in sorted(set(due.values()))[::5] + [max(due.values())]:
            sandbox.set_now(moment)
            seen = self.ids_found(api, list(written))
            assert seen == {cid for cid in written if due[cid] <= moment}, f"at {moment}"
        assert all(sandbox.search_visible_at(cid) is None for cid in written)

    def test_search_keeps_archived_contacts_longer(self, api: Api, sandbox: Sandbox) -> None:
        """search_drop_lag_ms: an archived contact is in the archived listing at once but
        stays in search for search_lag_ms + search_drop_lag_ms; other writes are not slowed."""
        sandbox.search_lag_ms, sandbox.search_drop_lag_ms = 100, 2000
        gone, kept = sorted(sandbox.live(), key=int)[:2]
        sandbox.archive([gone])
        sandbox.modify([kept], {"city": "Tromsø"})
        assert gone in {r["id"] for r in api.list_all(archived="true")}
        sandbox.advance(100)
        assert self.ids_found(api, [gone, kept]) == {gone, kept}, "the archive left search too early"
        assert sandbox.contact(kept)["properties"]["city"] == "Tromsø"
        sandbox.advance(1999)
        assert self.ids_found(api, [gone]) == {gone}, "the archive left search 1 ms early"
        sandbox.advance(1)
        assert self.ids_found(api, [gone]) == set(), "the archived contact stayed in search"

    @pytest.mark.parametrize("skew", [-7000, 7000])
    def test_date_header_skew(self, api: Api, sandbox: Sandbox, skew: int) -> None:
        """date_skew_ms: the Date header runs that far from the clock that stamps records."""
        sandbox.date_skew_ms = skew
        (cid,) = sandbox.create(1)
        response = api.get(PROPERTIES)
        date_ms = parsedate_to_datetime(response.headers["Date"]).timestamp() * 1000
        assert date_ms == (NOW + skew) // 1000 * 1000, response.headers["Date"]
        assert sandbox.contact(cid)["properties"]["lastmodifieddate"] == "2023-11-14T22:13:20Z"

    def test_modified_and_archived_on_one_millisecond(self, api: Api, sandbox: Sandbox) -> None:
        """modify_and_archive: the archived listing's archivedAt equals the last modification,
        and with search_drop_lag_ms search shows that modified version meanwhile."""
        sandbox.search_drop_lag_ms = 5000
        cid = next(iter(sandbox.live()))
        sandbox.advance(1234)
        sandbox.modify_and_archive([cid], {"city": "Vardø"})
        (listed,) = [r for r in api.list_all(archived="true", properties="lastmodifieddate") if r["id"] == cid]
        assert listed["archivedAt"] == listed["properties"]["lastmodifieddate"] == "2023-11-14T22:13:21.234Z"
        (found,) = api.search({"filterGroups": [{"filters": [by("hs_object_id", "EQ", cid)]}],
                               "properties": ["city"]}).json()["results"]
        assert found["properties"]["city"] == "Vardø", found
        assert found["properties"]["lastmodifieddate"] == listed["archivedAt"], found

    def test_switches_over_http(self, api: Api, sandbox: Sandbox) -> None:
        """Every switch can be set through /_sandbox/config (for processes of their own)."""
        switches = {"reorder_ties_per_request": True, "archived_list_lag_ms": 10, "search_lag_jitter_ms": 20,
                    "search_drop_lag_ms": 30, "date_skew_ms": -40}
        config = api.admin("POST", "config", switches).json()
        assert {name: config[name] for name in switches} == switches, config
        assert {name: getattr(sandbox, name) for name in switches} == switches


class TestHooks:
    def test_on_search_page_fires_between_pages(self, api: Api, sandbox: Sandbox) -> None:
        """The hook runs after a page is computed and before the next request, so a write in it
        shows up in later pages but not in the page just computed."""
        calls: list[int] = []
        body = {"sorts": ["lastmodifieddate"], "limit": 100}
        first = api.search(body).json()["results"][0]["id"]

        def callback(n: int) -> None:
            calls.append(n)
            if n == 1:
                sandbox.modify([first], {"city": "Moved"})

        sandbox.on_search_page(callback)
        pages = [api.search({**body, "after": after}).json()["results"] for after in (0, 100, 200)]
        assert calls == [1, 2, 3], f"hook calls {calls}"
        assert pages[0][0]["id"] == first and pages[0][0]["updatedAt"] != "2023-11-14T22:13:20Z", "page 1 saw the write"
        assert [r["id"] for r in pages[2]][-1] == first, "the modified contact should move to the end"
        sandbox.on_search_page(None)
        api.search(body)
        assert calls == [1, 2, 3], "a removed hook still fired"


class TestFaults:
    def test_status_then_recovers(self, api: Api, sandbox: Sandbox) -> None:
        """A status fault answers its status `times` times, then the real answer returns."""
        sandbox.inject(Fault("list", status=503, times=3, headers={"Retry-After": "1"}))
        statuses = [api.get(LIST).status_code for _ in range(4)]
        assert statuses == [503, 503, 503, 200], statuses
        assert [entry["status"] for entry in sandbox.request_log[-4:]] == statuses, "request_log statuses differ"

    def test_status_fault_body_and_headers(self, api: Api, sandbox: Sandbox) -> None:
        """A status fault carries its headers and a HubSpot-shaped body unless given one."""
        sandbox.inject(Fault("search", status=502, headers={"Retry-After": "2"}))
        sandbox.inject(Fault("search", status=423, body={"custom": True}))
        first, second = api.search({}), api.search({})
        assert first.status_code == 502 and first.headers["Retry-After"] == "2", first.headers
        assert first.json()["status"] == "error" and first.json()["correlationId"], first.text
        assert second.status_code == 423 and second.json() == {"custom": True}, second.text

    def test_skip_and_forever(self, api: Api, sandbox: Sandbox) -> None:
        """skip lets requests through first; times=None hits until clear_faults; "any" hits every endpoint."""
        sandbox.inject(Fault("any", status=500, skip=2, times=None))
        statuses = [api.get(PROPERTIES).status_code, api.search({}).status_code, api.get(LIST).status_code,
                    api.get(PROPERTIES).status_code]
        assert statuses == [200, 200, 500, 500], statuses
        sandbox.clear_faults()
        assert api.get(LIST).status_code == 200, "clear_faults left a fault"

    def test_hang(self, api: Api, sandbox: Sandbox) -> None:
        """A hang delays the real answer; a client with a shorter timeout gives up."""
        sandbox.inject(Fault("search", kind="hang", seconds=0.3, times=2))
        started = time.monotonic()
        assert api.search({}).status_code == 200, "a hang should end in the real answer"
        assert time.monotonic() - started >= 0.3, "the hang did not delay the answer"
        with pytest.raises(requests.Timeout):
            api.session.post(api.url + SEARCH, json={}, timeout=0.1)

    def test_close_mid_body(self, api: Api, sandbox: Sandbox) -> None:
        """A close fault cuts the body short; the client sees an error, and the next request works."""
        sandbox.inject(Fault("list", kind="close"))
        with pytest.raises(requests.exceptions.RequestException):
            api.get(LIST, limit=50)
        assert api.get(LIST).status_code == 200, "the server did not recover from a cut connection"

    @pytest.mark.parametrize(("kind", "policy", "message"), [
        ("rate_limit", "SECONDLY", "You have reached your secondly limit."),
        ("daily", "DAILY", "You have reached your daily limit."),
    ])
    def test_rate_limit_faults(self, api: Api, sandbox: Sandbox, kind: str, policy: str, message: str) -> None:
        """rate_limit and daily faults answer 429 with HubSpot's RATE_LIMIT body for their policy."""
        sandbox.inject(Fault("search", kind=kind))
        response = api.search({})
        body = response.json()
        assert response.status_code == 429, response.status_code
        assert (body["policyName"], body["errorType"], body["message"], body["category"]) == (
            policy, "RATE_LIMIT", message, "RATE_LIMITS"), body

    def test_invalid_fault(self) -> None:
        """A fault with an unknown endpoint or kind is refused at once."""
        with pytest.raises(ValueError):
            Fault("contacts")
        with pytest.raises(ValueError):
            Fault("list", kind="explode")
        with pytest.raises(ValueError):
            Fault("list", kind="huge", size=3)  # smaller than the emptiest page

    @pytest.mark.timeout(30)
    def test_trickle(self, api: Api, sandbox: Sandbox) -> None:
        """A trickle fault writes the real answer, status line and headers included, one byte
        at a time: each read gets a byte well within its timeout, the answer comes whole."""
        sandbox.inject(Fault("list", kind="trickle", seconds=0.001))
        response = api.session.get(api.url + LIST, params={"limit": 1}, timeout=(2, 0.5))
        assert response.status_code == 200 and len(response.json()["results"]) == 1, response.text
        assert sandbox.answer_bytes > len(response.content), "the headers were not counted"

    @pytest.mark.timeout(30)
    def test_endless(self, api: Api, sandbox: Sandbox) -> None:
        """An endless fault answers 200 with a chunked body that goes on as long as the client
        reads; the sandbox counts what it wrote, and serves the next request normally."""
        sandbox.reset_counters()
        sandbox.inject(Fault("list", kind="endless"))
        read = 0
        with api.session.get(api.url + LIST, stream=True, timeout=5) as response:
            assert response.status_code == 200, response.status_code
            assert response.headers["Transfer-Encoding"] == "chunked", response.headers
            for chunk in response.iter_content(65536):
                read += len(chunk)
                if read > 4_000_000:
                    break
        assert read > 4_000_000, f"the body ended after {read} bytes"
        assert sandbox.answer_bytes >= read, f"{sandbox.answer_bytes} bytes counted, {read} read"
        assert api.get(LIST).status_code == 200, "the server did not recover from an endless answer"

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    def test_huge(self, api: Api, sandbox: Sandbox, chunked: bool) -> None:
        """A huge fault answers an empty page of exactly `size` bytes, with its Content-Length
        or, if its headers say so, chunked."""
        headers = {"Transfer-Encoding": "chunked"} if chunked else None
        sandbox.inject(Fault("list", kind="huge", size=100_003, headers=headers))
        response = api.get(LIST)
        assert response.status_code == 200 and response.json() == {"results": []}, response.text[:100]
        assert len(response.content) == 100_003, len(response.content)
        assert ("Content-Length" in response.headers) != chunked, response.headers

    def test_raw(self, api: Api, sandbox: Sandbox) -> None:
        """A raw fault answers its status with exactly the text given, JSON or not."""
        deep = "[" * 100_000 + "]" * 100_000
        sandbox.inject(Fault("list", kind="raw", status=503, raw=deep))
        response = api.get(LIST)
        assert response.status_code == 503 and response.text == deep, response.text[:100]

    def test_cursor(self, api: Api, sandbox: Sandbox) -> None:
        """A cursor fault answers 200 with its body, each paging.next.after (however deep)
        numbered anew with each answer: paging that never ends."""
        body = {"results": [{"from": {"id": "1"}, "paging": {"next": {"after": "a"}}}],
                "paging": {"next": {"after": "b"}}}
        sandbox.inject(Fault("list", kind="cursor", body=body, times=2))
        first, second = api.get(LIST).json(), api.get(LIST).json()
        assert (first["paging"]["next"]["after"], first["results"][0]["paging"]["next"]["after"]) == (
            "b-0", "a-0"), first
        assert (second["paging"]["next"]["after"], second["results"][0]["paging"]["next"]["after"]) == (
            "b-1", "a-1"), second


class TestRateLimits:
    def test_search_secondly_limit(self, api: Api, sandbox: Sandbox) -> None:
        """Beyond search_rate_per_second searches in a rolling second get 429 SECONDLY, with no
        rate-limit headers or Retry-After; the window frees up after a second."""
        sandbox.search_rate_per_second = 2
        responses = [api.search({}) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 429], [r.status_code for r in responses]
        assert responses[2].json()["policyName"] == "SECONDLY", responses[2].text
        assert not any(h.lower().startswith(("x-hubspot-ratelimit", "retry-after"))
                       for r in responses for h in r.headers)
        assert api.get(LIST).status_code == 200, "the search limit should not apply to the list API"
        time.sleep(1.05)
        assert api.search({}).status_code == 200, "the rolling window did not free up"

    def test_general_ten_second_limit(self, api: Api, sandbox: Sandbox) -> None:
        """list and properties share general_rate_per_10s and carry X-HubSpot-RateLimit headers."""
        sandbox.general_rate_per_10s = 3
        responses = [api.get(LIST), api.get(PROPERTIES), api.get(LIST), api.get(LIST)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429], [r.status_code for r in responses]
        assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
        assert responses[0].headers["X-HubSpot-RateLimit-Max"] == "3"
        assert responses[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert api.search({}).status_code == 200, "the general limit should not apply to search"


class TestHttpTransport:
    def test_keep_alive(self, api: Api) -> None:
        """The server speaks HTTP/1.1 with keep-alive, so one pooled connection serves many requests."""
        responses = [api.get(LIST) for _ in range(3)]
        assert all(r.raw.version == 11 and r.headers.get("Connection") != "close" for r in responses)
        assert len(api.session.get_adapter(api.url).poolmanager.pools) == 1, "expected one connection pool"

    def test_request_log(self, api: Api, sandbox: Sandbox) -> None:
        """Every API request is logged with method, path, parsed query and body, and status; reset clears it."""
        api.get(LIST, limit=3)
        api.search({"limit": 2})
        assert sandbox.request_log[-2:] == [
            {"method": "GET", "path": LIST, "query": {"limit": ["3"]}, "body": None, "status": 200},
            {"method": "POST", "path": SEARCH, "query": {}, "body": {"limit": 2}, "status": 200},
        ], sandbox.request_log[-2:]
        sandbox.reset_counters()
        assert sandbox.request_log == [], "reset_counters left log entries"

    def test_stop_closes_pooled_connections(self, sandbox: Sandbox) -> None:
        """After stop() a pooled keep-alive connection gets no answer."""
        with requests.Session() as session:
            with SandboxServer(sandbox) as server:
                assert session.get(server.url + PROPERTIES, headers={"Authorization": "Bearer sandbox-token"}).ok
            with pytest.raises(requests.ConnectionError):
                session.get(server.url + PROPERTIES, timeout=2)

    def test_concurrent_requests(self, api: Api, sandbox: Sandbox) -> None:
        """Parallel clients and writers are served correctly (one lock guards the state)."""
        errors: list[str] = []

        def reader() -> None:
            with requests.Session() as session:
                for _ in range(10):
                    response = session.post(api.url + SEARCH, json={"limit": 50},
                                            headers={"Authorization": "Bearer sandbox-token"}, timeout=10)
                    if response.status_code != 200:
                        errors.append(response.text)

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(20):
            sandbox.create(2)
        for thread in threads:
            thread.join()
        assert errors == [], errors[:3]
        assert api.search({}).json()["total"] == 294 + 40, "creates during reads were lost"


class TestAdminSurface:
    def test_truth_create_modify_archive_restore(self, api: Api, sandbox: Sandbox) -> None:
        """The admin surface writes like the Python methods and reports the truth."""
        ids = api.admin("POST", "contacts", {"count": 2, "properties": {"city": "Bodø"}}).json()["ids"]
        assert sandbox.contact(ids[0])["properties"]["city"] == "Bodø", "created contact lost its property"
        assert api.admin("POST", "clock", {"advance_ms": 10}).json() == {"now_ms": NOW + 10}
        assert api.admin("POST", "modify", {"ids": ids[:1], "properties": {"city": "Vadsø"}}).status_code == 204
        assert api.admin("POST", "archive", {"ids": ids[1:]}).status_code == 204
        truth = api.admin("GET", "truth").json()
        assert truth["now_ms"] == NOW + 10 and truth["live"][ids[0]] == NOW + 10, truth["now_ms"]
        assert truth["archived"] == {**{k: v for k, v in sandbox.archived().items()}, ids[1]: NOW + 10}
        assert api.admin("POST", "restore", {"ids": ids[1:]}).status_code == 204
        assert ids[1] in sandbox.live(), "restore over HTTP did not restore"

    def test_admin_errors(self, api: Api) -> None:
        """Unknown ids are 404, bad input 400, unknown admin paths 404."""
        assert api.admin("POST", "modify", {"ids": ["1"], "properties": {}}).status_code == 404
        assert api.admin("POST", "modify", {"properties": {}}).status_code == 400
        assert api.admin("POST", "clock", {"now_ms": 0}).status_code == 400, "the clock must not go back"
        assert api.admin("POST", "config", {"colour": "red"}).status_code == 400
        assert api.admin("GET", "nothing").status_code == 404

    def test_config_faults_and_stats(self, api: Api, sandbox: Sandbox) -> None:
        """config sets the knobs; faults can be injected and cleared; stats count requests per endpoint."""
        config = api.admin("POST", "config", {"search_lag_ms": 250, "search_rate_per_second": None,
                                              "general_rate_per_10s": 100, "latency_ms": 1}).json()
        assert (sandbox.search_lag_ms, sandbox.general_rate_per_10s, sandbox.latency_ms) == (250, 100, 1.0), config
        assert api.admin("POST", "stats/reset").status_code == 204
        assert api.admin("POST", "faults", {"endpoint": "list", "status": 503, "times": None}).status_code == 204
        assert api.get(LIST).status_code == 503 and api.get(LIST).status_code == 503
        assert api.admin("DELETE", "faults").status_code == 204
        assert api.get(LIST).status_code == 200 and api.search({}).status_code == 200
        assert api.admin("GET", "stats").json() == {"requests": {"search": 1, "list": 3, "properties": 0, "read": 0,
                                                                   "schemas": 0, "associations": 0,
                                                                   "batch-read": 0, "owners": 0,
                                                                   "pipelines": 0, "property_groups": 0}}
        assert api.admin("POST", "faults", {"endpoint": "list", "kind": "nope"}).status_code == 400


def test_cli_serves_until_interrupted() -> None:
    """`python -m sandbox` prints its URL and token, serves, and exits cleanly on Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--contacts", "20", "--token", "cli-token"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        url = next(word for word in line.split() if word.startswith("http://127.0.0.1:"))
        assert "cli-token" in line, f"the token is not printed: {line!r}"
        response = requests.post(url + SEARCH, json={}, headers={"Authorization": "Bearer cli-token"}, timeout=5)
        assert response.json()["total"] == 20, response.text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0, "the CLI did not exit cleanly on Ctrl-C"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
