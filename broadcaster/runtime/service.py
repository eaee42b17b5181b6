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

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broadcaster.core.config import Config
from broadcaster.core.logs import redact
from broadcaster.ingest.health import FeedHealth
from broadcaster.outbox.store import Store
from broadcaster.runtime.metrics import StatusCollector, registry_for
from broadcaster.runtime.status import collect_status

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
        feed_health: FeedHealth | None = None,
        leadership: Any = None,
    ) -> None:
        host, _, port = config.service.listen.rpartition(":")
        self.config = config
        self.store = store
        self.counters = counters
        self.alive = alive
        self.dry_run = dry_run
        self.feed_health = feed_health
        # runtime/leadership.py's Leadership: this instance's role (active or standby).
        self.leadership = leadership
        self.registry = registry_for(
            StatusCollector(
                config, store, counters=counters, feed_health=feed_health, leadership=leadership
            )
        )
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
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def problems(self, report: dict[str, Any]) -> list[str]:
        """Why the daemon is not healthy: its scheduler stopped, no poll lately, and the
        report's problems (the feed failing or stale, files gone missing)."""
        found = []
        if not self.alive():
            found.append("scheduler: not running")
        if self.leadership is not None and self.leadership.active_epoch() is None:
            return found + list(report["problems"])  # a standby does not poll
        last = self.counters.get("last_poll")
        window = 3 * self.config.feed.poll_interval + 30
        if last is None and self.feed_health is not None:
            last = self.feed_health.started_at
        if last is not None and time.time() - last >= window:
            found.append(f"scheduler: no poll for {round(time.time() - last)} s")
        return found + list(report["problems"])

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            # A standby has not polled: the feed's health is the active instance's, as stored.
            standby = self.leadership is not None and self.leadership.active_epoch() is None
            try:
                health = None if standby else self.feed_health
                report = collect_status(self.config, self.store, health=health)
            except Exception as exc:  # the database cannot be reached: say so, degraded
                return self._unreachable(exc)
            problems = self.problems(report)
            body = {
                "status": "degraded" if problems else "ok",
                **self._role(),
                "leader": report["leadership"]["leader"],
                "instances": report["leadership"]["instances"],
                "problems": problems,
                "scheduler_alive": self.alive(),
                "dry_run": self.dry_run,
                "last_poll": self.counters.get("last_poll"),
                "last_feed_change": (report["last_snapshot"] or {}).get("received_at"),
                "last_snapshot": report["last_snapshot"],
                "feed": report["feed_health"],
                "accounts": report["accounts"],
                "template_problems": report["template_problems"],
                "live": report.get("live"),  # the live channel's destinations, when it runs
            }
            code = 503 if problems else 200
            # A platform's error quoted in a pause reason may echo a token: mask every secret.
            return code, "application/json", redact(json.dumps(body, ensure_ascii=False)).encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain", b"not found\n"

    def _role(self) -> dict[str, Any]:
        """This instance's role (active or standby), its id and the current leader."""
        if self.leadership is None:
            return {}
        mine = self.leadership.describe()
        return {
            "role": mine["role"],
            "instance": mine["instance"],
            "role_since": mine["since"],
            "epoch": mine["epoch"],
            "lease_left_seconds": mine["lease_left_seconds"],
        }

    def _unreachable(self, exc: Exception) -> tuple[int, str, bytes]:
        problem = f"database: unreachable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        body = {
            "status": "degraded",
            **self._role(),
            "problems": [problem],
            "scheduler_alive": self.alive(),
            "dry_run": self.dry_run,
        }
        log.warning("healthz: %s", problem)
        return 503, "application/json", redact(json.dumps(body, ensure_ascii=False)).encode()

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("health and metrics on %s/healthz and %s/metrics", self.address, self.address)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
