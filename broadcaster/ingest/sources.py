"""Where snapshot bytes come from: an HTTP(S) feed, a local file, or a folder of recorded snapshots.

A source only fetches bytes. It says "nothing new" (None) as cheaply as it can: a 304, the same
bytes as last time, an unchanged file, or a folder with no further files.

An HTTP feed is bounded in time as a whole: `[feed] deadline` covers connecting, the TLS
handshake, the status line and headers, and the body, however slowly a server trickles them (a
watchdog shuts the request's sockets down when it passes). Redirects are followed by hand, each
hop checked first: http or https only, never from https down to http, and never from the
configured host's kind of address (public, private, loopback, link-local) to another non-public
kind unless `[feed] allow_private_redirects` says so. Credentials go in `[feed] headers`, sent to
the configured origin only; a URL is only ever shown or stored through `safe_url`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from broadcaster.core.config import FeedConfig
from broadcaster.core.logs import register_secret
from broadcaster.core.secrets import Secrets
from broadcaster.ingest.locations import SNAPSHOT_SUFFIXES, is_url
from broadcaster.ingest.payload import (
    SPOOL_AT,
    Collector,
    Payload,
    TooLarge,
    digest_path,
    read_path,
)

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Fetched:
    body: Payload  # a large body is read from a private temporary file (payload.py)
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


def fetched_file(path: Path, max_bytes: int) -> Fetched:
    """A snapshot file, read a chunk at a time (a large one into a temporary file); SourceDown
    when it cannot be read or holds more than `max_bytes` (checked by the caller beforehand,
    and again here in case it grew)."""
    try:
        body, digest = read_path(path, max_bytes)
    except TooLarge:
        raise SourceDown(f"{path} grew past the limit of {max_bytes} bytes while read") from None
    except OSError as exc:
        raise SourceDown(f"cannot read {path}: {exc.strerror}") from None
    return Fetched(body, path.name, digest, datetime.now(UTC))


class FileSource:
    """A file that the results system rewrites in place."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.description = str(path)
        self._stat: tuple[int, int] | None = None
        self._last: str | None = None
        self._last_size: int | None = None  # of the bytes `_last` is the fingerprint of

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
        if st.st_size > SPOOL_AT and st.st_size == self._last_size:
            # A large feed rewritten with the same bytes (a results system that republishes
            # on a timer) is only hashed, not copied to a temporary file as well. Only at the
            # same size: new counts nearly always change it, and a changed file is then read
            # once. A copy made below is hashed again as it is made, so a change in between
            # is still seen.
            try:
                same = digest_path(self.path, self.max_bytes) == self._last
            except (OSError, TooLarge):
                same = False  # fetched_file below says what is wrong
            if same:
                self._stat = key
                return None
        fetched = fetched_file(self.path, self.max_bytes)
        self._stat = key
        if fetched.fingerprint == self._last:
            return None
        self._last = fetched.fingerprint
        self._last_size = len(fetched.body)
        return fetched

    def forget(self) -> None:
        self._stat = None
        self._last = None
        self._last_size = None


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
        try:
            remaining = self.pending()
        except OSError as exc:
            raise SourceDown(f"cannot read the folder {self.folder}: {exc.strerror}") from None
        if not remaining:
            return None
        path = remaining[0]
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SourceDown(f"cannot read {path}: {exc.strerror}") from None
        if size > self.max_bytes:
            self.after = path.name
            raise SourceDown(f"{path.name} is {size} bytes, over the limit of {self.max_bytes}")
        fetched = fetched_file(path, self.max_bytes)
        self.after = path.name
        return fetched

    def forget(self) -> None:
        try:
            files = [p.name for p in snapshot_files(self.folder)]
        except OSError:
            return
        if self.after in files:
            i = files.index(self.after)
            self.after = files[i - 1] if i > 0 else None


# -- URLs as shown ------------------------------------------------------------------------------

# A query parameter whose name contains one of these is a credential: its value is masked.
SECRET_QUERY_WORDS = (
    "token",
    "key",
    "secret",
    "sig",
    "password",
    "passwd",
    "pwd",
    "auth",
    "credential",
    "session",
)
MASK = "***"


def safe_url(url: str) -> str:
    """The URL as it may be shown, logged or stored: the password of its user info (or a user
    name alone, often a token) and the value of every query parameter whose name looks like a
    credential (SECRET_QUERY_WORDS) replaced by ***; the masked values are also registered with
    the log redactor. `https://user:***@host/path?token=***&election=2030`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        register_secret(unquote(password) if colon else unquote(user))
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"
    query = parts.query
    if query:
        shown = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            if eq and value and any(w in unquote(name).lower() for w in SECRET_QUERY_WORDS):
                register_secret(unquote(value))
                value = MASK
            shown.append(f"{name}{eq}{value}")
        query = "&".join(shown)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


# -- kinds of address ---------------------------------------------------------------------------

PUBLIC, PRIVATE, LOOPBACK, LINK_LOCAL = "public", "private", "loopback", "link-local"


def address_kind(address: str) -> str:
    """public, private, loopback or link-local (unspecified, multicast and reserved addresses,
    which no feed lives at, count as private)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local:
        return LINK_LOCAL
    if ip.is_global:
        return PUBLIC
    return PRIVATE


def host_kinds(host: str, port: int | None) -> set[str]:
    """The kinds of every address `host` resolves to; SourceDown when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SourceDown(f"cannot resolve {host}: {exc}") from None
    return {address_kind(str(info[4][0])) for info in infos}


def redirect_refusal(home: set[str], target: set[str], *, allow_private: bool) -> str | None:
    """Why a redirect from a host of kinds `home` to one of kinds `target` is refused, or None.
    A redirect may always reach a public address; a non-public one only when the configured
    host is of that same kind (a loopback feed may redirect to loopback) or the configuration
    allows private redirects."""
    if allow_private:
        return None
    leaving = sorted(k for k in target if k != PUBLIC and k not in home)
    if not leaving:
        return None
    return (
        f"leaves the feed's {'/'.join(sorted(home))} address for a {'/'.join(leaving)} one "
        "([feed] allow_private_redirects = true to follow it)"
    )


# -- the deadline ---------------------------------------------------------------------------------


class _AddressRefused(Exception):
    """A connection reached an address of a kind this request may not reach."""


class _Deadline:
    """Shuts down every socket of one request when its time is up, wherever the request is
    blocked (connecting, TLS, status line, headers, body). Sockets are watched through a
    duplicate of their descriptor, which TLS wrapping leaves alone."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.allowed_kinds: set[str] | None = None  # for the hop in progress; None: any
        self._watched: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        dup = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
        with self._lock:
            self._watched.append(dup)
            expired = self.expired
        if expired:
            _shut(dup)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            watched = list(self._watched)
        for sock in watched:
            _shut(sock)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def start(self) -> None:
        self._timer.start()

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other end
        sock.shutdown(socket.SHUT_RDWR)


_CURRENT: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "broadcaster_feed_deadline", default=None
)


class _WatchedConnection:
    """Mixed into urllib3's connections: every new socket is watched by the request's deadline,
    and its peer address is checked against the kinds the hop may reach."""

    proxy: Any

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        deadline = _CURRENT.get()
        if deadline is None:
            return sock
        deadline.watch(sock)
        allowed = deadline.allowed_kinds
        if allowed is not None and self.proxy is None:
            # Checked on the address actually connected to: a name that resolved to a public
            # address when the redirect was checked cannot lead anywhere else now.
            kind = address_kind(str(sock.getpeername()[0]))
            if kind not in allowed:
                sock.close()
                raise _AddressRefused(f"connected to a {kind} address")
        return sock


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections (direct or through a proxy) are watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


@contextmanager
def _deadline(seconds: float) -> Iterator[_Deadline]:
    deadline = _Deadline(seconds)
    token = _CURRENT.set(deadline)
    deadline.start()
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)
        deadline.close()


# -- the HTTP source ------------------------------------------------------------------------------


class HttpSource:
    """An HTTP(S) feed, fetched with conditional GET, bounded in size and time, with backoff."""

    def __init__(self, url: str, feed: FeedConfig, *, secrets: Secrets | None = None) -> None:
        self.url = url
        self.feed = feed
        self.shown = safe_url(url)
        self.description = self.shown
        self.session = requests.Session()
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, _WatchedAdapter())
        self.session.headers["User-Agent"] = "broadcaster (election results)"
        # Credentials are sent to the configured feed's origin only, never to a redirect
        # target elsewhere.
        self._home = _origin(feed.source) if is_url(feed.source) else None
        self._auth: dict[str, str] = {}
        if feed.headers:
            secrets = secrets or Secrets()
            for header, name in feed.headers.items():
                self._auth[header] = secrets.get(name, what=f"[feed] headers.{header}")
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
        with _deadline(self.feed.deadline) as deadline:
            try:
                resp = self._follow(headers, deadline)
                with resp:
                    if resp.status_code == 304:
                        return None
                    if resp.status_code != 200:
                        raise SourceDown(f"{self.shown}: HTTP {resp.status_code}")
                    declared = resp.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > self.feed.max_bytes:
                        raise SourceDown(
                            f"{self.shown}: {declared} bytes announced, "
                            f"over the limit of {self.feed.max_bytes}"
                        )
                    body, digest = self._read_bounded(resp, deadline)
                    etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
            except SourceDown:
                if deadline.expired:
                    raise SourceDown(self._too_slow()) from None
                raise
        fetched = Fetched(body, self.shown, digest, datetime.now(UTC))
        # Remember validators only after a full read, so a failed read is retried in full.
        self._etag, self._modified = etag, modified
        if fetched.fingerprint == self._last:
            return None
        self._last = fetched.fingerprint
        return fetched

    def _too_slow(self) -> str:
        return f"{self.shown}: not complete after {self.feed.deadline:g} s"

    def _follow(self, headers: dict[str, str], deadline: _Deadline) -> requests.Response:
        """GET, following redirects by hand so that each hop's address is checked before it
        is requested: only http and https, never https to http, never to another kind of
        address than the feed's unless allowed, at most MAX_REDIRECTS hops."""
        url = self.url
        home_kinds: set[str] | None = None
        for _ in range(MAX_REDIRECTS + 1):
            hop_headers = dict(headers)
            request_url = url
            if self._auth and _origin(url) == self._home:
                hop_headers.update(self._auth)
                if any(h.lower() == "authorization" for h in self._auth):
                    # The configured header wins over credentials left in the URL.
                    request_url = _without_userinfo(url)
            try:
                resp = self.session.get(
                    request_url,
                    headers=hop_headers,
                    timeout=(self.feed.connect_timeout, self.feed.read_timeout),
                    stream=True,
                    allow_redirects=False,
                )
            except _AddressRefused as exc:
                raise SourceDown(f"{self.shown}: redirected, then {exc}; refused") from None
            except requests.RequestException as exc:
                raise SourceDown(f"{self.shown}: {type(exc).__name__}") from None
            if not resp.is_redirect:
                return resp
            target = urljoin(url, resp.headers.get("Location", ""))
            resp.close()
            where = safe_url(target)
            scheme = urlsplit(target).scheme
            if scheme not in ("http", "https"):
                raise SourceDown(f"{self.shown}: redirected to a {scheme!r} address; refused")
            if urlsplit(url).scheme == "https" and scheme == "http":
                raise SourceDown(f"{self.shown}: redirected from https to {where}; refused")
            if not self.feed.allow_private_redirects:
                if home_kinds is None:
                    home = urlsplit(self.url)
                    home_kinds = host_kinds(home.hostname or "", home.port)
                hop = urlsplit(target)
                refusal = redirect_refusal(
                    home_kinds, host_kinds(hop.hostname or "", hop.port), allow_private=False
                )
                if refusal:
                    raise SourceDown(f"{self.shown}: redirected to {where}, which {refusal}")
                deadline.allowed_kinds = home_kinds | {PUBLIC}
            url = target
        raise SourceDown(f"{self.shown}: more than {MAX_REDIRECTS} redirects")

    def _read_bounded(self, resp: requests.Response, deadline: _Deadline) -> tuple[Payload, str]:
        """The body and its sha256; a large body goes to a temporary file as it arrives."""
        # read1 returns after at most one receive; the deadline's watchdog ends a read that
        # would wait past it.
        collector = Collector()
        try:
            while True:
                chunk = resp.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                if collector.size + len(chunk) > self.feed.max_bytes:
                    raise SourceDown(
                        f"{self.shown}: more than {self.feed.max_bytes} bytes; stopped reading"
                    )
                collector.add(chunk)
                if deadline.remaining() < 0:
                    raise SourceDown(self._too_slow())
            if deadline.expired:
                # The watchdog's shutdown can look like the end of the body.
                raise SourceDown(self._too_slow())
        except SourceDown:
            collector.discard()
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            collector.discard()
            raise SourceDown(f"{self.shown}: {type(exc).__name__} while reading") from None
        return collector.done()


def make_source(
    feed: FeedConfig,
    base_dir: Path,
    *,
    resume_after: str | None = None,
    secrets: Secrets | None = None,
) -> Source:
    """The source a `[feed] source` value names: a URL, a folder (replay) or a file.
    `secrets` resolves `[feed] headers` (SecretError when one is missing)."""
    value = feed.source
    if is_url(value):
        return HttpSource(value, feed, secrets=secrets)
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if path.is_dir():
        return ReplaySource(path, feed.max_bytes, after=resume_after)
    return FileSource(path, feed.max_bytes)
