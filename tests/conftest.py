"""Shared fixtures: a sandbox portal on a frozen clock and the service in front of it."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from connexion.spec import Specification
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from starlette.testclient import TestClient

from app.config import Settings
from app.web import create_app
from sandbox import Sandbox, SandboxServer

from .sesam import SETTLE_SECONDS, T0


def _read_the_spec_once() -> None:
    """Most tests build the service (`create_app`, as `python -m app` does), and Connexion
    then parses openapi.yaml (pure-Python YAML) and validates it against the OpenAPI schema
    every time: 0.35 s of a build's 0.37 on an idle core, minutes over the suite. Both are pure
    functions of the file's bytes, so the suite does each once per content: a build still
    gets its own copy of the parsed spec (Connexion changes it), and a changed file (or a
    spec a test writes) is parsed and validated afresh."""
    parse = Specification._load_spec_from_file
    validate = Specification._validate_spec.__func__  # type: ignore[attr-defined]
    parsed: dict[tuple[str, bytes, str], Any] = {}
    valid: set[tuple[type, str]] = set()

    def parse_once(arguments: dict[str, Any] | None, specification: Path) -> Any:
        key = (str(specification), specification.read_bytes(), repr(arguments))
        if key not in parsed:
            parsed[key] = parse(arguments, specification)
        return copy.deepcopy(parsed[key])

    def validate_once(cls: type, spec: Any) -> None:
        key = (cls, repr(spec))
        if key not in valid:
            validate(cls, spec)  # raises on an invalid spec, which is then not remembered
            valid.add(key)

    Specification._load_spec_from_file = staticmethod(parse_once)  # type: ignore[method-assign]
    Specification._validate_spec = classmethod(validate_once)  # type: ignore[method-assign,assignment]


_read_the_spec_once()

# How long the fixtures' services wait for a renewal of the archived snapshot under way. The
# service's default is 0 (an incremental export never waits for a listing once a snapshot
# exists: the deletion arrives one run later). Most suites here write in the sandbox, settle
# it and expect the very next run to carry the deletion, so they wait for the renewal (it
# takes milliseconds on the in-process sandbox; the bound only stops a hung listing).
# tests/test_deletions_at_scale.py pins the default through `configure`.
RENEWAL_WAIT_SECONDS = 30.0


@pytest.fixture(name="sandbox")
def _sandbox() -> Sandbox:
    return Sandbox(contacts=600, seed=7, now_ms=T0)


@pytest.fixture(name="sandbox_server")
def _sandbox_server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox) as server:
        yield server


@pytest.fixture(name="settings")
def _settings(sandbox: Sandbox, sandbox_server: SandboxServer) -> Settings:
    return Settings(
        token=sandbox.token, base_url=sandbox_server.url, settle_seconds=SETTLE_SECONDS,
        search_rate_per_second=100, general_rate_per_10s=1000, retry_initial_wait=0.01,
        max_retries=3, read_timeout=5, connect_timeout=2,
        archived_wait_seconds=RENEWAL_WAIT_SECONDS,
    )


def make_service(settings: Settings, clock: Callable[[], float] | None = None) -> TestClient:
    """The service as an HTTP client, built exactly as `python -m app` builds it; ``clock``
    (seconds) times its archived snapshot, e.g. the sandbox's clock."""
    app = create_app(settings) if clock is None else create_app(settings, clock=clock)
    return TestClient(app, raise_server_exceptions=False)


def sandbox_clock(sandbox: Sandbox) -> Callable[[], float]:
    """The sandbox's clock in seconds: the service's snapshot interval then passes with the
    sandbox's time, which the tests move by hand."""
    return lambda: sandbox.now_ms() / 1000


@pytest.fixture(name="service")
def _service(settings: Settings, sandbox: Sandbox) -> Iterator[TestClient]:
    with make_service(settings, sandbox_clock(sandbox)) as service:
        yield service


@pytest.fixture(name="configure")
def _configure(settings: Settings, sandbox: Sandbox):
    """A service with some settings changed, e.g. ``configure(search_page_size=7)``; its
    snapshot runs on ``clock`` (default: the sandbox fixture's clock)."""
    opened: list[TestClient] = []

    def build(clock: Callable[[], float] | None = None, **changes: Any) -> TestClient:
        service = make_service(dataclasses.replace(settings, **changes),
                               clock or sandbox_clock(sandbox)).__enter__()
        opened.append(service)
        return service

    yield build
    for service in opened:
        service.__exit__(None, None, None)


# For `mutmut run` (pyproject.toml), which runs the same tests more than once in one process.
hypothesis_settings.register_profile(
    "mutation", suppress_health_check=[HealthCheck.differing_executors], database=None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each Schemathesis test named by its operation, and in the mutation run, the fastest
    tests first."""
    _name_each_operation(items)
    _fastest_first_when_mutating(items)


def _name_each_operation(items: list[pytest.Item]) -> None:
    """Schemathesis 4.32 on pytest 9.2 gives every operation's test one node id
    (`test_every_answer_conforms`, nine times). pytest-xdist schedules by node id, so it ran
    one of them and dropped the others; `-k` and the reports could not tell them apart
    either. Each gets its operation as its parameter: `…[GET /get_contacts]`."""
    for item in items:
        label = getattr(item, "operation_label", None)
        if label is not None and item._id.params is None:  # type: ignore[attr-defined]
            item._id = item._id.with_params(label)  # type: ignore[attr-defined]


def _fastest_first_when_mutating(items: list[pytest.Item]) -> None:
    """In the mutation run, the fastest tests first: mutmut hands a mutant's tests over
    unordered and stops at the first failure, so a killed mutant then dies early. The
    durations are those of mutmut's own clean run (in its working directory)."""
    if hypothesis_settings.get_current_profile_name() != "mutation":
        return
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
