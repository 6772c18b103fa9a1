"""Logging to stdout (Sesam shows a microservice's stdout): one JSON object per line by
default, plain text on request, with the HubSpot token redacted from every record."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
REDACTED = "[REDACTED]"


class RedactSecret(logging.Filter):
    """Replaces a secret wherever it would be written: message, arguments and extras."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._secret in message:
            record.msg, record.args = message.replace(self._secret, REDACTED), None
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and self._secret in value:
                setattr(record, name, value.replace(self._secret, REDACTED))
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
