"""`broadcaster feed check`: read one snapshot the way the daemon would, and say what it found.

For an election body's IT team wiring up their feed (or a mapping for it): the same size and
time limits, the same parser and mapping, and the plausibility checks that look at a snapshot
on its own. Nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broadcaster.core.config import Config
from broadcaster.core.secrets import SecretError, Secrets
from broadcaster.domain.model import Snapshot
from broadcaster.ingest import gates
from broadcaster.ingest.parsers import FeedError, reader_for
from broadcaster.ingest.sources import HttpSource, SourceDown, is_url, safe_url


@dataclass
class CheckResult:
    where: str  # the file, or the URL with its credentials masked (safe_url)
    snapshot: Snapshot | None = None
    problem: str | None = None
    findings: list[gates.Finding] | None = None
    size: int = 0


def fetch_once(target: str, config: Config) -> bytes:
    """The bytes at a URL (bounded like the daemon's polls) or in a file; SourceDown if not."""
    if is_url(target):
        secrets = Secrets(config.path(config.secrets.file))
        try:
            source = HttpSource(target, config.feed, secrets=secrets)
        except SecretError as exc:
            raise SourceDown(str(exc)) from None
        fetched = source.fetch()
        if fetched is None:
            raise SourceDown(f"{source.shown}: nothing returned")
        return fetched.body
    path = Path(target)
    try:
        size = path.stat().st_size
        if size > config.feed.max_bytes:
            raise SourceDown(f"{target}: {size} bytes, over the limit of {config.feed.max_bytes}")
        return path.read_bytes()
    except OSError as exc:
        raise SourceDown(f"{target}: {exc.strerror}") from None


def check_feed(target: str, config: Config) -> CheckResult:
    """Fetch and parse one snapshot; the problem (fetch or parse) or what was understood."""
    result = CheckResult(where=safe_url(target) if is_url(target) else target)
    try:
        body = fetch_once(target, config)
        result.size = len(body)
        snapshot = reader_for(config)(body)
    except (SourceDown, FeedError) as exc:
        result.problem = exc.problem if isinstance(exc, FeedError) else str(exc)
        return result
    result.snapshot = snapshot
    result.findings = gates.check(None, snapshot)
    return result
