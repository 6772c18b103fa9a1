"""The contract as reviewers use it: openapi.yaml lints clean under the project's rules,
the lint and the breaking-change check fail on the mistakes they exist for, and the HTML
reference builds. Needs the Node tools: `npm ci --prefix contract` (tox runs it)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "contract"
BIN = CONTRACT / "node_modules" / ".bin"
SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text())
# No usage reports, update checks or banners from the tools: CI is offline and quiet.
QUIET = {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
         "OPTIC_TELEMETRY_LEVEL": "off", "NO_UPDATE_NOTIFIER": "1"}


@pytest.fixture(scope="module", autouse=True)
def _tools_installed() -> None:
    assert (BIN / "redocly").exists() and (BIN / "optic").exists(), (
        "the contract tools are not installed: run `npm ci --prefix contract`")


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=CONTRACT, text=True,
                          capture_output=True, env={**os.environ, **QUIET}, timeout=300)


def lint(spec: Path) -> dict[str, Any]:
    """Redocly's findings on ``spec`` under contract/redocly.yaml, and its exit status."""
    result = run(BIN / "redocly", "lint", "--config", "redocly.yaml", "--format=json", spec)
    report = json.loads(result.stdout)
    report["returncode"] = result.returncode
    return report


def variant(tmp_path: Path, change: Callable[[dict], None], name: str = "openapi.yaml") -> Path:
    """A copy of openapi.yaml with ``change`` applied, written to tmp_path."""
    spec = copy.deepcopy(SPEC)
    change(spec)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def get_contacts(spec: dict) -> dict:
    return spec["paths"]["/get_contacts"]["get"]


def limit(spec: dict) -> dict:
    """`limit`, which the exports share as a component."""
    return spec["components"]["parameters"]["Limit"]


def is_limit(parameter: dict) -> bool:
    return parameter.get("$ref") == "#/components/parameters/Limit" or parameter.get("name") == "limit"


class TestLint:
    def test_openapi_yaml_has_no_finding(self) -> None:
        """openapi.yaml passes Redocly's recommended ruleset and the project's rules with
        no error and no warning."""
        report = lint(ROOT / "openapi.yaml")
        findings = [(p["ruleId"], p["severity"], p["location"][0]["pointer"], p["message"])
                    for p in report["problems"]]
        assert not findings and report["returncode"] == 0, findings

    @pytest.mark.parametrize("rule, change", [
        ("operation-description", lambda s: get_contacts(s).pop("description")),
        ("operation-operationId", lambda s: s["paths"]["/health"]["get"].pop("operationId")),
        ("parameter-description", lambda s: limit(s).pop("description")),
        ("rule/parameter-example", lambda s: limit(s).pop("example")),
        ("rule/problem-json-only", lambda s: get_contacts(s)["responses"].update(
            {"429": {"description": "Too many", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Problem"}}}}})),
        ("rule/problem-schema", lambda s: get_contacts(s)["responses"].update(
            {"429": {"description": "Too many", "content": {"application/problem+json": {
                "schema": {"type": "object"}}}}})),
        ("project/no-inline-copy-of-component", lambda s: get_contacts(s)["responses"]["200"][
            "content"]["application/json"]["schema"].update(
                items=copy.deepcopy(s["components"]["schemas"]["ContactEntity"]))),
        ("rule/response-example", lambda s: s["paths"]["/health"]["get"]["responses"]["200"][
            "content"]["application/json"].pop("example")),
        ("no-invalid-media-type-examples", lambda s: get_contacts(s)["responses"]["200"][
            "content"]["application/json"]["example"][0].update(_updated="yesterday")),
    ])
    def test_a_broken_rule_fails_the_lint(self, tmp_path: Path, rule: str,
                                          change: Callable[[dict], None]) -> None:
        """Each project rule is enforced: a spec that breaks it fails the lint (so CI)
        with that rule named."""
        report = lint(variant(tmp_path, change))
        rules = {p["ruleId"] for p in report["problems"] if p["severity"] == "error"}
        assert report["returncode"] != 0 and rule in rules, (report["returncode"], rules)


def check_breaking(spec: Path, changelog: Path) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, CONTRACT / "check_breaking.py", spec, "--changelog", changelog)


def with_version(version: str) -> Callable[[dict], None]:
    def change(spec: dict) -> None:
        spec["info"]["version"] = version
    return change


def both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(spec: dict) -> None:
        for one in changes:
            one(spec)
    return change


def drop_limit(spec: dict) -> None:
    operation = get_contacts(spec)
    operation["parameters"] = [p for p in operation["parameters"] if not is_limit(p)]


def add_optional_parameter(spec: dict) -> None:
    get_contacts(spec)["parameters"].append({
        "name": "fields", "in": "query", "required": False, "example": "email",
        "description": "Only these properties.", "schema": {"type": "string"}})


class TestBreakingChangeCheck:
    RELEASED = "0.1.0"  # the last release, contract/released/openapi-0.1.0.yaml

    @pytest.fixture(name="changelog")
    def _changelog(self, tmp_path: Path) -> Path:
        path = tmp_path / "CHANGELOG.md"
        path.write_text("# Changelog\n\n## 9.0.0\n\n## 0.9.0\n\n## 0.1.0\n")
        return path

    def test_openapi_yaml_is_announced(self) -> None:
        """The contract on this branch changes nothing it does not announce: its version,
        its changelog section and its major part fit what changed since the release."""
        result = check_breaking(ROOT / "openapi.yaml", ROOT / "CHANGELOG.md")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_removing_a_parameter_without_a_major_version_fails(self, tmp_path: Path,
                                                                changelog: Path) -> None:
        """Removing `limit` breaks every pipe that pages with it: with only a minor version
        step the check fails, names the change and points to the changelog."""
        result = check_breaking(variant(tmp_path, both(drop_limit, with_version("0.9.0"))),
                                changelog)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "query parameter 'limit' removed" in result.stdout, result.stdout
        assert "NOT ANNOUNCED: breaking changes without a new major version" in result.stdout
        assert "See CHANGELOG.md" in result.stdout, result.stdout

    def test_a_narrowed_parameter_without_a_major_version_fails(self, tmp_path: Path,
                                                                changelog: Path) -> None:
        """Optic's own rules count too: `limit` turned into a string breaks callers."""
        def narrow(spec: dict) -> None:
            limit(spec).update(schema={"type": "string"}, example="10")
        result = check_breaking(variant(tmp_path, both(narrow, with_version("0.9.0"))), changelog)
        assert result.returncode == 1 and "prevent query parameters type changes" in result.stdout, (
            result.stdout + result.stderr)

    def test_removing_a_parameter_with_a_major_version_passes(self, tmp_path: Path,
                                                              changelog: Path) -> None:
        """A breaking change announced by a new major version passes, its summary printed."""
        result = check_breaking(variant(tmp_path, both(drop_limit, with_version("9.0.0"))),
                                changelog)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "query parameter limit: removed" in result.stdout, result.stdout

    def test_an_optional_parameter_with_a_minor_version_passes(self, tmp_path: Path,
                                                               changelog: Path) -> None:
        """Adding an optional parameter is compatible: a minor version step is enough."""
        result = check_breaking(
            variant(tmp_path, both(add_optional_parameter, with_version("0.9.0"))), changelog)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "query parameter fields: added" in result.stdout, result.stdout

    @pytest.mark.parametrize("version, says", [
        (RELEASED, "info.version is 0.1.0: raise it"),
        ("0.8.0", "CHANGELOG.md has no section '## 0.8.0'"),
    ])
    def test_a_compatible_change_must_still_be_announced(self, tmp_path: Path, changelog: Path,
                                                         version: str, says: str) -> None:
        """Any change raises info.version and gets a changelog section, compatible or not."""
        result = check_breaking(
            variant(tmp_path, both(add_optional_parameter, with_version(version))), changelog)
        assert result.returncode == 1 and says in result.stdout, result.stdout + result.stderr


def test_the_html_reference_builds() -> None:
    """`npm run --prefix contract reference` (the README's command) builds one
    self-contained HTML file from openapi.yaml, contract/build/reference.html, with every
    operation and the examples in it."""
    out = CONTRACT / "build" / "reference.html"
    out.unlink(missing_ok=True)
    result = run("npm", "run", "--silent", "reference")
    assert result.returncode == 0, result.stdout + result.stderr
    html = out.read_text()
    for operation in SPEC["paths"].values():
        assert operation["get"]["operationId"] in html, operation["get"]["operationId"]
    assert "HubSpot refused the access token" in html, "the problem examples are missing"
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", html), (
        "the reference loads code from the network: it must work offline")
