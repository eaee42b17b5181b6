"""The daemon's side of `broadcaster status` on a Unix socket (runtime/status_socket.py says
where the socket is, and what is asked and answered)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broadcaster.core.logs import redact
from broadcaster.runtime.status_socket import (
    PATH_LIMIT,
    PROTOCOL,
    REQUEST,
    StatusUnavailable,
    digest,
    socket_path,
    to_wire,
)

log = logging.getLogger(__name__)


class StatusSocket:
    """The daemon's side: answers `status` on the socket for its database until `stop`.
    `report` makes the status (collect_status); `who` gives the instance's id and role."""

    def __init__(
        self,
        database_url: str,
        report: Callable[[], dict[str, Any]],
        who: Callable[[], tuple[str, str]],
    ) -> None:
        self.database_url = database_url
        self.report = report
        self.who = who
        self.path: Path | None = None
        self._inode: int | None = None
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Serve, unless the folder cannot be trusted or another daemon serves there already
        (logged; `status` then reads the database). Never raises."""
        try:
            path = socket_path(self.database_url, create=True)
            if path is None:
                return False
            if not self._claim(path):
                return False
            self._server = self._bind(path)
        except (StatusUnavailable, OSError) as exc:
            log.info("status socket not served (`broadcaster status` reads the database): %s", exc)
            return False
        self.path = path
        server = self._server
        self._thread = threading.Thread(
            # A short poll: stopping (at the daemon's exit) waits for one.
            target=lambda: server.serve_forever(poll_interval=0.1),
            name="status-socket",
            daemon=True,
        )
        self._thread.start()
        log.info("status served on %s", path)
        return True

    def _claim(self, path: Path) -> bool:
        """Whether `path` is free to serve on: absent, or a socket left by a daemon that died
        (removed here). A socket another live daemon answers on is left to it."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return True
        if not stat.S_ISSOCK(info.st_mode):
            raise StatusUnavailable(f"{path} exists and is not a socket: left alone")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            try:
                probe.connect(os.fspath(path))
            except ConnectionRefusedError:
                path.unlink(missing_ok=True)  # a daemon that was killed left it
                return True
            except OSError:
                pass
        log.info("status socket %s is served by another daemon: left to it", path)
        return False

    def _bind(self, path: Path) -> socketserver.UnixStreamServer:
        # Bound under a temporary name, made owner-only, then moved into place: no moment
        # where another user could connect to it.
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        if len(os.fsencode(temporary)) > PATH_LIMIT:
            raise StatusUnavailable(f"{temporary}: too long for a Unix socket")
        temporary.unlink(missing_ok=True)
        server = _Server(os.fspath(temporary), self)
        try:
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except OSError:
            server.server_close()
            temporary.unlink(missing_ok=True)
            raise
        self._inode = os.lstat(path).st_ino
        return server

    def answer(self) -> bytes:
        """The JSON line sent for one request: the status, or why it could not be read."""
        instance, role = self.who()
        body: dict[str, Any] = {
            "protocol": PROTOCOL,
            "database": digest(self.database_url),
            "pid": os.getpid(),
            "instance": instance,
            "role": role,
        }
        try:
            body["report"] = to_wire(self.report())
        except Exception as exc:  # the database down: say so, the command reads it itself
            log.warning("status socket: the status could not be read: %s", exc)
            first = str(exc).splitlines()[0][:300] if str(exc) else ""
            body["error"] = redact(f"{type(exc).__name__}: {first}")
        return json.dumps(body, ensure_ascii=False).encode() + b"\n"

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        path = self.path
        # Only our own socket: another daemon may have taken the name since.
        with contextlib.suppress(OSError):
            if path is not None and os.lstat(path).st_ino == self._inode:
                path.unlink()


class _Handler(socketserver.StreamRequestHandler):
    timeout = 5  # a client that connects and says nothing is dropped

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        try:
            request = self.rfile.readline(64)
        except OSError:
            return
        if request != REQUEST:
            return
        with contextlib.suppress(OSError):  # the asker gave up: nothing to do
            self.wfile.write(server.owner.answer())


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, address: str, owner: StatusSocket) -> None:
        self.owner = owner
        super().__init__(address, _Handler)
