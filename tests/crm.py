"""A client for the sandbox's CRM endpoints of any object type, for the sandbox's tests; and
the service's exports as the tests read them (`objects`, `problem`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import requests
from starlette.testclient import TestClient

from sandbox import Sandbox, SandboxServer

# The checkout: `python -m sandbox` finds the package from there only (it is not installed).
ROOT = Path(__file__).resolve().parent.parent


class Crm:
    """Requests to one sandbox server for any object type."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url + path, params=params, timeout=10)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=10)

    def search_in(self, object_type: str, body: dict) -> requests.Response:
        return self.post(f"/crm/v3/objects/{object_type}/search", body)

    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.url}/_sandbox/{path}", json=body, timeout=10)

    def list_ids(self, object_type: str, **params: Any) -> list[str]:
        """The ids of every record the list API returns, following paging.next.after."""
        ids: list[str] = []
        after = None
        while True:
            response = self.get(f"/crm/v3/objects/{object_type}", limit=100, **params,
                                **({"after": after} if after else {}))
            assert response.status_code == 200, f"{object_type} list after={after!r}: {response.text}"
            page = response.json()
            ids += [result["id"] for result in page["results"]]
            if "paging" not in page:
                return ids
            after = page["paging"]["next"]["after"]

    def search_ids(self, object_type: str, body: dict) -> list[str]:
        """The ids of every search result in order, 200 at a time."""
        ids: list[str] = []
        after = 0
        while True:
            response = self.search_in(object_type, {**body, "limit": 200, "after": after})
            assert response.status_code == 200, f"{object_type} search after={after}: {response.text}"
            page = response.json()
            ids += [result["id"] for result in page["results"]]
            if "paging" not in page:
                return ids
            after = int(page["paging"]["next"]["after"])


def modified_property(object_type: str) -> str:
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def since(object_type: str, ms: int = 0) -> dict:
    """A search for every record modified at or after `ms`, in modification order."""
    name = modified_property(object_type)
    return {"filterGroups": [{"filters": [{"propertyName": name, "operator": "GTE", "value": str(ms)}]}],
            "sorts": [{"propertyName": name, "direction": "ASCENDING"}]}


@contextmanager
def serve(sandbox: Sandbox) -> Iterator[Crm]:
    """`sandbox` served over HTTP, with a client for it."""
    with SandboxServer(sandbox) as server:
        crm = Crm(server.url, sandbox.token)
        try:
            yield crm
        finally:
            crm.session.close()


def objects(service: TestClient, kind: str, **params: str) -> list[dict]:
    """The entities the service exports of ``kind`` (asserting a 200)."""
    response = service.get(f"/objects/{kind}", params=params)
    assert response.status_code == 200, f"{kind} {params}: {response.status_code} {response.text[:500]}"
    return orjson.loads(response.content)


def problem(service: TestClient, url: str, status: int) -> dict:
    """The service's problem+json answer to ``url`` (asserting its status)."""
    response = service.get(url)
    assert response.status_code == status, f"{url}: {response.status_code} {response.text[:500]}"
    assert response.headers["content-type"] == "application/problem+json", response.headers
    return response.json()
