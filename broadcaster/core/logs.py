"""Logging: one JSON object per line when not on a terminal, readable lines when on one.

Every record carries the run's context (for example `dry_run`), and any secret value registered
with `register_secret` is masked wherever it would appear, as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MASK = "[redacted]"


def register_secret(value: str | None) -> None:
    """Mask this value in every log line from now on (short values are ignored)."""
    if value and len(value) >= 6:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


SCAN_MIN = 8  # a post is refused when it holds a registered secret at least this long


def holds_secret(text: str | None) -> bool:
    """True when `text` contains a registered secret value of SCAN_MIN characters or more
    (a template or feed value that would publish a token)."""
    if not text:
        return False
    with _SECRETS_LOCK:
        secrets = [s for s in _SECRETS if len(s) >= SCAN_MIN]
    return any(secret in text for secret in secrets)


def redact(text: str) -> str:
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class ContextFilter(logging.Filter):
    def __init__(self, context: dict[str, Any]) -> None:
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.context.items():
            setattr(record, key, value)
        record.ctx = self.context
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, "ctx", {}))
        for key in ("account", "platform", "snapshot", "post_id", "event_key"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(tag)s%(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        ctx = getattr(record, "ctx", {})
        record.tag = "[DRY-RUN] " if ctx.get("dry_run") else ""
        return redact(super().format(record))


class _SkippedRuns(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def setup_logging(
    level: str = "INFO", *, json_lines: bool | None = None, context: dict[str, Any] | None = None
) -> None:
    """Configure the root logger; `json_lines=None` means JSON unless on a terminal."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter(dict(context or {})))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Client libraries log request URLs and sometimes headers at DEBUG; keep them quiet.
    noisy_loggers = (
        "urllib3",
        "requests_oauthlib",
        "oauthlib",
        "googleapiclient",
        "google",
        "google_auth_httplib2",
        "tweepy",
        "facebook",
        "apscheduler",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # A poll slower than the poll interval (a slow feed, already logged as such) makes the
    # scheduler skip a run every interval; that is by design, not worth a line each time.
    logging.getLogger("apscheduler.scheduler").addFilter(_SkippedRuns())
