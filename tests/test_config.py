"""Configuration from the environment: defaults, the tutorial's names, and clear refusals."""

from __future__ import annotations

import pytest

from app.config import DEFAULT_BASE_URL, ConfigError, load


class TestDefaults:
    def test_no_token_means_sandbox(self) -> None:
        """An empty environment is valid: no token (the sandbox), HubSpot's public URL,
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
