"""Serving a Sandbox over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .admin import handle_admin
from .common import Request
from .portal import Sandbox


def _decode_json(raw: bytes) -> tuple[Any, bool]:
    """(payload, valid): an empty body is a valid None."""
    if not raw:
        return None, True
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


def _chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


_ENDLESS_CHUNK = _chunk(b'{"id": "1"}, ' * 5000)  # 65 KB of an endless list of results


class _Counted:
    """A handler's output that tells the sandbox how many bytes went out."""

    def __init__(self, out: Any, sandbox: Sandbox) -> None:
        self._out = out
        self._sandbox = sandbox

    def write(self, data: bytes) -> int:
        # Counted before it goes out: a client may read it before the write returns.
        self._sandbox.count_bytes(len(data))
        return int(self._out.write(data) or 0)

    def flush(self) -> None:
        self._out.flush()


class _Trickled:
    """A handler's output that writes one byte every ``seconds`` (a "trickle" fault)."""

    def __init__(self, out: Any, seconds: float) -> None:
        self._out = out
        self._seconds = seconds

    def write(self, data: bytes) -> int:
        for index in range(len(data)):
            self._out.write(data[index:index + 1])
            time.sleep(self._seconds)
        return len(data)

    def flush(self) -> None:
        self._out.flush()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    server_version = "HubSpotSandbox/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go in separate writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks would drown in request lines."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header is HubSpot's "now" for the service, so it follows the sandbox clock.
        return formatdate(self.server.sandbox.date_ms() / 1000, usegmt=True)

    def _serve(self) -> None:
        plain = self.wfile  # wrapped for one answer at most, never for the next
        try:
            self._answer()
        finally:
            self.wfile = plain

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload, valid_json = _decode_json(self.rfile.read(length) if length else b"")
        target = urlsplit(self.path)
        sandbox = self.server.sandbox
        if target.path.startswith("/_sandbox/reference/"):
            reply = sandbox.reference.handle_admin(self.command, target.path,
                                                   payload if isinstance(payload, dict) else {})
            delivery = None
        elif target.path.startswith("/_sandbox/"):
            reply = handle_admin(sandbox, self.command, target.path, payload, valid_json,
                                 parse_qs(target.query))
            delivery = None
        else:
            request = Request(
                self.command, self.path, target.path, parse_qs(target.query, keep_blank_values=True),
                self.headers.get("Authorization"), payload, valid_json, self.server.url,
            )
            reply, delivery = sandbox.handle_api(request)
            self.wfile = _Counted(self.wfile, sandbox)
            if delivery is not None and delivery.kind == "trickle":
                self.wfile = _Trickled(self.wfile, delivery.seconds)
        kind = delivery.kind if delivery is not None else None
        if kind == "endless":
            self._write_endless()
            return
        if reply.text is not None:
            data = reply.text.encode()
        else:
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
        if delivery is not None and kind == "huge":
            data = delivery.huge_body()
        elif delivery is not None and kind == "raw":
            data = delivery.raw.encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, str(value))
        chunked = reply.headers.get("Transfer-Encoding") == "chunked"
        if reply.status != 204:
            if "Content-Type" not in reply.headers:
                self.send_header("Content-Type", "application/json;charset=utf-8")
            if not chunked:
                self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if chunked:
            self.wfile.write(_chunk(data) + _chunk(b""))
        elif kind == "close":
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            self.wfile.write(data)

    def _write_endless(self) -> None:
        """A 200 whose chunked body goes on until the client (or the server) hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(_chunk(b'{"results": ['))
        while True:  # ends with the ConnectionError of a write to a client that left
            self.wfile.write(_ENDLESS_CHUNK)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sandbox: Sandbox, port: int) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name, which can stall offline.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections, so a stopped server stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up (timeouts, cut connections) are expected here, not errors.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class SandboxServer:
    """Serves a Sandbox over HTTP on 127.0.0.1 (never 0.0.0.0) in a daemon thread."""

    def __init__(self, sandbox: Sandbox, port: int = 0) -> None:
        self.sandbox = sandbox
        self.url = ""
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("the sandbox server is already running")
        self._httpd = _Server(self.sandbox, self._port)
        self.url = self._httpd.url
        # A short poll interval keeps stop() quick; tests start many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="hubspot-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

