"""Configuration from the environment: defaults, the tutorial's names, and clear refusals."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.config import DEFAULT_BASE_URL, VARIABLES, ConfigError, Variable, load, show


class TestDefaults:
    def test_an_empty_environment_is_the_defaults(self) -> None:
        """An empty environment loads: no token (`python -m app` then refuses to start unless
        given --sandbox, tests/test_deployment.py), HubSpot's public URL,
        port 5000 on loopback, every property, a settle time."""
        settings = load({})
        assert settings.token is None and settings.base_url == DEFAULT_BASE_URL
        assert (settings.host, settings.port) == ("127.0.0.1", 5000)
        assert settings.properties == () and settings.settle_seconds > 0

    def test_token_is_not_in_repr(self) -> None:
        """Printing the settings (e.g. in a traceback) does not show the token."""
        assert "pat-secret" not in repr(load({"HUBSPOT_ACCESS_TOKEN": "pat-secret"}))


class TestTutorialNames:
    def test_tutorial_variables_still_work(self) -> None:
        """The Sesam tutorial's system config keeps working: api-key is the token,
        base-url may end in /crm/v3, since-field names the modification property."""
        settings = load({"api-key": "pat-1", "base-url": "https://api.hubapi.com/crm/v3/",
                         "since-field": "lastmodifieddate", "since-operator": "GT", "port": "8080"})
        assert settings.token == "pat-1" and settings.base_url == "https://api.hubapi.com"
        assert settings.port == 8080 and settings.modified_property == "lastmodifieddate"
        assert settings.ignored == ("since-operator",), "since-operator must be reported as without effect"

    def test_new_names_win_over_old(self) -> None:
        """When both are set, the documented name wins."""
        assert load({"HUBSPOT_ACCESS_TOKEN": "new", "api-key": "old"}).token == "new"


class TestRefusals:
    @pytest.mark.parametrize("env,name", [
        ({"PORT": "http"}, "PORT"),
        ({"port": "70000"}, "port"),
        ({"HUBSPOT_BASE_URL": "api.hubapi.com"}, "HUBSPOT_BASE_URL"),
        ({"HUBSPOT_SEARCH_PAGE_SIZE": "500"}, "HUBSPOT_SEARCH_PAGE_SIZE"),
        ({"HUBSPOT_SEARCH_SETTLE_SECONDS": "-1"}, "HUBSPOT_SEARCH_SETTLE_SECONDS"),
        ({"HUBSPOT_PROPERTIES": "email, first name"}, "HUBSPOT_PROPERTIES"),
        ({"HUBSPOT_INCLUDE_DELETED": "maybe"}, "HUBSPOT_INCLUDE_DELETED"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"HUBSPOT_ACCESS_TOKEN": "two words"}, "HUBSPOT_ACCESS_TOKEN"),
    ])
    def test_invalid_value_names_the_variable(self, env: dict, name: str) -> None:
        """A bad value stops the service with one line naming the variable."""
        with pytest.raises(ConfigError) as caught:
            load(env)
        message = str(caught.value)
        assert message.startswith(name + "=") or message.startswith(name + " "), message
        assert "\n" not in message

    @pytest.mark.parametrize("name", ["HUBSPOT_ACCESS_TOKEN", "api-key", "AUTH_PASSWORD",
                                      "LOG_LEVEL", "HUBSPOT_PROPERTIES"])
    def test_an_empty_value_is_refused_not_taken_as_unset(self, name: str) -> None:
        """An empty (or blank) value is a deployment mistake, not "use the default": an
        empty token must not quietly serve the sandbox instead of the real portal."""
        for empty in ("", "  "):
            with pytest.raises(ConfigError, match=f"^{name} is empty"):
                load({name: empty, "AUTH_USERNAME": "sesam"} if name == "AUTH_PASSWORD"
                     else {name: empty})


README = Path(__file__).resolve().parent.parent / "README.md"


class _Recording(dict):
    """An empty environment that notes every variable the service looks up."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, name: str, default: Any = None) -> Any:
        self.asked.append(name)
        return default


def readme_rows() -> dict[str, tuple[list[str], str, str]]:
    """The README's configuration table: for each variable it names, (the names of its
    row, the default cell, the meaning cell)."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[list[str], str, str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("variable", "---"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        for name in names:
            rows[name] = (names, cells[1], cells[2])
    return rows


class TestReadmeTable:
    """The README's configuration table is config.py's, so the two cannot drift."""

    def test_every_variable_read_has_a_row_and_every_row_is_read(self) -> None:
        """Each variable the service reads (however config.py declares it) has a row, and
        the table names no variable the service does not read."""
        env = _Recording()
        load(env)
        read, documented = set(env.asked), set(readme_rows())
        assert read - documented == set(), f"variables without a README row: {read - documented}"
        assert documented - read == set(), f"README rows for unread variables: {documented - read}"

    @pytest.mark.parametrize("variable", VARIABLES, ids=lambda v: v.names[0])
    def test_row_gives_the_default_and_range(self, variable: Variable) -> None:
        """A variable's row lists its other names, starts its default cell with the default
        config.py uses, and gives a number's range as `low–high`."""
        names, default, meaning = readme_rows()[variable.names[0]]
        assert set(variable.names) <= set(names), f"{variable.names} not all in the row {names}"
        if isinstance(variable.default, (str, int, float)) and len(names) == len(variable.names):
            assert default.startswith(f"`{show(variable.default)}`"), (
                f"{variable.names[0]}: README default {default!r}, config.py "
                f"{show(variable.default)!r}")
        if variable.low is not None:
            span = f"{show(variable.low)}–{show(variable.high)}"
            assert meaning.startswith(span), (
                f"{variable.names[0]}: README says {meaning!r}, config.py's range is {span}")
