"""Connexion's parameter validation, with messages fit to send back."""

from __future__ import annotations

import re
from typing import Any

from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from starlette.datastructures import QueryParams

from ..redact import quote

Parameter = dict[str, Any]  # an operation's parameter, as the spec declares it

# What a number in a query is: ASCII digits, as the spec's examples write them. Connexion
# converts with int() and float(), which also take " 5", "+5", "5\n", "5_0" (50) and the
# digits of every other script; a value read one way here and another by a proxy or a log
# reader is a value to refuse.
PLAIN_NUMBERS = {"integer": re.compile(r"-?[0-9]+"), "number": re.compile(r"-?[0-9]+(\.[0-9]+)?")}
NUMBER_WORDS = {"integer": "a whole number in ASCII digits", "number": "a number in ASCII digits"}
SHOWN_CHARS = 80  # of a refused value, at most this much is quoted back (redacted first)


class NamedParameterValidator(ParameterValidator):  # type: ignore[misc]  # Connexion is untyped
    """Connexion's parameter validation, with messages that name the parameter and do not
    echo the schema or an unbounded value back to the caller."""

    def validate_query_parameter(self, param: Parameter, request: Any) -> str | None:
        # Connexion would quietly keep the last of a repeated scalar parameter.
        values = QueryParams(request.scope["query_string"]).getlist(param["name"])
        kind = param.get("schema", {}).get("type")
        if len(values) > 1 and kind != "array":
            return (f"query parameter '{param['name']}' is given {len(values)} times: give it "
                    "once")
        if values and kind in PLAIN_NUMBERS and not PLAIN_NUMBERS[kind].fullmatch(values[0]):
            return (f"query parameter '{param['name']}' is invalid: "
                    f"{quote(repr(values[0]), SHOWN_CHARS)} is not {NUMBER_WORDS[kind]}")
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
                reason = f"{quote(repr(str(value)), SHOWN_CHARS)} is not {hint}"
            else:
                reason = exc.message if len(exc.message) <= 160 else exc.message[:150] + "..."
            return f"{parameter_type} parameter '{param['name']}' is invalid: {reason}"
        return None
