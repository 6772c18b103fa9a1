"""The contract: Schemathesis generates requests from openapi.yaml, valid and invalid, and
every answer of the service (with the sandbox behind it) must conform to the spec, with
no 5xx and every invalid request refused."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.sync import InvalidSince, parse_since
from app.web import create_app
from app.web.validation import NamedParameterValidator
from sandbox import Sandbox, SandboxServer

# Schemathesis needs the app when the module loads (its fixture loader fails on pytest 9.2),
# so the sandbox starts here; the module fixture below stops it.
_sandbox = Sandbox(contacts=250, seed=5, now_ms=1717200000000, custom_properties=3)
_server = SandboxServer(_sandbox).start()
_settings = Settings(token=_sandbox.token, base_url=_server.url, settle_seconds=5,
                     search_rate_per_second=100, general_rate_per_10s=1000)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_settings))


MIN_CASES = 1000  # generated requests per run, across all operations
_cases: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _stop_sandbox():
    yield
    _server.stop()
    assert len(_cases) >= MIN_CASES, f"Schemathesis sent only {len(_cases)} requests"


@pytest.mark.timeout(600)  # Schemathesis runs hundreds of requests; about a minute under load
@schema.parametrize()
def test_every_answer_conforms(case) -> None:
    """Any request the spec allows is answered 200 by a conforming body; any it forbids
    is refused with a 400 problem; nothing produces a server error. All of Schemathesis's
    checks run, over at least MIN_CASES generated requests (asserted at module teardown)."""
    _cases.append(case.operation.label)
    case.call_and_validate()


@functools.cache
def _since_parameter() -> dict:
    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "openapi.yaml").read_text())
    return spec["components"]["parameters"]["Since"]


def _since_pattern() -> str:
    return _since_parameter()["schema"]["pattern"]


@pytest.mark.timeout(300)  # 2,000 examples
@settings(max_examples=2000, deadline=None)
@given(st.from_regex(_since_pattern(), fullmatch=True))
def test_spec_and_service_agree_on_since(value: str) -> None:
    """Every `since` the spec's pattern admits is one the service accepts: the contract
    neither promises more nor less than the code does."""
    assume(len(value) <= 64)
    parse_since(value)


@settings(max_examples=500, deadline=None)
@given(st.from_regex(_since_pattern(), fullmatch=True),
       st.sampled_from(["\n", "\r\n", " ", "\t", "\x00", "\u2028"]), st.booleans())
def test_spec_and_service_agree_on_the_whole_value(value: str, extra: str, before: bool) -> None:
    """A `since` the pattern admits, with a newline or white space before or after it, is
    refused both by the service's reading of the spec's pattern (ECMA-262: `$` is the end
    of the value, where Python's would allow a newline) and by the parser."""
    padded = extra + value if before else value + extra
    error = NamedParameterValidator.validate_parameter("query", padded, _since_parameter())
    assert error and "since" in error, f"the spec's pattern admitted {padded!r}"
    with pytest.raises(InvalidSince):
        parse_since(padded)
