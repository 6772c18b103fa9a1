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
        ({"HUBSPOT_VALUES": "string"}, "HUBSPOT_VALUES"),
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
                                      "LOG_LEVEL", "HUBSPOT_PROPERTIES", "HUBSPOT_VALUES"])
    def test_an_empty_value_is_refused_not_taken_as_unset(self, name: str) -> None:
        """An empty (or blank) value is a deployment mistake, not "use the default": an
        empty token must not quietly serve the sandbox instead of the real portal."""
        for empty in ("", "  "):
            with pytest.raises(ConfigError, match=f"^{name} is empty"):
                load({name: empty, "AUTH_USERNAME": "sesam"} if name == "AUTH_PASSWORD"
                     else {name: empty})


PASSWORD = "s3cret-pw"
NUMBERS = [variable for variable in VARIABLES if variable.low is not None]


def whole(variable: Variable) -> bool:
    return variable.rule.startswith("a whole number")


def written(variable: Variable, value: float) -> str:
    """``value`` as a plain number of ``variable``'s kind: 5 for a whole number, 0.09 else."""
    return str(int(value)) if whole(variable) else f"{value:.2f}"


def step(variable: Variable) -> float:
    """The smallest difference the boundary tests make: 1 for a whole number, else 0.01."""
    return 1 if whole(variable) else 0.01


class TestStrictValues:
    @pytest.mark.parametrize("env", [
        {"PORT": "1_000"}, {"PORT": "\uff15\uff10\uff10\uff10"}, {"port": "\u0665\u0660\u0660\u0660"},
        {"HUBSPOT_SEARCH_PAGE_SIZE": "1_00"}, {"HUBSPOT_READ_TIMEOUT": "1e2"},
        {"HUBSPOT_READ_TIMEOUT": "1_0"}, {"HUBSPOT_MAX_RETRIES": "+3"},
        {"HUBSPOT_BASE_URL": "http://[::1"}, {"HUBSPOT_BASE_URL": "http://[::1]:99999"},
        {"HUBSPOT_BASE_URL": "http://localhost:99999"}, {"HUBSPOT_BASE_URL": "http://localhost:0"},
        {"HUBSPOT_BASE_URL": "http://:8080"}, {"HUBSPOT_BASE_URL": "https://:443/crm/v3"},
        {"HUBSPOT_BASE_URL": "http://[nothost]"}, {"base-url": "http://host:\uff18\uff10"},
    ], ids=repr)
    def test_a_number_is_ascii_digits_and_a_url_names_a_host_and_port(self, env: dict) -> None:
        """Numbers are plain ASCII digits (not 1_000, fullwidth or Arabic-Indic digits, 1e2
        or +3, which Python's int() and float() take), and a base URL names a host and a
        port from 1 to 65535; `http://[::1` is refused like any bad value, not a traceback
        when the service starts."""
        (name, value), = env.items()
        with pytest.raises(ConfigError) as caught:
            load(env)
        message = str(caught.value)
        assert message.startswith(f"{name}=") and "\n" not in message, f"{env}: {message}"

    @pytest.mark.parametrize("url", [f"http://sesam:{PASSWORD}@hubspot.example.com",
                                     f"https://:{PASSWORD}@api.hubapi.com/crm/v3",
                                     f"http://user:{PASSWORD}@[::1", f"http://u:p/{PASSWORD}@host"])
    @pytest.mark.parametrize("name", ["HUBSPOT_BASE_URL", "base-url"])
    def test_a_url_with_user_info_is_refused_without_showing_it(self, name: str, url: str) -> None:
        """User info in the base URL is refused, saying so, and the message does not quote
        the value (before, it was accepted: requests sent it as Basic auth instead of the
        token, and the service logged the password at start)."""
        with pytest.raises(ConfigError) as caught:
            load({name: url})
        message = str(caught.value)
        assert message.startswith(f"{name} is invalid: a URL with user info"), message
        assert PASSWORD not in message and "sesam" not in message, message

    @pytest.mark.parametrize("url,loaded", [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"), ("http://[::1]:1/", "http://[::1]:1"),
        ("https://hub_proxy:65535/base/crm/v3", "https://hub_proxy:65535/base"),
    ])
    def test_a_url_with_a_host_and_port_in_range_loads(self, url: str, loaded: str) -> None:
        """A host name, an IPv4 or bracketed IPv6 address, a port from 1 to 65535 and a path
        are still taken."""
        assert load({"HUBSPOT_BASE_URL": url}).base_url == loaded


class TestNumberBoundaries:
    """Every numeric variable's range, at its edges, generated from VARIABLES so that no
    variable and no range can drift from what is tested."""

    @pytest.mark.parametrize("variable", NUMBERS, ids=lambda v: v.names[0])
    def test_the_range_is_inclusive(self, variable: Variable) -> None:
        """The low and high ends load as that number."""
        for edge in (variable.low, variable.high):
            value = written(variable, edge)
            assert getattr(load({variable.names[0]: value}), variable.field) == pytest.approx(edge), (
                f"{variable.names[0]}={value}")

    @pytest.mark.parametrize("variable", NUMBERS, ids=lambda v: v.names[0])
    def test_just_outside_the_range_is_refused(self, variable: Variable) -> None:
        """One step below the low end and above the high end are refused, naming the
        variable and its range."""
        for outside in (variable.low - step(variable), variable.high + step(variable)):
            value = written(variable, outside)
            with pytest.raises(ConfigError) as caught:
                load({variable.names[0]: value})
            assert str(caught.value).startswith(f"{variable.names[0]}=") and variable.rule in str(caught.value), (
                f"{variable.names[0]}={value}: {caught.value}")

    @pytest.mark.parametrize("value,accepted", [("0", False), ("1", True), ("10", True), ("11", False)])
    def test_search_concurrency(self, value: str, accepted: bool) -> None:
        """HUBSPOT_SEARCH_CONCURRENCY is 1 to 10: 0 would start no search at all."""
        env = {"HUBSPOT_SEARCH_CONCURRENCY": value}
        if accepted:
            assert load(env).search_concurrency == int(value)
        else:
            with pytest.raises(ConfigError, match="^HUBSPOT_SEARCH_CONCURRENCY="):
                load(env)


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
