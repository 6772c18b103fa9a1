"""What an operator relies on: metrics, logs, caller authentication, secrecy of the token,
and the client's care for HubSpot's rate limits."""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests
from starlette.testclient import TestClient

from app.config import Settings
from app.hubspot import HubSpotClient
from app.object_types import standard_types
from sandbox import Fault, Sandbox, SandboxServer

from .test_deployment import _started, free_port, wait_until_up  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent


def metric(service: TestClient, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when absent)."""
    text = service.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and ",".join(sorted((match[1] or "").split(","))) == wanted:
            return float(match[2])
    return 0.0


class TestMetrics:
    def test_requests_entities_and_upstream_calls_are_counted(self, service: TestClient,
                                                               sandbox: Sandbox) -> None:
        """/metrics counts answers by path and status, entities sent, HubSpot calls by
        endpoint and status, and retries, each figure of an object type under its label."""
        sandbox.inject(Fault(endpoint="search", status=503, times=1))
        entities = orjson.loads(service.get("/get_contacts").content)
        service.get("/get_contacts", params={"limit": "0"})
        deals = orjson.loads(service.get("/objects/deals").content)
        assert metric(service, "hubspot_sesam_requests_total", path="/get_contacts",
                      status="200") == 1
        assert metric(service, "hubspot_sesam_requests_total", path="/get_contacts",
                      status="400") == 1
        assert metric(service, "hubspot_sesam_entities_total", object_type="contacts",
                      kind="live") == len(entities)
        assert metric(service, "hubspot_sesam_entities_total", object_type="deals",
                      kind="live") == len(deals) > 0
        assert metric(service, "hubspot_sesam_upstream_calls_total", endpoint="search",
                      object_type="contacts", status="503") == 1
        assert metric(service, "hubspot_sesam_upstream_retries_total", endpoint="search",
                      object_type="contacts") == 1
        assert metric(service, "hubspot_sesam_exports_total", object_type="contacts", outcome="ok") == 1
        assert metric(service, "hubspot_sesam_exports_total", object_type="deals", outcome="ok") == 1
        assert metric(service, "hubspot_sesam_exports_in_progress", object_type="deals") == 0

    def test_metrics_are_prometheus_text(self, service: TestClient) -> None:
        """The exposition format Prometheus scrapes."""
        response = service.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain"), response.headers
        assert "# TYPE hubspot_sesam_requests_total counter" in response.text


class TestSummaryLog:
    def test_one_line_per_export(self, service: TestClient, caplog: pytest.LogCaptureFixture) -> None:
        """Each /get_contacts call ends with one log line saying what it did: here one
        search page (the property catalogue, cached, is counted on /metrics only)."""
        with caplog.at_level(logging.INFO, logger="app.web.stream"):
            service.get("/get_contacts", params={"limit": "5"})
        (record,) = [r for r in caplog.records if r.name == "app.web.stream"]
        summary = {k: getattr(record, k, None) for k in
                   ("since", "limit", "entities", "upstream_calls", "retries", "duration_s", "outcome")}
        assert summary["limit"] == 5 and summary["entities"] == 5, summary
        assert summary["outcome"] == "ok" and summary["upstream_calls"] == 1, summary
        assert summary["retries"] == 0 and summary["duration_s"] >= 0, summary


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class TestCallerAuthentication:
    @pytest.fixture(name="guarded")
    def _guarded(self, configure) -> TestClient:
        return configure(auth_username="sesam", auth_password="s3cret")

    @pytest.mark.parametrize("headers", [{}, basic("sesam", "wrong"), basic("other", "s3cret"),
                                         {"Authorization": "Basic !!!"},
                                         {"Authorization": "Bearer s3cret"}])
    def test_requests_without_valid_credentials_are_refused(self, guarded: TestClient,
                                                           headers: dict) -> None:
        """With AUTH_USERNAME/AUTH_PASSWORD set, missing or wrong credentials get a 401
        problem with a Basic challenge, on the export and on the metrics."""
        for path in ("/get_contacts", "/metrics"):
            response = guarded.get(path, headers=headers)
            assert response.status_code == 401, f"{path} {headers}: {response.status_code}"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Basic"), response.headers

    def test_valid_credentials_pass_and_health_stays_open(self, guarded: TestClient) -> None:
        """The right credentials export; /health answers without any (container checks)."""
        assert guarded.get("/get_contacts", params={"limit": "1"},
                           headers=basic("sesam", "s3cret")).status_code == 200
        assert guarded.get("/health").status_code == 200


class TestRateLimitHeaders:
    def test_client_waits_when_the_window_is_used_up(self) -> None:
        """When HubSpot's X-HubSpot-RateLimit-Remaining says the 10-second window is used
        up, the client pauses for the window instead of running into 429s."""
        sandbox = Sandbox(contacts=50, seed=3, now_ms=1717200000000)
        sandbox.general_rate_per_10s = 2
        pauses: list[float] = []
        with SandboxServer(sandbox) as server:
            settings = Settings(token=sandbox.token, base_url=server.url, list_page_size=10)
            # A clock that stands still: the pause is then exactly the window HubSpot named.
            client = HubSpotClient(settings, sleep=pauses.append, monotonic=lambda: 1000.0)
            contacts = standard_types(settings.modified_property, {})["contacts"]
            client.catalogue(contacts)
            list(client.archived_pages(contacts))
            client.close()
        assert pauses == [10.0], f"paused {pauses} before the call after the window was used up"


class TestSecrets:
    CORRELATION = "c0ffee00-0000-4000-8000-000000000001"

    def test_token_never_reaches_logs_bodies_or_urls(self, tmp_path: Path) -> None:
        """With debug logging on, through a normal export, an export cut mid-stream, and a
        HubSpot error that echoes the token, the token appears in no log line (stdout),
        no response body and no URL the service requested."""
        token = "pat-eu1-0123abcd-dead-beef-secret"
        sandbox = Sandbox(contacts=400, seed=9, now_ms=1717200000000, token=token)
        port = free_port()
        log_file = tmp_path / "service.log"
        with SandboxServer(sandbox) as server, log_file.open("w") as log_out:
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")},
                   "HOST": "127.0.0.1", "PORT": str(port), "HUBSPOT_ACCESS_TOKEN": token,
                   "HUBSPOT_BASE_URL": server.url, "LOG_LEVEL": "DEBUG",
                   "HUBSPOT_SEARCH_PAGE_SIZE": "20", "HUBSPOT_SEARCH_CONCURRENCY": "1",
                   "HUBSPOT_MAX_RETRIES": "1",
                   "HUBSPOT_RETRY_INITIAL_WAIT": "0.01", "HUBSPOT_SEARCH_SETTLE_SECONDS": "5"}
            process = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env,
                                       stdout=log_out, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until_up(url + "/health", process)
                bodies = [requests.get(url + "/get_contacts", timeout=60).text]
                sandbox.inject(Fault(endpoint="search", status=500, skip=6, times=None))
                bodies.append(requests.get(url + "/get_contacts", timeout=60).text)
                sandbox.clear_faults()
                sandbox.inject(Fault(endpoint="any", status=401, times=None, body={
                    "status": "error", "message": f"The token {token} is not valid",
                    "correlationId": self.CORRELATION, "category": "INVALID_AUTHENTICATION"}))
                bodies.append(requests.get(url + "/get_contacts", timeout=60).text)
            finally:
                process.terminate()
                process.wait(timeout=10)
        logged = log_file.read_text()
        assert "EXPORT ABORTED" in bodies[1] and self.CORRELATION in bodies[2], bodies[1][-200:] + bodies[2]
        assert token not in logged, "the token is in the service's log"
        assert not [b for b in bodies if token in b], "the token is in a response body"
        assert not [r for r in sandbox.request_log if token in orjson.dumps(
            {"path": r["path"], "query": r["query"]}).decode()], "the token is in a URL"
        lines = [line for line in logged.splitlines() if line.strip()]
        assert lines and all(line.startswith("{") for line in lines), "not one JSON object per line"
        for line in lines:
            orjson.loads(line)


class TestMetricsPerType:
    def test_hubspots_budget_and_the_snapshots_age(self, service: TestClient, sandbox: Sandbox) -> None:
        """What HubSpot's rate-limit headers say is left, and how old each type's archived
        snapshot is, once an incremental export has listed it."""
        sandbox.general_rate_per_10s = 50
        since = orjson.loads(service.get("/get_contacts").content)[-1]["_updated"]
        assert service.get("/get_contacts", params={"since": since}).status_code == 200
        left = metric(service, "hubspot_sesam_hubspot_rate_limit_remaining", window="ten_seconds")
        assert 0 < left < 50, left
        ages = [line for line in service.get("/metrics").text.splitlines()
                if line.startswith('hubspot_sesam_archived_snapshot_age_seconds{object_type="contacts"}')]
        assert len(ages) == 1 and float(ages[0].rsplit(" ", 1)[1]) >= 0, ages
        assert "archived_snapshot_age_seconds{object_type=\"deals\"}" not in service.get("/metrics").text

    def test_entities_count_while_the_body_streams(self, started) -> None:
        """An export in progress shows in the gauge, and its entities count as they are sent,
        not only when it ends."""
        port = free_port()
        process = started("--sandbox", PORT=str(port), SANDBOX_CONTACTS="5000")
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/health", process)
        with requests.get(url + "/get_contacts", stream=True, timeout=60) as export:
            chunks = export.iter_content(64 * 1024)
            next(chunks)
            during = requests.get(url + "/metrics", timeout=30).text
            rest = sum(len(chunk) for chunk in chunks)
        after = requests.get(url + "/metrics", timeout=30).text

        def sample(text: str, name: str) -> float:
            line = next((line for line in text.splitlines() if line.startswith(name)), f"{name} 0")
            return float(line.rsplit(" ", 1)[1])

        live = 'hubspot_sesam_entities_total{kind="live",object_type="contacts"}'
        running = 'hubspot_sesam_exports_in_progress{object_type="contacts"}'
        assert rest > 0 and sample(during, running) == 1 and sample(after, running) == 0, (during, after)
        assert 0 < sample(during, live) < sample(after, live) == 4900, (sample(during, live), sample(after, live))


DASHBOARD = ROOT / "examples" / "grafana" / "hubspot-sesam.json"


def test_the_dashboard_asks_only_for_what_the_service_exports(service: TestClient, sandbox: Sandbox) -> None:
    """Every query of the Grafana dashboard in examples/ names metrics the service serves, and
    groups them only by labels those metrics carry."""
    sandbox.general_rate_per_10s = 50
    sandbox.inject(Fault(endpoint="search", status=503, times=1))  # a retry, counted
    since = orjson.loads(service.get("/get_contacts").content)[-1]["_updated"]
    service.get("/get_contacts", params={"since": since})
    served: dict[str, set[str]] = {}
    for line in service.get("/metrics").text.splitlines():
        match = re.fullmatch(r"(hubspot_sesam_\w+)(?:\{(.*)\})? \S+", line)
        if match:
            served.setdefault(match[1], set()).update(re.findall(r"(\w+)=", match[2] or ""))
    queries = [target["expr"] for panel in orjson.loads(DASHBOARD.read_bytes())["panels"]
               for target in panel["targets"]]
    assert queries, "the dashboard has no query"
    for query in queries:
        names = re.findall(r"\bhubspot_sesam_\w+", query)
        assert names and all(name in served for name in names), (query, sorted(served))
        grouped = {label.strip() for by in re.findall(r"by \(([^)]*)\)", query) for label in by.split(",")}
        carried = set.union(*(served[name] for name in names)) | {"le"}
        assert grouped <= carried, f"{query}: groups by {grouped - carried}, which its metrics lack"



def probes(sandbox: Sandbox) -> list[str]:
    """The paths of the one-record reads readiness sends (limit=1 on the list API)."""
    return [r["path"] for r in sandbox.request_log if r["query"].get("limit") == ["1"]]


class TestReadiness:
    def test_ready_names_what_it_checked_and_asks_hubspot_once_a_minute(
            self, service: TestClient, sandbox: Sandbox) -> None:
        """200 with each check; within the interval a second call asks HubSpot nothing; a type
        exported since is checked once the interval has passed."""
        first = service.get("/ready")
        assert first.status_code == 200, first.text
        assert first.json() == {"status": "ready", "checks": {"contacts": "ok", "daily allowance": "ok"}}
        assert service.get("/ready").status_code == 200 and probes(sandbox) == ["/crm/v3/objects/contacts"]
        assert service.get("/objects/deals", params={"limit": "1"}).status_code == 200
        sandbox.advance(61_000)
        again = service.get("/ready")
        assert again.json()["checks"] == {"contacts": "ok", "deals": "ok", "daily allowance": "ok"}, again.text

    def test_a_missing_scope_is_named_per_type(self, configure, sandbox: Sandbox) -> None:
        """A type the service is set up for but the token may not read: 503, naming the type
        and its scope; the other types still checked."""
        sandbox.scopes.discard("crm.objects.tickets.read")
        sandbox.scopes.discard("tickets")
        response = configure(object_properties=(("tickets", ("subject",)), ("deals", ("dealname",)))).get("/ready")
        assert response.status_code == 503 and response.json()["title"] == "Not ready", response.text
        checks = response.json()["checks"]
        assert checks["contacts"] == checks["deals"] == "ok", checks
        assert "tickets" in checks["tickets"] and "lacks a scope" in checks["tickets"], checks
        assert response.json()["detail"].startswith("tickets: HubSpot access token lacks a scope"), response.text
        assert int(response.headers["retry-after"]) >= 1

    @pytest.mark.parametrize("fault,says", [
        (Fault(endpoint="any", status=401, times=None), "HubSpot refused the access token"),
        (Fault(endpoint="any", kind="daily", times=None), "HubSpot daily limit reached"),
    ])
    def test_hubspot_refusing_fails_it_at_once(self, configure, sandbox: Sandbox, fault: Fault,
                                               says: str, caplog: pytest.LogCaptureFixture) -> None:
        """A refused token or a used-up day fails readiness after one read (not once per type,
        not retried), and is logged once, as a warning, however often it is asked."""
        service = configure(object_properties=(("deals", ("dealname",)),))
        sandbox.inject(fault)
        with caplog.at_level(logging.WARNING):
            answers = [service.get("/ready") for _ in range(3)]
        assert all(a.status_code == 503 and says in a.json()["detail"] for a in answers), answers[0].text
        assert len(probes(sandbox)) == 1, probes(sandbox)
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(logged) == 1 and says in logged[0], logged

    def test_unreachable(self, configure) -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        response = configure(base_url=f"http://127.0.0.1:{port}").get("/ready")
        assert response.status_code == 503 and "HubSpot unreachable" in response.json()["detail"], response.text

    def test_open_without_credentials(self, configure) -> None:
        """Like /health, for monitors that carry no credentials."""
        guarded = configure(auth_username="sesam", auth_password="s3cret")
        assert guarded.get("/ready").status_code == 200
        assert guarded.get("/get_contacts", params={"limit": "1"}).status_code == 401


def test_the_metrics_label_sets_stay_bounded(service: TestClient) -> None:
    """However many unknown types, paths and parameters a caller tries, /metrics gains no
    label value for them: unknown types are refused before anything is counted per type, and
    unknown paths share one label."""
    service.get("/get_contacts", params={"limit": "1"})
    before = service.get("/metrics").text
    for n in range(40):
        service.get(f"/objects/2-{900000 + n}")
        service.get(f"/objects/p1_thing{n}")
        service.get(f"/nowhere/{n}")
        service.get("/get_contacts", params={f"x{n}": "1"})
    after = service.get("/metrics").text
    labels = lambda text: {value for value in re.findall(r'="([^"]*)"', text)}  # noqa: E731
    new = labels(after) - labels(before)
    # The service's own words only: statuses, the shared labels, and the one schemas read.
    assert new <= {"200", "400", "404", "other", "/objects/{objectType}", "/metrics", "schemas", "-"}, sorted(new)
