"""Fails when openapi.yaml breaks the pipes built on the last released contract without
announcing it, and prints what changed for the reviewer.

The last release is the highest version among contract/released/openapi-<version>.yaml,
each a copy of openapi.yaml as it was released. Optic compares that copy with openapi.yaml
and judges the change with its breaking-changes ruleset (contract/optic.dev.yml). On top of
it, a removed query parameter counts as breaking here: the service refuses parameters it
does not know with a 400, so every pipe still sending one would fail.

A breaking change passes only with a new major `info.version`. Whenever the contract
differs from the release, `info.version` must be greater, and CHANGELOG.md must have a
section for it.

    python contract/check_breaking.py [SPEC] [--released DIR] [--changelog FILE]

Exit status: 0 fine, 1 the change is not announced as it must be, 2 the check could not run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

CONTRACT = Path(__file__).resolve().parent
ROOT = CONTRACT.parent
OPTIC = CONTRACT / "node_modules" / ".bin" / "optic"
RELEASE_NAME = re.compile(r"^openapi-(?P<version>.+)\.yaml$")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Optic's anonymous usage reports and update checks: nothing to send from CI, and no network.
QUIET = {"OPTIC_TELEMETRY_LEVEL": "off", "NO_UPDATE_NOTIFIER": "1"}


class CheckError(Exception):
    """The check could not run (exit status 2)."""


def last_release(released: Path) -> tuple[Version, Path]:
    found = []
    for path in released.glob("openapi-*.yaml"):
        try:
            found.append((Version(RELEASE_NAME.match(path.name)["version"]), path))
        except InvalidVersion:
            raise CheckError(f"{path}: not a version in the name") from None
    if not found:
        raise CheckError(f"no released contract in {released} (openapi-<version>.yaml)")
    return max(found)


def spec_version(spec: dict, path: Path) -> Version:
    try:
        return Version(str(spec["info"]["version"]))
    except (KeyError, TypeError, InvalidVersion):
        raise CheckError(f"{path}: info.version is missing or not a version") from None


def optic(*args: str) -> subprocess.CompletedProcess[str]:
    if not OPTIC.exists():
        raise CheckError(f"{OPTIC} is missing: run `npm ci --prefix contract` first")
    return subprocess.run([str(OPTIC), "diff", *args, "--standard", "optic.dev.yml"],
                          cwd=CONTRACT, env={**os.environ, **QUIET}, text=True,
                          capture_output=True, timeout=300)


def query_parameters(spec: dict) -> set[tuple[str, str, str]]:
    """(method, path, name) of every query parameter, path-level ones included."""
    def resolve(node: dict) -> dict:
        while "$ref" in node:  # a local reference, e.g. #/components/parameters/Limit
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    found = set()
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method in METHODS:
                for parameter in map(resolve, [*item.get("parameters", []),
                                               *operation.get("parameters", [])]):
                    if parameter.get("in") == "query":
                        found.add((method.upper(), path, parameter["name"]))
    return found


def check(spec_path: Path, released: Path, changelog: Path) -> list[str]:
    """What is wrong with the change since the last release (nothing: an empty list)."""
    release, release_path = last_release(released)
    spec = yaml.safe_load(spec_path.read_text())
    released_spec = yaml.safe_load(release_path.read_text())
    version = spec_version(spec, spec_path)
    print(f"Contract {version} ({spec_path.name}) against the last release, {release} "
          f"({release_path.relative_to(CONTRACT)}):")
    if spec == released_spec:
        print("no change.")
        return []

    summary = optic(str(release_path), str(spec_path.resolve()), "--check")
    print(summary.stdout, summary.stderr, sep="", end="")
    # Optic exits 1 on a failed check and on its own errors alike; only a diff has this line.
    if summary.returncode not in (0, 1) or "Operations:" not in summary.stdout:
        raise CheckError(f"optic could not compare the contracts (exit status {summary.returncode})")
    breaking = ["Optic's breaking-changes rules failed (above)"] if summary.returncode else []
    breaking += [f"{method} {path}: query parameter '{name}' removed" for method, path, name
                 in sorted(query_parameters(released_spec) - query_parameters(spec))]

    problems = []
    if version <= release:
        problems.append(f"the contract changed since {release} but info.version is {version}: "
                        "raise it and say what changed in CHANGELOG.md")
    if breaking and version.major <= release.major:
        problems.append(f"breaking changes without a new major version (released {release}, "
                        f"now {version}): " + "; ".join(breaking))
    if not re.search(rf"^## \[?{re.escape(str(version))}\]?(\s|$)", changelog.read_text(), re.M):
        problems.append(f"{changelog.name} has no section '## {version}'")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", nargs="?", type=Path, default=ROOT / "openapi.yaml")
    parser.add_argument("--released", type=Path, default=CONTRACT / "released")
    parser.add_argument("--changelog", type=Path, default=ROOT / "CHANGELOG.md")
    args = parser.parse_args(argv)
    try:
        problems = check(args.spec, args.released, args.changelog)
    except CheckError as exc:
        print(f"check_breaking: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"NOT ANNOUNCED: {problem}. See {args.changelog.name} for how versions are kept.")
    if not problems:
        print("OK: every change is announced as it must be.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
