"""The layers of the service package, as docs/design.md draws them: each package imports only
those below it, the HubSpot layer knows no web framework, and the product never imports the
sandbox but where `--sandbox` asks for it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
# What each part of app/ may import of app/ and of the web framework.
LAYERS = {
    "web": {"web", "sync", "hubspot", "base", "connexion", "starlette", "uvicorn"},
    "sync": {"sync", "hubspot", "base"},
    "hubspot": {"hubspot", "base"},
    "base": {"base"},
}
FRAMEWORKS = ("connexion", "starlette", "uvicorn")


def layer_of(module: str) -> str:
    """The layer of a module of app/ by its dotted name (``app.sync.walk`` -> ``sync``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "base"


def imports(path: Path) -> set[str]:
    """The absolute names of the modules a file of app/ imports, anywhere in it."""
    module = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0]  # of app/x/__init__.py too: app.x
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                found.add(node.module or "")
    return found


def kind_of(name: str) -> str | None:
    """What an imported name counts as for the layers: a layer of app/, a web framework,
    or None (the standard library and other libraries)."""
    if name == "app" or name.startswith("app."):
        return layer_of(name)
    top = name.split(".")[0]
    return top if top in FRAMEWORKS else None


MODULES = sorted(path for path in APP.rglob("*.py") if path.name != "__main__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_a_module_imports_only_its_layer_and_those_below(path: Path) -> None:
    """web may use sync and hubspot, sync may use hubspot, hubspot only what lies beneath
    (configuration, object types, timestamps, redaction, logs, metrics); only web knows the
    web framework."""
    layer = layer_of(".".join(path.relative_to(APP.parent).with_suffix("").parts))
    allowed = LAYERS[layer]
    wrong = sorted(name for name in imports(path) if (kind := kind_of(name)) is not None and kind not in allowed)
    assert not wrong, f"{path.relative_to(APP)} ({layer}) imports {wrong}"


def test_the_product_imports_the_sandbox_only_when_asked() -> None:
    """No module of app/ imports the sandbox, but `python -m app --sandbox`'s own branch."""
    users = sorted(str(path.relative_to(APP)) for path in APP.rglob("*.py")
                   if any(name == "sandbox" or name.startswith("sandbox.") for name in imports(path)))
    assert users == ["__main__.py"], users
    assert not (APP / "sandbox").exists(), "a sandbox inside the service package"
