"""A slow HubSpot, or clients that give up, cannot take the service down: /health and
/metrics answer whatever the exports do, at most MAX_CONCURRENT_EXPORTS run at once (the
one over them is refused with a 503 before any HubSpot call), an export whose client has
gone stops reading HubSpot and is counted, and a request head that never comes whole is
closed by the server.

Each test starts `python -m app` as production does (its own process, uvicorn on loopback)
in front of a sandbox in this process, so that its faults and request counts are at hand.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.config import Settings
from app.hubspot import HubSpotClient
from app.metrics import Metrics
from app.sync import Crm, ExportStats
from app.sync import crm as crm_module
from app.sync.positions import START_POSITION
from sandbox import Fault, Sandbox, SandboxServer

from .sesam import T0
from .test_load import free_port, stop, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
ANSWER_TIMEOUT = 10.0  # a client's bound on an answer that must come (not a measured time)
GIVE_UP_SECONDS = 5.0  # how long a client that gives up waits for an export
HANG_SECONDS = 40.0  # every search of a slow HubSpot, within the service's read timeout
SHORT_HANG_SECONDS = 15.0  # a hang that a test waits out
HANGING_CLIENTS = 45  # more than Starlette's 40 threads that used to serve every request
POLL_SECONDS = 0.5
DEFAULT_LIMIT = Settings().max_concurrent_exports


@dataclass
class Service:
    """The service process, where its output goes, and its URL."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def metric(self, name: str, labels: str = "") -> float:
        """The sum of a metric's samples whose labels contain ``labels`` (0 when absent)."""
        text = requests.get(self.url + "/metrics", timeout=ANSWER_TIMEOUT).text
        total = 0.0
        for line in text.splitlines():
            match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
            if match and labels in (match[1] or ""):
                total += float(match[2])
        return total


@pytest.fixture(name="portal")
def _portal() -> Iterator[tuple[Sandbox, SandboxServer]]:
    sandbox = Sandbox(contacts=600, seed=11, now_ms=T0, custom_properties=0)
    with SandboxServer(sandbox) as server:
        yield sandbox, server


@pytest.fixture(name="start")
def _start(portal: tuple[Sandbox, SandboxServer],
           tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start `python -m app` in front of the portal, with more settings by environment;
    every service started is stopped at the end."""
    sandbox, server = portal
    with ExitStack() as stack:

        def start(**env: str) -> Service:
            port = free_port()
            clean = {k: v for k, v in os.environ.items()
                     if not k.startswith("HUBSPOT_") and k not in ("api-key", "PORT", "port")}
            full = {**clean, "HOST": "127.0.0.1", "PORT": str(port), "LOG_FORMAT": "json",
                    "HUBSPOT_ACCESS_TOKEN": sandbox.token, "HUBSPOT_BASE_URL": server.url,
                    "HUBSPOT_SEARCH_SETTLE_SECONDS": "5", **env}
            log = tmp_path / f"service-{port}.log"
            with log.open("wb") as stdout:
                process = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=full,
                                           stdin=subprocess.DEVNULL, stdout=stdout,
                                           stderr=subprocess.STDOUT)
            stack.callback(stop, process)
            service = Service(process, f"http://127.0.0.1:{port}", port, log)
            wait_until_healthy(service)
            return service

        yield start


def export_giving_up(url: str) -> str:
    """GET /get_contacts as a client that gives up after GIVE_UP_SECONDS: its status, or
    "gave up"."""
    try:
        with requests.get(url + "/get_contacts", timeout=(ANSWER_TIMEOUT, GIVE_UP_SECONDS)) as response:
            return str(response.status_code)
    except requests.Timeout:
        return "gave up"


def open_export(port: int, path: str = "/get_contacts") -> socket.socket:
    """A request sent on a raw connection that is then not read (the caller closes it)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return sock


def wait_for(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(POLL_SECONDS)


class TestASlowHubSpot:
    @pytest.mark.timeout(120)
    def test_health_and_metrics_answer_while_exports_hang_and_clients_give_up(
            self, portal: tuple[Sandbox, SandboxServer], start: Callable[..., Service]) -> None:
        """Every search hangs 40 s (within the read timeout); 45 clients ask for an export
        and give up after 5 s. /health and /metrics still answer (they waited for the
        hanging exports' threads before); the 35 exports beyond the limit of 10 were
        refused with 503 and counted."""
        sandbox, _ = portal
        service = start()
        sandbox.inject(Fault("search", kind="hang", seconds=HANG_SECONDS, times=None))
        with ThreadPoolExecutor(HANGING_CLIENTS) as pool:
            outcomes = list(pool.map(export_giving_up, [service.url] * HANGING_CLIENTS))
        try:
            health = requests.get(service.url + "/health", timeout=ANSWER_TIMEOUT)
            metrics = requests.get(service.url + "/metrics", timeout=ANSWER_TIMEOUT)
        except requests.Timeout:
            pytest.fail(f"no answer within {ANSWER_TIMEOUT} s while {HANGING_CLIENTS} exports "
                        f"hang (clients: {sorted(set(outcomes))}): {service.log_tail()}")
        assert health.status_code == 200 and metrics.status_code == 200, (
            f"/health {health.status_code}, /metrics {metrics.status_code}")
        assert set(outcomes) <= {"503", "gave up"} and "503" in outcomes, outcomes
        # Counted by the service, whether or not a (slow) client waited for its 503.
        counted = service.metric("hubspot_sesam_exports_refused_total")
        assert counted == HANGING_CLIENTS - DEFAULT_LIMIT, (
            f"{counted} of {HANGING_CLIENTS} exports refused at a limit of {DEFAULT_LIMIT}")


class TestTheExportOverTheLimit:
    @pytest.mark.timeout(60)
    def test_is_a_503_with_retry_after_and_no_hubspot_call(
            self, portal: tuple[Sandbox, SandboxServer], start: Callable[..., Service]) -> None:
        """With MAX_CONCURRENT_EXPORTS=2 exports waiting on a slow HubSpot, a third is a 503
        problem+json with Retry-After, sent without any HubSpot request and counted; once
        those two have gone, an export runs again."""
        sandbox, _ = portal
        service = start(MAX_CONCURRENT_EXPORTS="2")
        requests.get(service.url + "/get_contacts?limit=1", timeout=ANSWER_TIMEOUT)  # catalogue
        sandbox.inject(Fault("search", kind="hang", seconds=SHORT_HANG_SECONDS, times=2))
        running = [open_export(service.port) for _ in range(2)]
        try:
            wait_for(lambda: service.metric("hubspot_sesam_exports_in_progress") == 2,
                     "the two exports running", ANSWER_TIMEOUT)
            sandbox.reset_counters()
            refused = requests.get(service.url + "/get_contacts", timeout=ANSWER_TIMEOUT)
            calls = list(sandbox.request_log)
        finally:
            for sock in running:
                sock.close()
        assert refused.status_code == 503, f"{refused.status_code}: {refused.text[:300]}"
        assert refused.headers["content-type"] == "application/problem+json", refused.headers
        assert refused.headers.get("retry-after", "").isdigit(), refused.headers
        problem = refused.json()
        assert problem["status"] == 503 and "MAX_CONCURRENT_EXPORTS" in problem["detail"], problem
        assert calls == [], f"the refused export called HubSpot: {calls}"
        assert service.metric("hubspot_sesam_exports_refused_total") == 1
        # The two are left by their clients and end with their hanging search: slots free.
        wait_for(lambda: service.metric("hubspot_sesam_exports_total", 'outcome="client_gone"') == 2,
                 "the two left exports counted as client_gone", SHORT_HANG_SECONDS + ANSWER_TIMEOUT)
        again = requests.get(service.url + "/get_contacts?limit=5", timeout=ANSWER_TIMEOUT)
        assert again.status_code == 200 and len(again.json()) == 5, again.text[:300]


class TestAClientThatGoes:
    @pytest.mark.timeout(90)
    def test_stops_the_hubspot_reads_and_is_counted(
            self, portal: tuple[Sandbox, SandboxServer], start: Callable[..., Service]) -> None:
        """A client reads the first bytes of a long export (600 contacts, pages of 2, each
        search 50 ms late) and closes the connection: the sandbox's search count stops
        growing well before the export's end, and the export is counted as client_gone."""
        sandbox, _ = portal
        service = start(HUBSPOT_SEARCH_PAGE_SIZE="2", HUBSPOT_SEARCH_CONCURRENCY="1",
                        HUBSPOT_SEARCH_RATE_PER_SECOND="100")
        sandbox.latency_ms = 50
        full_export = len(sandbox.live()) // 2  # searches a whole export would take, at least
        sock = open_export(service.port)
        try:
            assert sock.recv(1024).startswith(b"HTTP/1.1 200"), "the export did not start"
        finally:
            sock.close()
        counts: list[int] = []

        def settled() -> bool:
            counts.append(sandbox.request_counts().get("search", 0))
            return len(counts) >= 4 and counts[-4] == counts[-1]

        wait_for(settled, f"the search count settling (so far {counts[-8:]})", 60)
        assert counts[-1] < full_export // 2, (
            f"{counts[-1]} searches after the client went, of {full_export} for the export")
        wait_for(lambda: service.metric("hubspot_sesam_exports_total", 'outcome="client_gone"') == 1,
                 "the export counted as client_gone", ANSWER_TIMEOUT)


class TestRequestHeadTimeout:
    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("parts", [[b""], [b"GET /health HTTP/1.1\r\nHost: local"],
                                       [b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
                                        b"GET /hea"]],
                             ids=["nothing", "half a head", "half a second head"])
    def test_an_incomplete_head_is_closed_by_the_server(self, start: Callable[..., Service],
                                                        parts: list[bytes]) -> None:
        """With REQUEST_HEAD_TIMEOUT_SECONDS=1, a connection that sends no head, half of
        one, or half of its second one once the first was answered (after the keep-alive
        timer stopped at its first byte), is closed by the server; the service goes on
        serving."""
        service = start(REQUEST_HEAD_TIMEOUT_SECONDS="1")
        received = b""
        with socket.create_connection(("127.0.0.1", service.port), timeout=ANSWER_TIMEOUT * 3) as sock:
            try:
                for part in parts:
                    sock.sendall(part)
                    while part.endswith(b"\r\n\r\n") and not received.rstrip().endswith(b"}"):
                        received += sock.recv(65536)  # the whole answer of /health
                while data := sock.recv(65536):
                    received += data
            except TimeoutError:
                pytest.fail(f"the connection stayed open after {parts!r}; got {received[:200]!r}")
            except ConnectionResetError:
                pass
        answers = received.count(b"HTTP/1.1 ")
        assert answers == len(parts) - 1, f"after {parts!r}: {received[:300]!r}"
        assert requests.get(service.url + "/health", timeout=ANSWER_TIMEOUT).status_code == 200


class TestAssociationReadAhead:
    BATCH = 10  # records per association batch here (HubSpot's 1,000 in the service)
    # The batch being consumed, the one handed over, and one read ahead (the depth of 1).
    MOST_READ = 3

    @pytest.mark.timeout(60)
    def test_reads_at_most_its_depth_ahead_of_a_paused_consumer(
            self, portal: tuple[Sandbox, SandboxServer], monkeypatch: pytest.MonkeyPatch) -> None:
        """An export of contacts with their companies, in batches of 10, whose consumer
        takes one entity and stops: the associations of at most 3 batches are read (the one
        taken, the one handed over, one read ahead: not the 60 of the portal), so a slow
        client holds a bounded number of batches."""
        sandbox, server = portal
        monkeypatch.setattr(crm_module, "ASSOCIATION_BATCH", self.BATCH)
        settings = Settings(token=sandbox.token, base_url=server.url, settle_seconds=5,
                            search_rate_per_second=100, general_rate_per_10s=1000)
        crm = Crm(HubSpotClient(settings, metrics=Metrics()), settings)
        try:
            contacts, companies = crm.types.resolve("contacts"), crm.types.resolve("companies")
            entities = crm.entities(contacts, START_POSITION, None, ExportStats(), (companies,))
            first = next(entities)
            assert "associations" in first, first.keys()
            counts: list[int] = []

            def settled() -> bool:
                counts.append(sandbox.request_counts().get("associations", 0))
                return len(counts) >= 4 and counts[-4] == counts[-1]

            wait_for(settled, f"the association reads settling (so far {counts[-8:]})", 30)
            assert counts[-1] <= self.MOST_READ, (
                f"{counts[-1]} association batches read while the consumer waits at the first "
                f"entity; at most {self.MOST_READ} with a read-ahead of one batch")
            entities.close()
        finally:
            crm.close()
