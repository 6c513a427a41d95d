"""One hand-made HTTP server for the tests that need answers the sandbox never gives:
cut or unsized bodies, redirects, bodies held back mid-way."""

from __future__ import annotations

import threading
import time
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if t.TYPE_CHECKING:
    import io

    from typing_extensions import Self

GATE_TIMEOUT_SECONDS = 20.0
NOT_FOUND = b'{"message":"import job not found or expired"}'


def http_response(
    body: bytes,
    *,
    status: str = "200 OK",
    length: int | None = -1,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Raw HTTP/1.1 response bytes. ``length``: -1 the body's own, ``None`` no header."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if length is not None:
        head += f"Content-Length: {len(body) if length == -1 else length}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    return head.encode() + b"\r\n" + body


@dataclass
class Route:
    """Raw response bytes served in parts; ``gate`` (if set) must open before the second."""

    parts: list[bytes]
    gate: threading.Event | None = None
    gate_timed_out: bool = False
    #: A pause before each part after the first: a body trickled over time.
    pause_seconds: float = 0.0


@dataclass
class StubApi:
    """Serves ``routes`` by path; any other path gets the next of ``responses`` (the last
    one repeats), or a 404 when there are none. Counts the requests it answered."""

    responses: list[bytes] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)
    requests: int = 0

    def __post_init__(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.answer(self.path, self.wfile)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, path: str, out: io.BufferedIOBase) -> None:
        self.requests += 1
        route = self.routes.get(path)
        if route is None:
            fallback = (
                self.responses[min(self.requests - 1, len(self.responses) - 1)]
                if self.responses
                else http_response(NOT_FOUND, status="404 Not Found")
            )
            route = Route([fallback])
        first, *rest = route.parts
        try:
            out.write(first)
            out.flush()
            if route.gate is not None and not route.gate.wait(GATE_TIMEOUT_SECONDS):
                route.gate_timed_out = True
            for part in rest:
                time.sleep(route.pause_seconds)
                out.write(part)
                out.flush()
        except OSError:
            pass  # the client hung up: its business

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"
