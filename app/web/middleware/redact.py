"""The token never leaves in an answer: every header and body is redacted on its way out."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...redact import Redactor


class RedactResponses:
    """ASGI middleware: the secrets never leave in a header or body of any answer.

    A body whose length is announced (problem+json, metrics, the spec) is redacted whole
    and its Content-Length corrected. A streamed body is redacted chunk by chunk, holding
    back the last few bytes of each chunk until the next one, so that a secret split
    across two chunks is caught too; the stream stays a stream."""

    def __init__(self, app: ASGIApp, redactor: Redactor) -> None:
        self._app = app
        self._redactor = redactor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._redactor:
            await self._app(scope, receive, send)
            return
        redactor = self._redactor
        start: Message | None = None
        pending = b""  # a streamed body's held-back tail, or an announced body so far

        async def redacting(message: Message) -> None:
            nonlocal start, pending
            if message["type"] == "http.response.start":
                headers = [(name, redactor.data(value)) for name, value in message["headers"]]
                start = {**message, "headers": headers}
                if not any(name.lower() == b"content-length" for name, _ in headers):
                    await send(start)
                    start = None
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            more = message.get("more_body", False)
            data = redactor.data(pending + message.get("body", b""))
            if start is not None:  # announced length: send once complete
                pending = data
                if more:
                    return
                headers = [(n, v) for n, v in start["headers"] if n.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length",
                                                             str(len(data)).encode())]})
                start = None
                await send({"type": "http.response.body", "body": data})
                return
            cut = max(len(data) - redactor.reach + 1, 0) if more else len(data)
            pending = data[cut:]
            await send({**message, "body": data[:cut]})

        await self._app(scope, receive, redacting)
