"""Connexion's parameter validation, with messages fit to send back."""

from __future__ import annotations

import re
from typing import Any

from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.datastructures import QueryParams

Parameter = dict[str, Any]  # an operation's parameter, as the spec declares it


class NamedParameterValidator(ParameterValidator):  # type: ignore[misc]  # Connexion is untyped
    """Connexion's parameter validation, with messages that name the parameter and do not
    echo the schema or an unbounded value back to the caller."""

    def validate_query_parameter(self, param: Parameter, request: Any) -> str | None:
        # Connexion would quietly keep the last of a repeated scalar parameter.
        count = len(QueryParams(request.scope["query_string"]).getlist(param["name"]))
        if count > 1 and param.get("schema", {}).get("type") != "array":
            return (f"query parameter '{param['name']}' is given {count} times: give it "
                    "once")
        refusal: str | None = super().validate_query_parameter(param, request)
        return refusal

    @staticmethod
    def validate_parameter(parameter_type: str, value: Any, param: Parameter,
                           param_name: str | None = None) -> str | None:
        if value is None:
            refusal: str | None = ParameterValidator.validate_parameter(
                parameter_type, value, param, param_name)
            return refusal
        try:
            Draft4Validator(param.get("schema", param),
                            format_checker=Draft4Validator.FORMAT_CHECKER).validate(value)
            # A pattern in the spec is ECMA-262, where `^…$` is the whole value; Python's
            # search would accept a trailing newline after it.
            pattern = param.get("schema", param).get("pattern")
            if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
                raise ValidationError("does not match", validator="pattern")
        except ValidationError as exc:
            if exc.validator == "pattern":
                hint = param.get("x-format-hint", "the format the API description gives")
                reason = f"{str(value)[:80]!r} is not {hint}"
            else:
                reason = exc.message if len(exc.message) <= 160 else exc.message[:150] + "..."
            return f"{parameter_type} parameter '{param['name']}' is invalid: {reason}"
        return None
