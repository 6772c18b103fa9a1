"""The processes a benchmark runs: the HubSpot sandbox and the service, each in its own process.

Both listen on 127.0.0.1 only, are started here and always stopped here (`stop()` is called
from the harness's `finally`, also on Ctrl-C). Every wait is bounded by a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import requests

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-sandbox-token"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
ADMIN_TIMEOUT = 120.0
# Variables of the service that must not leak in from the caller's environment.
_SERVICE_NAMES = ("api-key", "base-url", "since-field", "since-operator", "port", "PORT", "HOST",
                  "SANDBOX_CONTACTS", "LOG_LEVEL", "LOG_FORMAT", "AUTH_USERNAME", "AUTH_PASSWORD")


class BenchError(RuntimeError):
    """A benchmark could not be measured (a process died, a request failed)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready: Callable[[], bool], what: str, timeout: float, alive: Callable[[], bool]) -> None:
    """Poll `ready` until it holds; BenchError after `timeout` seconds or when `alive` fails."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            raise BenchError(f"{what} exited before it was ready")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} was not ready within {timeout:.0f} s")
        time.sleep(0.1)


class Process:
    """One child process on a free port of 127.0.0.1, its output in a log file; start()
    returns once GET `ready_path` answers 200, stop() ends it whatever happened."""

    def __init__(self, name: str, ready_path: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv: list[str] = []
        self.env: dict[str, str] | None = None
        self._ready_url = self.url + ready_path
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Process:
        # Its own session: a Ctrl-C reaches the harness only, which then stops the child.
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(self._ready, self.name, START_TIMEOUT, self.alive)
        except BenchError as exc:
            self._log.flush()
            ends = Path(self._log.name).read_text(errors="replace")[-500:]
            raise BenchError(f"{exc}; its output ends: {ends}") from None
        return self

    def _ready(self) -> bool:
        try:
            return requests.get(self._ready_url, timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT)
        self._log.close()
        if self.popen is None or self.popen.returncode in (0, -signal.SIGTERM):
            os.unlink(self._log.name)  # kept (and named in the error) when the process failed

    def vm_hwm_kb(self) -> int:
        """Peak resident set size (VmHWM) of the process, in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise BenchError(f"no VmHWM in /proc/{self.pid}/status")


class SandboxProcess(Process):
    """`python -m sandbox` with an admin client for /_sandbox/."""

    def __init__(self, contacts: int, seed: int) -> None:
        super().__init__(f"sandbox-{contacts}", "/_sandbox/stats")
        self.contacts = contacts
        self.argv = [sys.executable, "-m", "sandbox", "--port", str(self.port), "--contacts", str(contacts),
                     "--seed", str(seed), "--token", TOKEN]
        self.session = requests.Session()

    def stop(self) -> None:
        self.session.close()
        super().stop()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(method, f"{self.url}/_sandbox/{path}", json=body, timeout=ADMIN_TIMEOUT)
        if response.status_code >= 300:
            raise BenchError(f"sandbox {method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def configure(self, latency_ms: float = 0, search_rate_per_second: int | None = None,
                  general_rate_per_10s: int | None = None) -> None:
        self.admin("POST", "config", {"latency_ms": latency_ms, "search_rate_per_second": search_rate_per_second,
                                      "general_rate_per_10s": general_rate_per_10s})

    def stats(self) -> dict[str, int]:
        return self.admin("GET", "stats")["requests"]

    def reset_stats(self) -> None:
        self.admin("POST", "stats/reset")

    def truth(self, object_type: str = "contacts") -> dict[str, Any]:
        return self.admin("GET", f"truth?type={object_type}")

    def advance(self, ms: int) -> None:
        self.admin("POST", "clock", {"advance_ms": ms})

    def search(self, body: dict) -> requests.Response:
        """One search request sent directly, as the service would send it."""
        return self.session.post(self.url + "/crm/v3/objects/contacts/search", json=body, timeout=ADMIN_TIMEOUT,
                                 headers={"Authorization": f"Bearer {TOKEN}"})


class ServiceProcess(Process):
    """`python -m app` reading from a sandbox, configured by environment as in production."""

    def __init__(self, sandbox: SandboxProcess, search_rate: int | None, settle_seconds: float = 0,
                 extra_env: dict[str, str] | None = None) -> None:
        super().__init__("service", "/health")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_") and k not in _SERVICE_NAMES}
        env.update(HOST="127.0.0.1", PORT=str(self.port), HUBSPOT_ACCESS_TOKEN=TOKEN,
                   HUBSPOT_BASE_URL=sandbox.url, HUBSPOT_SEARCH_SETTLE_SECONDS=str(settle_seconds),
                   LOG_LEVEL="WARNING", LOG_FORMAT="text")
        if search_rate is not None:  # else the service's default budget
            env["HUBSPOT_SEARCH_RATE_PER_SECOND"] = str(search_rate)
        env.update(extra_env or {})
        self.argv, self.env = [sys.executable, "-m", "app"], env

    def search_retries(self) -> int:
        """HubSpot searches the service retried so far (its /metrics), e.g. after a 429."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("hubspot_sesam_upstream_retries_total") and 'endpoint="search"' in line))
