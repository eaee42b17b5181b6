"""The daemon's HTTP endpoints: GET /healthz (JSON) and GET /metrics (Prometheus text).

Bound to 127.0.0.1 by default (`[service] listen`): they describe the night's operations and
must not be reachable from outside unless an operator chooses so.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from broadcaster.config import Config
from broadcaster.status import collect_status, metrics_text
from broadcaster.store import Store

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        counters: dict[str, float],
        alive: Callable[[], bool],
        dry_run: bool,
    ) -> None:
        host, _, port = config.service.listen.rpartition(":")
        self.config = config
        self.store = store
        self.counters = counters
        self.alive = alive
        self.dry_run = dry_run
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health: " + format, *args)

            def do_GET(self) -> None:
                try:
                    status, ctype, body = server.answer(self.path.split("?", 1)[0])
                except Exception:  # never let a report take the daemon down
                    log.exception("health endpoint failed")
                    status, ctype, body = 500, "text/plain", b"error\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def healthy(self) -> bool:
        last = self.counters.get("last_poll")
        recent = last is not None and time.time() - last < 3 * self.config.feed.poll_interval + 30
        return self.alive() and recent

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            report = collect_status(self.config, self.store)
            healthy = self.healthy()
            body = {
                "status": "ok" if healthy else "unhealthy",
                "scheduler_alive": self.alive(),
                "dry_run": self.dry_run,
                "last_poll": self.counters.get("last_poll"),
                "last_feed_change": (report["last_snapshot"] or {}).get("received_at"),
                "last_snapshot": report["last_snapshot"],
                "accounts": report["accounts"],
                "template_problems": report["template_problems"],
                "live": report.get("live"),  # the live channel's destinations, when it runs
            }
            return (200 if healthy else 503), "application/json", json.dumps(body).encode()
        if path == "/metrics":
            report = collect_status(self.config, self.store)
            text = metrics_text(report, self.counters)
            return 200, "text/plain; version=0.0.4; charset=utf-8", text.encode()
        return 404, "text/plain", b"not found\n"

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("health and metrics on %s/healthz and %s/metrics", self.address, self.address)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
