"""Connexion's parameter validation, with messages fit to send back."""

from __future__ import annotations

import re

from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.datastructures import QueryParams


class NamedParameterValidator(ParameterValidator):
    """Connexion's parameter validation, with messages that name the parameter and do not
    echo the schema or an unbounded value back to the caller."""

    def validate_query_parameter(self, param, request):  # type: ignore[override]
        # Connexion would quietly keep the last of a repeated scalar parameter.
        count = len(QueryParams(request.scope["query_string"]).getlist(param["name"]))
        if count > 1 and param.get("schema", {}).get("type") != "array":
            return (f"query parameter '{param['name']}' is given {count} times: give it "
                    "once")
        return super().validate_query_parameter(param, request)

    @staticmethod
    def validate_parameter(parameter_type, value, param, param_name=None):  # type: ignore[override]
        if value is None:
            return ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
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
