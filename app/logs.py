"""Logging to stdout (Sesam shows a microservice's stdout): one JSON object per line by
default, plain text on request, both with every field of a record, with the HubSpot token
redacted from every record and no terminal escapes."""

from __future__ import annotations

import json
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from .redact import Redactor

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What every record has; the rest are a record's own fields (the `extra` of its call).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# uvicorn's copy of its message with terminal colours: noise in a log file.
_COLOURED = "color_message"


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, then the record's own fields as ``name=value`` (a value with spaces or
    quotes as a JSON string), so a plain line says as much as a JSON one."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = {name: value for name, value in vars(record).items() if name not in _STANDARD}
        return " ".join([super().formatMessage(record),
                         *(f"{name}={_plain(value)}" for name, value in fields.items())])


def _plain(value: object) -> str:
    text = str(value)
    return text if text and not any(c.isspace() or c in "\"=" for c in text) else json.dumps(text)


class DropColours(logging.Filter):
    """Removes uvicorn's coloured copy of its message from every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop(_COLOURED, None)
        return True


class RedactSecret(logging.Filter):
    """Replaces a secret wherever it would be written: message, arguments and extras."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._redactor = Redactor(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redactor.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for name, value in list(vars(record).items()):
            if isinstance(value, str):
                setattr(record, name, self._redactor.text(value))
        return True


def configure(level: str, fmt: str, secret: str | None) -> None:
    """Send every logger (ours, uvicorn's, urllib3's) to stdout in one format."""
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    handler.addFilter(DropColours())
    if secret:
        handler.addFilter(RedactSecret(secret))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The rate limiter announces every bucket it makes at INFO: noise for an operator.
    logging.getLogger("pyrate_limiter").setLevel(max(logging.WARNING, root.level))
