"""The sandbox's HTTP transport: a threading HTTP/1.1 server with keep-alive.

The handler reads a request, has the sandbox answer it and sends the answer, cutting the
body short when a transport fault (dropped connection, truncated body) is due. Requests
under ``/_sandbox/`` go to the control API and are answered to loopback clients only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

from prism_sandbox import faults as fault_kinds
from prism_sandbox.jobs import format_time
from prism_sandbox.response import ApiResponse

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from prism_sandbox.faults import Fault
    from prism_sandbox.jobs import Clock

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


class Application(Protocol):
    """What the transport serves (``Sandbox`` is one): answers, and a log of API requests."""

    clock: Clock

    def handle_api(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[ApiResponse, float, Fault | None, str | None]: ...

    def handle_control(self, method: str, path: str, body: bytes) -> ApiResponse: ...

    def log_request(self, entry: dict[str, Any]) -> None: ...


class SandboxHTTPServer(ThreadingHTTPServer):
    """Serves one sandbox; tracks open connections so ``stop()`` can close idle ones."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Application) -> None:
        self.sandbox = sandbox
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.connections_accepted = 0
        super().__init__(address, RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
            self.connections_accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up is the client's business, not a server error.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Wake handler threads waiting on idle keep-alive connections so they exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate sends: without TCP_NODELAY each response
    # waits ~40 ms for the client's delayed ACK (measured in benchmarks/).
    disable_nagle_algorithm = True
    server_version = "prism-sandbox"
    sys_version = ""
    timeout = 120
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default stderr access log (the sandbox keeps its own)."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            return b""
        return self.rfile.read(size) if size > 0 else b""

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        path = urllib.parse.urlsplit(self.path).path
        body = self._read_body()
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            if self.client_address[0] not in LOOPBACK_HOSTS:
                response = ApiResponse.error(403, "control endpoints are loopback only")
            else:
                response = sandbox.handle_control(method, path, body)
            self._send(response, None)
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        response, latency, transport, fault_kind = sandbox.handle_api(method, path, headers, body)
        if latency > 0:
            time.sleep(latency)
        total = sum(len(chunk) for chunk in response.chunks)
        # Logged before the answer goes out, so a client that has its answer always
        # finds the request in the log.
        sandbox.log_request(
            {
                "time": format_time(sandbox.clock.now()),
                "method": method,
                "path": path,
                "status": response.status,
                "team_id": response.team_id,
                "job_id": response.job_id,
                "bytes": total if transport is None else total // 2,
                "fault": fault_kind,
                "user_agent": headers.get("user-agent"),
            }
        )
        self._send(response, transport)

    def _send(self, response: ApiResponse, transport: Fault | None) -> None:
        total = sum(len(chunk) for chunk in response.chunks)
        self.send_response(response.status, HTTPStatus(response.status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(total))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if transport is None:
            try:
                for chunk in response.chunks:
                    self.wfile.write(chunk)
            except OSError:
                self.close_connection = True
            return
        cut = total // 2
        with contextlib.suppress(OSError):
            self.wfile.write(b"".join(_iter_prefix(response.chunks, cut)))
        self.close_connection = True
        try:
            if transport.kind == fault_kinds.DROP_CONNECTION:
                # Abortive close (RST): the client sees a reset, not an orderly end of stream.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                os.close(self.connection.detach())
            else:
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _iter_prefix(chunks: Sequence[bytes], size: int) -> Iterator[bytes]:
    remaining = size
    for chunk in chunks:
        if remaining <= 0:
            return
        piece = chunk[:remaining]
        remaining -= len(piece)
        yield piece
