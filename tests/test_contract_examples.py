"""The examples of openapi.yaml cannot lie: every response and parameter has one, each
is valid under its own schema (OpenAPI 3.0 semantics, as Connexion validates), and the
service, with the sandbox behind it, answers in the same shape: the same schema accepts the
real answer, and the real answer has the example's keys and, for a problem, its title."""

from __future__ import annotations

import dataclasses
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import orjson
import pytest
import yaml
from connexion.json_schema import Draft4ResponseValidator, resolve_refs
from jsonschema import Draft4Validator
from starlette.testclient import TestClient

from sandbox import Fault, Sandbox

from .sesam import settle

ROOT = Path(__file__).resolve().parent.parent
SPEC = resolve_refs(yaml.safe_load((ROOT / "openapi.yaml").read_text()))
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@dataclasses.dataclass(frozen=True)
class Example:
    """One example of one response of one operation, as reviewers read it."""

    method: str
    path: str
    status: str
    media_type: str
    name: str
    value: Any
    schema: dict

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path} {self.status} {self.media_type} {self.name}"


def operations() -> Iterator[tuple[str, str, dict]]:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def examples() -> list[Example]:
    found = []
    for method, path, operation in operations():
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                named = {name: e["value"] for name, e in content.get("examples", {}).items()}
                if "example" in content:
                    named["example"] = content["example"]
                found += [Example(method, path, status, media_type, name, value, content["schema"])
                          for name, value in named.items()]
    return found


EXAMPLES = examples()


def assert_valid(value: Any, schema: dict, context: str) -> None:
    errors = sorted(Draft4ResponseValidator(
        schema, format_checker=Draft4Validator.FORMAT_CHECKER).iter_errors(value), key=str)
    assert not errors, f"{context}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


class TestExamplesInTheSpec:
    def test_every_response_and_parameter_has_an_example(self) -> None:
        """Reviewers read the examples first: no response body and no parameter lacks one."""
        missing = []
        for method, path, operation in operations():
            for status, response in operation["responses"].items():
                for media_type, content in response.get("content", {}).items():
                    if "example" not in content and not content.get("examples"):
                        missing.append(f"{method} {path} {status} {media_type}")
            for parameter in operation.get("parameters", []):
                if "example" not in parameter and not parameter.get("examples"):
                    missing.append(f"{method} {path} parameter {parameter['name']}")
        assert not missing, missing

    @pytest.mark.parametrize("example", EXAMPLES, ids=str)
    def test_response_example_is_valid(self, example: Example) -> None:
        """Each response example is valid under the schema of its response."""
        assert_valid(example.value, example.schema, str(example))

    @pytest.mark.parametrize("method, path, parameter", [
        (method, path, parameter) for method, path, operation in operations()
        for parameter in operation.get("parameters", [])])
    def test_parameter_example_is_valid(self, method: str, path: str, parameter: dict) -> None:
        """Each parameter example is a value the service accepts."""
        assert_valid(parameter["example"], parameter["schema"], f"{path} {parameter['name']}")

    def test_the_export_example_shows_every_kind_of_entity(self) -> None:
        """The export's example shows each kind of entity a pipe receives: a live contact,
        a deleted one and one merged away into another."""
        (example,) = [e for e in EXAMPLES if e.path == "/get_contacts" and e.status == "200"]
        kinds = {entity_kind(entity) for entity in example.value}
        assert kinds == {"live", "deleted", "merged away"}, example.value


# -- the real answers --------------------------------------------------------------------

Provoke = Callable[[Callable[..., TestClient], Sandbox], httpx.Response]


def export_with(fault: Fault, **changes: Any) -> Provoke:
    """A full export while ``fault`` is armed, by a service with ``changes`` to its settings."""
    def provoke(configure: Callable[..., TestClient], sandbox: Sandbox) -> httpx.Response:
        service = configure(**changes)
        sandbox.inject(fault)
        return service.get("/get_contacts")
    return provoke


def request(url: str, **changes: Any) -> Provoke:
    def provoke(configure: Callable[..., TestClient], sandbox: Sandbox) -> httpx.Response:
        return configure(**changes).get(url)
    return provoke


def unreachable(configure: Callable[..., TestClient], sandbox: Sandbox) -> httpx.Response:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return configure(base_url=f"http://127.0.0.1:{port}", max_retries=0).get("/get_contacts")


def export_after_changes(configure: Callable[..., TestClient], sandbox: Sandbox) -> httpx.Response:
    """An incremental export that carries a modified, a deleted and a merged-away contact."""
    service = configure()
    offset = orjson.loads(service.get("/get_contacts").content)[-1]["_updated"]
    live = sorted(sandbox.live(), key=int)
    sandbox.advance(10_000)
    sandbox.modify(live[:1], {"firstname": "Changed"})
    sandbox.advance(1)
    sandbox.archive(live[1:2])
    sandbox.advance(1)
    sandbox.merge(live[2], live[3])
    settle(sandbox)
    return service.get("/get_contacts", params={"since": offset})


def deals_after_changes(configure: Callable[..., TestClient], sandbox: Sandbox) -> httpx.Response:
    """An incremental deals export with associations that carries a modified and a deleted deal."""
    service = configure()
    offset = orjson.loads(service.get("/objects/deals").content)[-1]["_updated"]
    live = sorted(sandbox.live("deals"), key=int)
    sandbox.advance(10_000)
    sandbox.modify(live[:1], object_type="deals")
    sandbox.advance(1)
    sandbox.archive(live[1:2], object_type="deals")
    settle(sandbox)
    return service.get("/objects/deals", params={"since": offset, "associations": "contacts,companies"})


def ready_without_the_deals_scope(configure: Callable[..., TestClient], sandbox: Sandbox) -> httpx.Response:
    """Readiness of a service set up for deals, whose token may not read them."""
    sandbox.scopes.discard("crm.objects.deals.read")
    return configure(object_properties=(("deals", ("dealname",)),)).get("/ready")


def too_many_exports(configure: Callable[..., TestClient], sandbox: Sandbox) -> httpx.Response:
    """An export while the only export MAX_CONCURRENT_EXPORTS=1 allows waits on HubSpot."""
    service = configure(max_concurrent_exports=1)
    sandbox.inject(Fault("search", kind="hang", seconds=3.0))
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(service.get, "/get_contacts")
        for _ in range(100):  # a bounded wait for the first export to take the slot
            if 'hubspot_sesam_exports_in_progress{object_type="contacts"} 1.0' in service.get("/metrics").text:
                break
            time.sleep(0.05)
        refused = service.get("/get_contacts")
        running.result(timeout=30)
    return refused


def entity_kind(entity: dict) -> str:
    if "mergedInto" in entity:
        return "merged away"
    return "deleted" if entity.get("_deleted") else "live"


# How the service is made to give the answer each example shows.
SCENARIOS: dict[str, Provoke] = {
    "GET /get_contacts 200 application/json example": export_after_changes,
    "GET /objects/{objectType} 200 application/json example": deals_after_changes,
    "GET /objects/{objectType} 404 application/problem+json example": request("/objects/2-999"),
    "GET /get_contacts 404 application/problem+json example": request("/get_contacts?history=lead_score"),
    "GET /health 200 application/json example": request("/health"),
    "GET /ready 200 application/json example": request("/ready"),
    "notReady": ready_without_the_deals_scope,
    "GET /metrics 200 text/plain example": request("/metrics"),
    "credentials": request("/get_contacts", auth_username="sesam", auth_password="secret"),
    "invalidLimit": request("/get_contacts?limit=0"),
    "unknownParameter": request("/get_contacts?offset=10"),
    "tokenRefused": export_with(Fault("any", status=401, times=None)),
    "scopeMissing": export_with(Fault("any", status=403, times=None)),
    "rejected": export_with(Fault("any", status=400, times=None)),
    "failed": export_with(Fault("any", status=500, times=None)),
    "broken": export_with(Fault("any", kind="close", times=None)),
    "rateLimit": export_with(Fault("any", kind="rate_limit", times=None)),
    "dailyLimit": export_with(Fault("any", kind="daily", times=None)),
    "unavailable": export_with(Fault("any", status=503, times=None)),
    "timedOut": export_with(Fault("any", kind="hang", seconds=1.0, times=None),
                            read_timeout=0.2, max_retries=0),
    "unreachable": unreachable,
    "tooManyExports": too_many_exports,
    "uriTooLong": request("/objects/deals?associations=" + "contacts," * 2000 + "deals"),
    # Reference data: the sandbox has deactivated owners from the start.
    "GET /owners 200 application/json example": request("/owners"),
    "GET /pipelines/{objectType} 200 application/json example": request("/pipelines/deals"),
    "GET /pipelines/{objectType}/stages 200 application/json example": request("/pipelines/deals/stages"),
    "GET /properties/{objectType} 200 application/json example": request("/properties/deals"),
    "GET /properties/{objectType} 404 application/problem+json example": request("/properties/2-999"),
    "noPipelines": request("/pipelines/contacts"),
    "unknownPipelineType": request("/pipelines/2-999"),
}


def scenario_of(example: Example) -> Provoke:
    """Problem examples are shared by operations: their names say which failure they show."""
    provoke = SCENARIOS.get(example.name) or SCENARIOS.get(str(example))
    assert provoke, f"{example}: no scenario in SCENARIOS provokes the answer it shows"
    return provoke


def same_shape(real: dict, example: dict, context: str) -> None:
    assert set(real) == set(example), (
        f"{context}: the service answers with keys {sorted(real)}, the example shows {sorted(example)}")


# One example per scenario: the 400s and 401s that several operations share are provoked once.
SHOWN = list({scenario_of(e): e for e in EXAMPLES}.values())


@pytest.mark.parametrize("example", SHOWN, ids=str)
def test_the_service_answers_as_the_example_shows(
        example: Example, configure: Callable[..., TestClient], sandbox: Sandbox) -> None:
    """The real answer of the situation an example shows has the example's status and
    media type, is valid under the same schema, and has the example's shape: the same
    keys (for the export, those of a live and of a deleted entity), the same problem title."""
    response = scenario_of(example)(configure, sandbox)
    context = f"{example}: real answer {response.status_code} {response.text[:300]}"
    assert str(response.status_code) == example.status, context
    assert response.headers["content-type"].split(";")[0] == example.media_type, (
        f"{context}: {response.headers['content-type']}")
    if example.media_type == "text/plain":
        assert_valid(response.text, example.schema, context)
        first_metric = example.value.splitlines()[-1].split("{")[0]
        assert first_metric in response.text, f"{context}: {first_metric} is not served"
        return
    real = response.json()
    assert_valid(real, example.schema, context)
    if example.status == "200" and isinstance(example.value, list):
        for kind in sorted({entity_kind(e) for e in example.value}):
            shown = next(e for e in example.value if entity_kind(e) == kind)
            got = next((e for e in real if entity_kind(e) == kind), None)
            assert got is not None, f"{context}: no {kind} entity"
            same_shape(got, shown, f"{context} ({kind})")
        return
    same_shape(real, example.value, context)
    if example.status.startswith(("4", "5")):
        assert real["title"] == example.value["title"], context
