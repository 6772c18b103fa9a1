"""Logging to stdout (Sesam shows a microservice's stdout): one JSON object per line by
default, plain text on request, with the HubSpot token redacted from every record."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from .redact import Redactor

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


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
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
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
