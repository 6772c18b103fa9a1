"""What ships around the code: the start command, the Dockerfile and the Sesam examples."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import yaml
from connexion.json_schema import resolve_refs

from app.config import ConfigError, Settings, load
from app.object_types import STANDARD_NAMES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "sesam"
# What Sesam's documentation defines (docs.sesam.io: the microservice system, sources in
# general and their continuation flags, the json source).
SYSTEM_PROPERTIES = {"_id", "name", "type", "comment", "docker", "use_https", "verify_ssl", "username",
                     "password", "authentication", "connect_timeout", "read_timeout", "eager_load"}
DOCKER_PROPERTIES = {"image", "port", "username", "password", "memory", "cpu_quota", "cpu_period",
                     "cpuset_cpus", "environment", "hosts", "skip_pull", "pull_image_cron_expression"}
JSON_SOURCE_PROPERTIES = {"type", "comment", "system", "url", "supports_signalling", "page_size", "subset",
                          "headers", "supports_since", "is_since_comparable", "is_chronological"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> requests.Response:
    """GET ``url`` until the freshly started service answers (or fail, if it died)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return requests.get(url, timeout=60)
        except requests.ConnectionError:
            assert process.poll() is None, f"the service exited with {process.returncode}"
            assert time.monotonic() < deadline, f"the service did not start in {seconds} s"
            time.sleep(0.2)


class TestSesamExamples:
    def test_system_config_uses_only_variables_the_service_reads(self) -> None:
        """Every variable in the example system config is one the service reads (an
        invalid value for it is refused by name), and the port is the service's."""
        system = json.loads((EXAMPLES / "system.json").read_text())
        assert system["type"] == "system:microservice"
        assert system["docker"]["port"] == Settings().port
        for name in system["docker"]["environment"]:
            with pytest.raises(ConfigError, match=re.escape(name)):
                load({name: "not valid!"})

    def test_there_is_a_pipe_for_every_common_type_and_a_custom_object(self) -> None:
        """examples/sesam has a pipe per object type of release 0.1.0, one for leads and one for
        invoices (the newer types are read the same way; the README lists them), and one for
        a custom object."""
        urls = {json.loads(path.read_text())["source"].get("url", "").split("?")[0]
                for path in EXAMPLES.glob("pipe*.json")}
        common = [*STANDARD_NAMES[:STANDARD_NAMES.index("tasks") + 1], "leads", "invoices"]
        wanted = {f"objects/{name}" for name in common if name != "contacts"}
        assert wanted <= urls and "get_contacts" in urls, sorted(wanted - urls)
        assert any(re.fullmatch(r"objects/(2-\d+|p\d+_\w+)", url) for url in urls), "no custom object pipe"

    @pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("pipe*.json")
                                            if json.loads(p.read_text())["source"]["type"] == "json"))
    def test_pipes_call_a_documented_path_with_continuation(self, name: str) -> None:
        """Each example pipe reads a path of that system that the spec has, with parameters
        the spec accepts, with supports_since where the path takes `since` (and without it
        where it does not: the reference data's full runs); a chronological one has the
        flags page_size needs."""
        system = json.loads((EXAMPLES / "system.json").read_text())
        pipe = json.loads((EXAMPLES / name).read_text())
        source = pipe["source"]
        assert source["system"] == system["_id"]
        path, _, query = source["url"].partition("?")
        spec = resolve_refs(yaml.safe_load((ROOT / "openapi.yaml").read_text()))
        operation = documented(spec, "/" + path, parse_qs(query))
        assert operation is not None, f"{name}: {source['url']} is not a path and query the spec accepts"
        if not any(p["name"] == "since" for p in operation.get("parameters", [])):
            assert source.get("supports_since") is not True, f"{name}: the path takes no since"
            assert not {"page_size", "is_chronological", "is_since_comparable"} & set(source), name
            return
        assert source["supports_since"] is True and source.get("is_since_comparable", True)
        if "page_size" in source:
            assert source["is_chronological"] is True, "page_size needs is_chronological"
        undocumented = set(source) - JSON_SOURCE_PROPERTIES
        assert not undocumented, f"{name}: a json source has no {sorted(undocumented)}"

    @pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("pipe*.json")
                                            if json.loads(p.read_text())["source"]["type"] == "dataset"))
    def test_pipes_of_datasets_read_what_example_pipes_write(self, name: str) -> None:
        """A pipe that joins datasets (the enriched deals) reads and hops only to datasets the
        example pipes write (a pipe's sink dataset is its _id)."""
        written = {json.loads(p.read_text())["_id"] for p in EXAMPLES.glob("pipe*.json")}
        pipe = json.loads((EXAMPLES / name).read_text())
        named = {pipe["source"]["dataset"]} | {
            dataset.split()[0] for dataset in re.findall(r'"datasets": \[([^\]]*)\]', json.dumps(pipe))
            for dataset in json.loads(f"[{dataset}]")}
        assert len(named) > 1 and named <= written, f"{name}: {sorted(named - written)} no example pipe writes"

    def test_the_system_uses_only_what_sesam_documents(self) -> None:
        """Every property of the example system is one Sesam documents for a
        system:microservice, and verify_ssl is not set on a service spoken to in plain HTTP."""
        system = json.loads((EXAMPLES / "system.json").read_text())
        assert set(system) <= SYSTEM_PROPERTIES, sorted(set(system) - SYSTEM_PROPERTIES)
        assert set(system["docker"]) <= DOCKER_PROPERTIES, sorted(set(system["docker"]) - DOCKER_PROPERTIES)
        assert "verify_ssl" not in system or system.get("use_https") is True, system


def documented(spec: dict, path: str, query: dict[str, list[str]]) -> dict | None:
    """The GET operation of ``spec`` that serves ``path`` with ``query``, if its path
    parameters match their patterns and it takes every query parameter as given."""
    for template, item in spec["paths"].items():
        operation = item.get("get")
        names = re.findall(r"{(\w+)}", template)
        match = re.fullmatch(re.sub(r"{\w+}", "([^/]+)", template), path)
        if operation is None or match is None:
            continue
        parameters = {p["name"]: p for p in operation.get("parameters", [])}
        given = {**dict(zip(names, match.groups())), **{k: v[0] for k, v in query.items()}}
        if all(k in parameters and re.fullmatch(parameters[k]["schema"].get("pattern", ".*"), v)
               for k, v in given.items()):
            return operation
    return None


class TestDockerfile:
    def test_the_package_and_the_image_hold_the_service_only(self) -> None:
        """The wheel packages `app` and its subpackages only, and the image copies `app` and
        the spec only: the sandbox, the tests and the benchmarks stay in the checkout."""
        found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
        packages = [".".join(path.parent.relative_to(ROOT).parts) for path in ROOT.glob("*/**/__init__.py")
                    if ".venv" not in path.parts and ".tox" not in path.parts]
        packaged = sorted(p for p in packages if any(fnmatch(p, pattern) for pattern in found["include"]))
        assert "app" in packaged and "sandbox" in packages, packages
        assert all(p == "app" or p.startswith("app.") for p in packaged), packaged
        copied = re.findall(r"^COPY (?:--from=\S+ )?(\S+(?: \S+)*) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
        sources = {source for line in copied for source in line.split()}
        assert "app" in sources and not sources & {".", "sandbox", "tests", "bench"}, sources

    def test_hadolint_clean(self) -> None:
        """The Dockerfile passes hadolint (warnings count as failures)."""
        hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
        result = subprocess.run([hadolint, "--failure-threshold", "warning", "Dockerfile"],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_image_is_non_root_with_healthcheck_and_the_readme_start_command(self) -> None:
        """The image runs as a non-root user, checks /health, exposes the port and starts
        with `python -m app`, the command this suite runs below."""
        text = (ROOT / "Dockerfile").read_text()
        assert re.search(r"^USER (?!root|0\b)\S+", text, re.M), "no non-root USER"
        assert "HEALTHCHECK" in text and "/health" in text
        assert re.search(r"^EXPOSE 5000$", text, re.M)
        assert re.search(r'^CMD \["python", "-m", "app"\]$', text, re.M)
        assert "TOKEN" not in text, "no secret may be baked into the image"


class TestRelease:
    WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"

    def test_the_workflow_is_valid_and_publishes_the_image_on_a_version_tag(self) -> None:
        """The release workflow is valid under SchemaStore's schema for GitHub workflows, runs
        on a version tag only, and builds and pushes the Dockerfile on its default base (the
        official Python image)."""
        checker = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
        result = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows", str(self.WORKFLOW)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        workflow = yaml.safe_load(self.WORKFLOW.read_text())
        trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
        assert trigger == {"push": {"tags": ["v*"]}}, trigger
        steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
        (build,) = [step for step in steps if step.get("uses", "").startswith("docker/build-push-action@")]
        assert build["with"]["push"] is True and build["with"]["context"] == ".", build
        assert "build-args" not in build["with"], "the release builds on the Dockerfile's default base"


@pytest.fixture(name="started")
def _started():
    """Start `python -m app` as the image does, on loopback, and stop it afterwards."""
    processes: list[subprocess.Popen] = []

    def start(*args: str, **env: str) -> subprocess.Popen:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith("HUBSPOT_") and k not in ("api-key", "PORT", "port")}
        process = subprocess.Popen(
            [sys.executable, "-m", "app", *args], cwd=ROOT, env={**clean, "HOST": "127.0.0.1", **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


class TestStartCommand:
    def test_starts_on_the_sandbox_when_asked(self, started) -> None:
        """`python -m app --sandbox` (the quick start) serves the built-in sandbox, says so
        in its first log line, and /get_contacts returns contacts."""
        port = free_port()
        process = started("--sandbox", PORT=str(port), SANDBOX_CONTACTS="300")
        first_line = process.stdout.readline()
        assert "sandbox" in first_line.lower(), first_line
        assert "300 contacts" in first_line and "30 companies" in first_line and "cars" in first_line, (
            "the first line says what the sandbox holds per type: " + first_line)
        response = wait_until_up(f"http://127.0.0.1:{port}/get_contacts", process)
        assert response.status_code == 200, response.text[:300]
        contacts = response.json()
        assert len(contacts) > 200 and all("_updated" in c for c in contacts), len(contacts)

    @pytest.mark.parametrize("args,env,says", [
        ((), {}, "HUBSPOT_ACCESS_TOKEN is not set"),
        (("--sandbox",), {"HUBSPOT_ACCESS_TOKEN": "pat-na1-0000"}, "leave one of them out"),
    ])
    def test_no_token_and_no_sandbox_stops_with_one_line(self, started, args: tuple[str, ...],
                                                        env: dict[str, str], says: str) -> None:
        """Without a token the service never falls back to fake data: a production
        container whose secret is missing refuses to start, in one line saying what to set.
        A token and --sandbox together are refused the same way (which one was meant?)."""
        process = started(*args, **env)
        output, _ = process.communicate(timeout=30)
        assert process.returncode != 0, output
        assert output.strip().count("\n") == 0 and says in output, output
        assert "pat-na1-0000" not in output, "the token was repeated"

    def test_invalid_configuration_stops_with_one_line(self, started) -> None:
        """A bad variable stops the service at start with a one-line message naming it."""
        process = started(HUBSPOT_SEARCH_PAGE_SIZE="1000")
        output, _ = process.communicate(timeout=30)
        assert process.returncode != 0, output
        assert output.strip().count("\n") == 0 and "HUBSPOT_SEARCH_PAGE_SIZE" in output, output


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("pipe*.json")
                                        if json.loads(p.read_text())["source"]["type"] == "json"))
def test_every_example_pipe_reads_the_sandbox(name: str, service) -> None:
    """Each example pipe's URL answers on the sandbox, the custom object's placeholder too
    (it names the sandbox's own custom object), so a new user can try them all."""
    source = json.loads((EXAMPLES / name).read_text())["source"]
    # The records' exports take `limit`; the reference data (owners, pipelines, property
    # definitions) is read whole.
    limited = source["url"].startswith(("objects/", "get_contacts"))
    response = service.get("/" + source["url"], params={"limit": "1"} if limited else {})
    assert response.status_code == 200, f"{name}: {response.text[:300]}"
    assert len(response.json()) == 1 if limited else len(response.json()) >= 1, \
        f"{name}: {response.text[:300]}"
