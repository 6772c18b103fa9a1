"""A HubSpot stand-in that misbehaves on purpose: in front of the sandbox, it echoes each
request's Authorization header into every field it answers with."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

MODES = ("forward", "error", "properties", "unusable", "old_clock")


@dataclass
class Echo:
    """What the stand-in does to search requests, after ``skip`` of them passed untouched.

    "forward": nothing. "error": answers ``status`` with the header as message,
    correlationId, category, subCategory, errors and context (and as the reason phrase;
    ``policy`` is the 429's policyName, the header unless given). "properties": the real
    answer with the header as the value of every property but the two the export keys on.
    "unusable": the real answer with the header as the first contact's modification time.
    "old_clock": the real answer with a Date header of 1970."""

    mode: str = "forward"
    status: int = 500
    policy: str | None = None
    skip: int = 0


class EchoingHubSpot:
    """The stand-in as an HTTP server; ``url`` is its base URL. Requests other than
    search are forwarded untouched."""

    def __init__(self, sandbox_url: str) -> None:
        self.echo = Echo()
        self.searches = 0
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                stand_in._serve(self, sandbox_url)

            do_GET = do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> EchoingHubSpot:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _applies(self, path: str) -> bool:
        if not path.endswith("/search"):
            return False
        with self._lock:
            self.searches += 1
            return self.echo.mode != "forward" and self.searches > self.echo.skip

    def _serve(self, handler: BaseHTTPRequestHandler, sandbox_url: str) -> None:
        auth = handler.headers.get("Authorization", "")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        echo = self.echo
        applies = self._applies(handler.path)
        if applies and echo.mode == "error":
            payload = {"status": "error", "message": auth, "correlationId": auth,
                       "category": auth, "subCategory": auth, "policyName": echo.policy or auth,
                       "errors": [{"message": auth, "code": auth, "context": {"auth": [auth]}}],
                       "context": {"auth": [auth]}}
            self._answer(handler, echo.status, json.dumps(payload).encode(), {}, reason=auth)
            return
        upstream = requests.request(
            handler.command, sandbox_url + handler.path, data=body, timeout=30,
            headers={"Authorization": auth, "Content-Type": "application/json"})
        data, headers = upstream.content, {"Date": upstream.headers.get("Date", "")}
        if applies:
            answer = upstream.json()
            results = answer.get("results", [])
            if echo.mode == "properties":
                for contact in results:
                    for name in contact["properties"]:
                        if name not in ("lastmodifieddate", "hs_object_id"):
                            contact["properties"][name] = auth
            elif echo.mode == "unusable" and results:
                results[0]["properties"]["lastmodifieddate"] = auth
            elif echo.mode == "old_clock":
                headers["Date"] = "Thu, 01 Jan 1970 00:00:00 GMT"
            data = json.dumps(answer).encode()
        self._answer(handler, upstream.status_code, data, headers)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, data: bytes,
                headers: dict[str, str], reason: str | None = None) -> None:
        handler.send_response_only(status, reason)
        for name, value in {**headers, "Content-Type": "application/json",
                            "Content-Length": str(len(data))}.items():
            if value:
                handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
