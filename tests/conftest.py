"""Shared fixtures: a sandbox portal on a frozen clock and the service in front of it."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from app.config import Settings
from app.sandbox import Sandbox, SandboxServer
from app.server import create_app

from .sesam import SETTLE_SECONDS, T0



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
    )


def make_service(settings: Settings) -> TestClient:
    """The service as an HTTP client, built exactly as `python -m app` builds it."""
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(name="service")
def _service(settings: Settings) -> Iterator[TestClient]:
    with make_service(settings) as service:
        yield service


@pytest.fixture(name="configure")
def _configure(settings: Settings):
    """A service with some settings changed, e.g. ``configure(search_page_size=7)``."""
    opened: list[TestClient] = []

    def build(**changes: Any) -> TestClient:
        service = make_service(dataclasses.replace(settings, **changes)).__enter__()
        opened.append(service)
        return service

    yield build
    for service in opened:
        service.__exit__(None, None, None)
