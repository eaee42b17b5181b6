"""Where snapshot bytes come from: an HTTP(S) feed, a local file, or a folder of recorded snapshots.

A source only fetches bytes. It says "nothing new" (None) as cheaply as it can: a 304, the same
bytes as last time, an unchanged file, or a folder with no further files.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from broadcaster.config import FeedConfig

log = logging.getLogger(__name__)

SNAPSHOT_SUFFIXES = (".json", ".csv", ".xml")
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    name: str  # the file name or URL, for messages
    fingerprint: str  # sha256 of the body
    fetched_at: datetime


class SourceDown(Exception):
    """The feed could not be fetched this time (network, HTTP error, too large, too slow)."""


class Source(Protocol):
    description: str

    def fetch(self) -> Fetched | None:
        """New bytes, or None when nothing changed; SourceDown when the feed cannot be read."""
        ...

    def forget(self) -> None:
        """Hand the last bytes out again on the next fetch (they could not be stored)."""
        ...


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def make_fetched(body: bytes, name: str) -> Fetched:
    return Fetched(body, name, fingerprint(body), datetime.now(UTC))


class FileSource:
    """A file that the results system rewrites in place."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.description = str(path)
        self._stat: tuple[int, int] | None = None
        self._last: str | None = None

    def fetch(self) -> Fetched | None:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise SourceDown(f"cannot read {self.path}: {exc.strerror}") from None
        key = (st.st_mtime_ns, st.st_size)
        if key == self._stat:
            return None
        if st.st_size > self.max_bytes:
            raise SourceDown(
                f"{self.path} is {st.st_size} bytes, over the limit of {self.max_bytes}"
            )
        try:
            body = self.path.read_bytes()
        except OSError as exc:
            raise SourceDown(f"cannot read {self.path}: {exc.strerror}") from None
        self._stat = key
        fetched = make_fetched(body, self.path.name)
        if fetched.fingerprint == self._last:
            return None
        self._last = fetched.fingerprint
        return fetched

    def forget(self) -> None:
        self._stat = None
        self._last = None


def snapshot_files(folder: Path) -> list[Path]:
    """The snapshot files of a replay folder, in lexical order of their names."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SNAPSHOT_SUFFIXES),
        key=lambda p: p.name,
    )


class ReplaySource:
    """A folder of recorded snapshots, handed out one per fetch in lexical order of name."""

    def __init__(self, folder: Path, max_bytes: int, after: str | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.description = str(folder)
        self.after = after  # name of the last file already handed out (resuming)

    def pending(self) -> list[Path]:
        files = snapshot_files(self.folder)
        return [p for p in files if self.after is None or p.name > self.after]

    def fetch(self) -> Fetched | None:
        remaining = self.pending()
        if not remaining:
            return None
        path = remaining[0]
        self.after = path.name
        size = path.stat().st_size
        if size > self.max_bytes:
            raise SourceDown(f"{path.name} is {size} bytes, over the limit of {self.max_bytes}")
        return make_fetched(path.read_bytes(), path.name)

    def forget(self) -> None:
        files = [p.name for p in snapshot_files(self.folder)]
        if self.after in files:
            i = files.index(self.after)
            self.after = files[i - 1] if i > 0 else None


class HttpSource:
    """An HTTP(S) feed, fetched with conditional GET, bounded in size and time, with backoff."""

    def __init__(self, url: str, feed: FeedConfig, session: requests.Session | None = None) -> None:
        self.url = url
        self.feed = feed
        self.description = url
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "broadcaster (election results)"
        self._etag: str | None = None
        self._modified: str | None = None
        self._last: str | None = None
        self._failures = 0
        self._retry_at = 0.0

    def forget(self) -> None:
        self._etag = self._modified = self._last = None

    @property
    def backing_off(self) -> bool:
        return time.monotonic() < self._retry_at

    def fetch(self) -> Fetched | None:
        if self.backing_off:
            return None
        try:
            fetched = self._get()
        except SourceDown:
            self._failures += 1
            delay = min(self.feed.backoff_max, self.feed.poll_interval * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay * random.uniform(0.8, 1.2)
            raise
        self._failures = 0
        self._retry_at = 0.0
        return fetched

    def _get(self) -> Fetched | None:
        headers = {}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self._modified:
            headers["If-Modified-Since"] = self._modified
        deadline = time.monotonic() + self.feed.deadline
        resp = self._follow(headers)
        with resp:
            if resp.status_code == 304:
                return None
            if resp.status_code != 200:
                raise SourceDown(f"{self.url}: HTTP {resp.status_code}")
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.feed.max_bytes:
                raise SourceDown(
                    f"{self.url}: {declared} bytes announced, "
                    f"over the limit of {self.feed.max_bytes}"
                )
            body = self._read_bounded(resp, deadline)
            etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        fetched = make_fetched(body, self.url)
        # Remember validators only after a full read, so a failed read is retried in full.
        self._etag, self._modified = etag, modified
        if fetched.fingerprint == self._last:
            return None
        self._last = fetched.fingerprint
        return fetched

    def _follow(self, headers: dict[str, str]) -> requests.Response:
        """GET, following redirects by hand so that each hop's address is checked before it
        is requested: only http and https, at most MAX_REDIRECTS hops."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = self.session.get(
                    url,
                    headers=headers,
                    timeout=(self.feed.connect_timeout, self.feed.read_timeout),
                    stream=True,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise SourceDown(f"{self.url}: {type(exc).__name__}") from None
            if not resp.is_redirect:
                return resp
            target = urljoin(url, resp.headers.get("Location", ""))
            resp.close()
            scheme = urlsplit(target).scheme
            if scheme not in ("http", "https"):
                raise SourceDown(f"{self.url}: redirected to a {scheme!r} address; refused")
            url = target
        raise SourceDown(f"{self.url}: more than {MAX_REDIRECTS} redirects")

    def _read_bounded(self, resp: requests.Response, deadline: float) -> bytes:
        # read1 returns after at most one receive, so a server trickling a byte at a time is cut
        # off at the overall deadline instead of holding the cycle for hours.
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = resp.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.feed.max_bytes:
                    raise SourceDown(
                        f"{self.url}: more than {self.feed.max_bytes} bytes; stopped reading"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise SourceDown(f"{self.url}: not complete after {self.feed.deadline:g} s")
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise SourceDown(f"{self.url}: {type(exc).__name__} while reading") from None
        return b"".join(chunks)


def make_source(feed: FeedConfig, base_dir: Path, *, resume_after: str | None = None) -> Source:
    """The source a `[feed] source` value names: a URL, a folder (replay) or a file."""
    value = feed.source
    if value.startswith(("http://", "https://")):
        return HttpSource(value, feed)
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if path.is_dir():
        return ReplaySource(path, feed.max_bytes, after=resume_after)
    return FileSource(path, feed.max_bytes)
