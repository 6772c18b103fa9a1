"""Builds the ASGI application from openapi.yaml, the single source of truth."""

from __future__ import annotations

from pathlib import Path

import connexion
from connexion.resolver import Resolver
from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, ValidationError

from .config import Settings
from .export import Exporter
from .handlers import ContactsApi
from .hubspot import HubSpotClient

SPEC_DIR = Path(__file__).resolve().parent.parent  # openapi.yaml lives at the top level


class NamedParameterValidator(ParameterValidator):
    """Connexion's parameter validation, with messages that name the parameter and do not
    echo the schema or an unbounded value back to the caller."""

    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):  # type: ignore[override]
        if value is None:
            return ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        try:
            Draft4Validator(param.get("schema", param),
                            format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
        except ValidationError as exc:
            if exc.validator == "pattern":
                hint = param.get("x-format-hint", "the format the API description gives")
                reason = f"{str(value)[:80]!r} is not {hint}"
            else:
                reason = exc.message if len(exc.message) <= 160 else exc.message[:150] + "..."
            return f"{parameter_type} parameter '{param['name']}' is invalid: {reason}"
        return None


def create_app(settings: Settings, client: HubSpotClient, *, on_sandbox: bool = False) -> connexion.AsyncApp:
    """The service, serving exports from ``client``."""
    api = ContactsApi(Exporter(client, settings), on_sandbox=on_sandbox)
    app = connexion.AsyncApp(__name__, specification_dir=SPEC_DIR)
    app.add_api(
        "openapi.yaml",
        strict_validation=True,
        validate_responses=False,  # it would buffer the streamed body
        resolver=Resolver(function_resolver=api.resolve),
        validator_map={"parameter": NamedParameterValidator},
    )
    return app
