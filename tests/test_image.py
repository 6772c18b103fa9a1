"""The production image, built from the Dockerfile and started as Sesam starts it.

The image is built with Debian's podman (runc; no Docker daemon needed) on a base made of
Debian's own packages (`mmdebstrap`: Python 3.11 and its venv module), as `--build-arg BASE`
lets any base with Python do. The sandbox is not in the image: the container reads the
sandbox served by this test on the host's loopback. `.ci/run` installs podman, runc and
mmdebstrap, so CI always runs these tests; elsewhere, without them or without root, they say
so in one line and count as not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox import Sandbox, SandboxServer

from .test_deployment import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
BASE = "localhost/hubspot-sesam-base:bookworm"
IMAGE = "localhost/hubspot-sesam:test"
PODMAN = ["podman", "--runtime", "runc"]
# What this machine's container runtime needs spelled out (its defaults are refused).
LIMITS = ["--ulimit", f"nofile={os.sysconf('SC_OPEN_MAX')}:{os.sysconf('SC_OPEN_MAX')}",
          "--ulimit", "nproc=32768:32768"]
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # the host's, for pip in the build only
BUILD_SECONDS = 600


def cannot_run() -> str | None:
    """Why podman cannot build and run the image here, if it cannot."""
    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    return f"{', '.join(missing)} not installed (Debian: apt-get install podman runc mmdebstrap)" if missing else None


def run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    assert not check or result.returncode == 0, f"podman {' '.join(args)}: {result.stderr[-2000:]}"
    return result


@pytest.fixture(name="image", scope="module")
def _image() -> Iterator[str]:
    reason = cannot_run()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the image tests must run in CI, but: {reason}")
        pytest.skip(f"podman cannot build the image here: {reason}")
    if run("image", "exists", BASE, check=False).returncode != 0:
        rootfs = subprocess.run(
            ["mmdebstrap", "--variant=apt", "--include=python3,python3-venv,python-is-python3,ca-certificates",
             "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", "bookworm", "-"],
            capture_output=True, timeout=BUILD_SECONDS, check=True).stdout
        subprocess.run([*PODMAN, "import", "-", BASE], input=rootfs, capture_output=True, timeout=120,
                       check=True)
    volumes = ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if Path(CA_BUNDLE).exists() else []
    run("build", "--format", "docker", "--build-arg", f"BASE={BASE}", *LIMITS, *volumes, "-t", IMAGE,
        str(ROOT), timeout=BUILD_SECONDS)
    yield IMAGE


@pytest.fixture(name="start")
def _start(image: str) -> Iterator:
    """Start a container of the image (detached, on the host's network); removed afterwards."""
    started: list[str] = []

    def start(**env: str) -> str:
        variables = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
        container = run("run", "-d", *LIMITS, "--network", "host", *variables, image).stdout.strip()
        started.append(container)
        return container

    yield start
    for container in started:
        run("rm", "-f", container, check=False)


@pytest.mark.timeout(BUILD_SECONDS + 120)
def test_the_image_serves_an_export_as_a_non_root_user_and_is_healthy(
        start, image: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The container started with a token and a HubSpot to read (the sandbox, on the host)
    answers /health and an export, runs as the image's non-root user, and its HEALTHCHECK
    reports healthy. The image's size is reported."""
    sandbox = Sandbox(contacts=100, seed=5)
    with SandboxServer(sandbox) as server:
        port = free_port()
        container = start(HUBSPOT_ACCESS_TOKEN=sandbox.token, HUBSPOT_BASE_URL=server.url,
                          HOST="127.0.0.1", PORT=str(port))
        url = f"http://127.0.0.1:{port}"
        logs = lambda: run("logs", container, check=False).stdout  # noqa: E731
        try:
            health = wait_until_up(url + "/health", _Running(container))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log: {logs()[-2000:]}") from None
        assert health.status_code == 200 and health.json()["sandbox"] is False, health.text
        export = requests.get(url + "/get_contacts", params={"limit": "3"}, timeout=60)
        assert export.status_code == 200 and len(export.json()) == 3, export.text[:300]
        assert run("exec", container, "id", "-u").stdout.strip() == "10001"
        assert run("healthcheck", "run", container, check=False).returncode == 0, logs()[-2000:]
    size = int(run("image", "inspect", image, "--format", "{{.Size}}").stdout)
    with capsys.disabled():
        print(f"\nthe image ({image}, on a Debian bookworm base) is {size / 1e6:.0f} MB")


@pytest.mark.timeout(BUILD_SECONDS + 120)
def test_the_image_refuses_to_start_without_a_token(start) -> None:
    """Started as a production container whose secret is missing, it exits at once with one
    line saying what to set, and serves nothing."""
    container = start()
    code = int(run("wait", container, timeout=60).stdout.strip())
    logged = run("logs", container)
    output = logged.stdout + logged.stderr
    assert code != 0, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "HUBSPOT_ACCESS_TOKEN is not set" in lines[0], output


class _Running:
    """A container, as `wait_until_up` asks a process whether it still runs."""

    def __init__(self, container: str) -> None:
        self._container = container
        self.returncode: int | None = None

    def poll(self) -> int | None:
        state = run("inspect", self._container, "--format", "{{.State.Running}} {{.State.ExitCode}}",
                    check=False).stdout.split()
        if state and state[0] == "false":
            self.returncode = int(state[1])
        return self.returncode
