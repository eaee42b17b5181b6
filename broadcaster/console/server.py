"""Serving the console: uvicorn in a thread of its own, beside the daemon or alone.

The address, TLS and proxy come from `[console]`, already checked when the configuration was
loaded (a non-loopback address needs allow_remote and TLS). X-Forwarded-* headers are believed
only from the reverse proxy the configuration names, and from nowhere when it names none.
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from broadcaster.console.app import create_app
from broadcaster.console.users import UserStore
from broadcaster.core.config import Config
from broadcaster.outbox.store import Store

log = logging.getLogger(__name__)


class ConsoleServer:
    def __init__(
        self, config: Config, store: Store | None = None, *, users: UserStore | None = None
    ) -> None:
        c = config.console
        self.config = config
        self.app = create_app(config, store, users=users)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=c.host,
                port=c.port,
                log_config=None,  # our own logging (JSON lines or text), set up by the command
                access_log=False,
                proxy_headers=bool(c.reverse_proxy),
                forwarded_allow_ips=c.reverse_proxy or "",
                ssl_certfile=str(config.path(c.tls_cert)) if c.tls_cert else None,
                ssl_keyfile=str(config.path(c.tls_key)) if c.tls_key else None,
                timeout_graceful_shutdown=2,  # open live views are cut, not waited for
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="console", daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.config.console.tls else "http"
        host, port = self.config.console.host, self.config.console.port
        for server in self.server.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"

    def start(self, timeout: float = 15.0) -> ConsoleServer:
        """Start serving; OSError if the address cannot be used (taken, not ours)."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise OSError(f"the console could not listen on {self.config.console.listen}")
            time.sleep(0.02)
        log.info("operator console on %s", self.url)
        return self

    def stop(self) -> None:
        self.app.state.console.watcher.close_streams()  # open night views end, then uvicorn
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=15)


class ConsoleCompanion:
    """The console served beside the daemon (`[console] enabled = true`)."""

    name = "console"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server: ConsoleServer | None = None

    def start(self, store: Store, stop: threading.Event) -> None:
        self.server = ConsoleServer(self.config, store).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
