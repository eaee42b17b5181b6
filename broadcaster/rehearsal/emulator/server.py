"""The emulator on a local HTTP port: the request handler (read the call, dispatch it through
the platforms' route tables, act out a dropped connection), the inspection endpoints
(`GET /_emulator/posts`, `POST /_emulator/faults`), and `EmulatorServer`, which runs it all in
a background thread.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from broadcaster.rehearsal.emulator import faults
from broadcaster.rehearsal.emulator.routing import Request, Route, dispatch, first_route
from broadcaster.rehearsal.emulator.state import Emulator

log = logging.getLogger(__name__)


def _posts(req: Request) -> None:
    req.send(200, req.emulator.snapshot())


def _add_faults(req: Request) -> None:
    try:
        req.emulator.add_faults(req.json().get("spec", ""))
    except (ValueError, AttributeError) as exc:
        req.send(400, {"error": str(exc)})
        return
    req.send(200, {"ok": True})


INSPECTION = (
    Route("GET", r"/_emulator/posts", _posts),
    Route("POST", r"/_emulator/faults", _add_faults),
)


def answer(req: Request) -> None:
    """Answer one call: an inspection endpoint, else the platform claiming the path."""
    if req.path.startswith("/_emulator"):
        if not first_route(INSPECTION, req):
            req.send(404, {"error": "unknown inspection endpoint"})
    elif not dispatch(req.emulator.platforms, req):
        req.send(404, {"error": f"no such endpoint: {req.method} {req.path}"})


class Exchange(BaseHTTPRequestHandler):
    """One HTTP connection to the emulator (keep-alive: one or more calls)."""

    server_version = "broadcaster-emulator"
    protocol_version = "HTTP/1.1"
    emulator: Emulator  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:  # uploads: TikTok's video chunks, YouTube's resumable upload
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer(Request(self, self.emulator, method, body))
        except faults.Drop as drop:
            self.close_connection = True
            faults.drop(self.connection, drop.kind, self.emulator.limits.hang_seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a timeout, a killed process) is normal here.
        log.debug("emulator: a client went away", exc_info=True)


class EmulatorServer:
    """The emulator on a local port, in a background thread. It binds 127.0.0.1 unless told
    otherwise: it accepts any token and must not be reachable from outside the machine."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, emulator: Emulator | None = None
    ) -> None:
        self.emulator = emulator or Emulator()
        handler = type("BoundExchange", (Exchange,), {"emulator": self.emulator})
        self.httpd = _Server((host, port), handler)
        # A short poll so that stop() returns at once (tests start and stop many emulators).
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="emulator", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EmulatorServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
