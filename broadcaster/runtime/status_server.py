"""The daemon's side of `broadcaster status` on a Unix socket (runtime/status_socket.py says
where the socket is, whom it is trusted from, and what is asked and answered)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from broadcaster.core.logs import redact
from broadcaster.runtime.status_socket import (
    PROTOCOL,
    REQUEST,
    StatusUnavailable,
    Where,
    locate,
    to_wire,
)

log = logging.getLogger(__name__)

AT_ONCE = 4  # requests answered at the same time; more are closed at once
FRESH_FOR = 1.0  # seconds an answer is given again to whoever asks, instead of made anew
READ_WITHIN = 1.0  # seconds for a client to send its request before it is dropped
SEND_WITHIN = 5.0  # seconds for the answer to be taken by a client that stopped reading


class StatusSocket:
    """The daemon's side: answers `status` on the socket for its database until `stop`.
    `report` makes the status (collect_status); `who` gives the instance's id and role;
    `config_digest` is the digest of the configuration file the daemon was started with."""

    def __init__(
        self,
        database_url: str,
        config_digest: str,
        report: Callable[[], dict[str, Any]],
        who: Callable[[], tuple[str, str]],
    ) -> None:
        self.database_url = database_url
        self.config_digest = config_digest
        self.report = report
        self.who = who
        self.where: Where | None = None
        self._inode: int | None = None
        self._server: _Server | None = None
        # One answer made at a time, and given again for a second: askers in a loop cost
        # the night one status a second, not one each.
        self._making = threading.Lock()
        self._made: tuple[float, bytes] | None = None

    def start(self) -> bool:
        """Serve, unless the folder cannot be trusted or another daemon serves there already
        (logged; `status` then reads the database). Never raises."""
        try:
            where = locate(self.database_url, create=True)
            if where is None or not self._claim(where):
                return False
            server = self._bind(where)
        except (StatusUnavailable, OSError) as exc:
            log.info("status socket not served (`broadcaster status` reads the database): %s", exc)
            return False
        self.where, self._server = where, server
        threading.Thread(
            # A short poll: stopping (at the daemon's exit) waits for one.
            target=lambda: server.serve_forever(poll_interval=0.1),
            name="status-socket",
            daemon=True,
        ).start()
        log.info("status served on %s", where.path)
        return True

    def _claim(self, where: Where) -> bool:
        """Whether the socket's path is free to serve on: absent, or a socket left by a daemon
        that died (removed here). A socket another daemon may still answer on (it refuses
        nothing: busy or frozen) is left to it."""
        path = where.path
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
                pass  # a full queue, a timeout: someone is there
        log.info("status socket %s is served by another daemon: left to it", path)
        return False

    def _bind(self, where: Where) -> _Server:
        # Created owner-only by bind itself (the umask), never changed by path afterwards:
        # a chmod by name in a folder another user owns could be turned onto another file.
        # The umask is the process's: a file another thread creates in this instant comes out
        # no more open than owner-only, and the daemon's own files set their modes anyway.
        previous = os.umask(0o177)
        try:
            server = _Server(os.fspath(where.path), self)
        finally:
            os.umask(previous)
        info = os.lstat(where.path)
        if not stat.S_ISSOCK(info.st_mode) or stat.S_IMODE(info.st_mode) & 0o077:
            server.server_close()
            raise StatusUnavailable(f"{where.path}: not an owner-only socket after binding")
        self._inode = info.st_ino
        return server

    def answer(self) -> bytes:
        """The JSON line sent for one request: the status, or why it could not be read."""
        with self._making:
            now = time.monotonic()
            if self._made is not None and now - self._made[0] < FRESH_FOR:
                return self._made[1]
            made = self._make()
            self._made = (time.monotonic(), made)
            return made

    def _make(self) -> bytes:
        assert self.where is not None
        instance, role = self.who()
        body: dict[str, Any] = {
            "protocol": PROTOCOL,
            "database": self.where.database,
            "config": self.config_digest,
            "pid": os.getpid(),
            "instance": instance,
            "role": role,
        }
        try:
            body["report"] = to_wire(self.report())
        except Exception as exc:  # the database down: say so, the command reads it itself
            log.warning("status socket: the status could not be read: %s", exc)
            # Masked before it is cut: a secret cut in two would no longer be found.
            text = redact(str(exc))
            first = text.splitlines()[0][:300] if text else ""
            body["error"] = f"{type(exc).__name__}: {first}"
        return json.dumps(body, ensure_ascii=False).encode() + b"\n"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Only our own socket: another daemon may have taken the name since.
        with contextlib.suppress(OSError):
            if self.where is not None and os.lstat(self.where.path).st_ino == self._inode:
                self.where.path.unlink()


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        conn = self.request
        # One deadline for the whole request: a client that says nothing, or trickles it a
        # byte at a time, holds its place for READ_WITHIN at most.
        deadline = time.monotonic() + READ_WITHIN
        request = b""
        try:
            while len(request) < len(REQUEST) and not request.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                conn.settimeout(left)
                chunk = conn.recv(len(REQUEST) - len(request))
                if not chunk:
                    return
                request += chunk
        except OSError:
            return
        if request != REQUEST:
            return
        with contextlib.suppress(OSError):  # the asker gave up: nothing to do
            conn.settimeout(SEND_WITHIN)
            conn.sendall(server.owner.answer())


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, address: str, owner: StatusSocket) -> None:
        self.owner = owner
        self._slots = threading.BoundedSemaphore(AT_ONCE)
        super().__init__(address, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # Never more than AT_ONCE threads and descriptors for askers: idle connections by the
        # hundred would otherwise take the descriptors the feed and the database need.
        return self._slots.acquire(blocking=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread to give it back (none could be started)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
