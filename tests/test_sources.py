"""Sources against real files and a real local HTTP server."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from broadcaster.core.config import FeedConfig
from broadcaster.ingest import payload, sources
from broadcaster.ingest.payload import SPOOL_AT, SpooledBytes
from broadcaster.ingest.sources import (
    FileSource,
    HttpSource,
    ReplaySource,
    SourceDown,
    fetched_file,
    make_source,
)


class FeedHandler(BaseHTTPRequestHandler):
    """Serves `server.body` with an ETag; the test switches `server.mode` to misbehave."""

    requests_seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        FeedHandler.requests_seen.append(dict(self.headers))
        mode = srv.mode  # type: ignore[attr-defined]
        if mode == "down":
            self.send_response(503)
            self.end_headers()
            return
        if mode == "redirect-http" and self.path == "/feed.json":
            self.send_response(302)
            self.send_header("Location", "/moved/feed.json")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "redirect-loop":
            self.send_response(301)
            self.send_header("Location", self.path + "x")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "redirect-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        if mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
            return
        body: bytes = srv.body  # type: ignore[attr-defined]
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if mode == "etag" and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        if mode == "etag":
            self.send_header("ETag", etag)
        if mode != "no-length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    srv.body = b'{"x": 1}'  # type: ignore[attr-defined]
    srv.mode = "etag"  # type: ignore[attr-defined]
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    FeedHandler.requests_seen.clear()
    yield srv
    srv.shutdown()
    srv.server_close()


def feed(url: str, **kw: object) -> FeedConfig:
    return FeedConfig(source=url, poll_interval=1, **kw)  # type: ignore[arg-type]


def url_of(srv: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/feed.json"


def test_conditional_get_and_unchanged_feed(server):
    src = HttpSource(url_of(server), feed(url_of(server)))
    first = src.fetch()
    assert first is not None
    assert first.body == b'{"x": 1}'
    assert src.fetch() is None  # 304 Not Modified
    assert FeedHandler.requests_seen[-1].get("If-None-Match")
    server.body = b'{"x": 2}'
    second = src.fetch()
    assert second is not None
    assert second.body == b'{"x": 2}'
    # Same bytes without validators also end the cycle at once.
    server.mode = "plain"
    plain = HttpSource(url_of(server), feed(url_of(server)))
    assert plain.fetch() is not None
    assert plain.fetch() is None


def test_size_limit_stops_reading(server):
    server.body = b"y" * 5000
    server.mode = "no-length"
    src = HttpSource(url_of(server), feed(url_of(server), max_bytes=1000))
    with pytest.raises(SourceDown, match="more than 1000 bytes"):
        src.fetch()
    server.mode = "plain"
    src = HttpSource(url_of(server), feed(url_of(server), max_bytes=1000))
    with pytest.raises(SourceDown, match="5000 bytes announced"):
        src.fetch()


def test_trickling_server_is_cut_at_the_overall_deadline(server):
    server.mode = "trickle"
    src = HttpSource(url_of(server), feed(url_of(server), read_timeout=5, deadline=0.5))
    started = time.monotonic()
    with pytest.raises(SourceDown, match=r"not complete after 0\.5 s"):
        src.fetch()
    assert time.monotonic() - started < 3


def test_http_redirects_are_followed_a_few_times_only(server):
    server.mode = "redirect-http"
    fetched = HttpSource(url_of(server), feed(url_of(server))).fetch()
    assert fetched is not None
    assert fetched.body == b'{"x": 1}'
    server.mode = "redirect-loop"
    with pytest.raises(SourceDown, match="more than 5 redirects"):
        HttpSource(url_of(server), feed(url_of(server))).fetch()


def test_redirect_to_a_non_http_scheme_is_refused(server):
    server.mode = "redirect-file"
    src = HttpSource(url_of(server), feed(url_of(server)))
    with pytest.raises(SourceDown):
        src.fetch()


def test_backoff_while_the_feed_is_down(server):
    server.mode = "down"
    src = HttpSource(url_of(server), feed(url_of(server), backoff_max=60))
    with pytest.raises(SourceDown, match="HTTP 503"):
        src.fetch()
    seen = len(FeedHandler.requests_seen)
    assert src.backing_off
    assert src.fetch() is None  # within the backoff window: no request at all
    assert len(FeedHandler.requests_seen) == seen
    src._retry_at = 0  # the window has passed
    server.mode = "plain"
    assert src.fetch() is not None
    assert not src.backing_off


def test_connection_refused_is_source_down():
    src = HttpSource("http://127.0.0.1:9/feed", feed("http://127.0.0.1:9/feed", connect_timeout=1))
    with pytest.raises(SourceDown, match="ConnectionError"):
        src.fetch()


def test_file_source_reads_only_changes(tmp_path: Path):
    path = tmp_path / "feed.json"
    path.write_bytes(b"one")
    src = FileSource(path, 100)
    assert src.fetch().body == b"one"
    assert src.fetch() is None
    path.write_bytes(b"two!")
    assert src.fetch().body == b"two!"
    os.utime(path, ns=(1, 1))  # touched but the same bytes
    assert src.fetch() is None
    src.forget()
    assert src.fetch().body == b"two!"
    path.unlink()
    with pytest.raises(SourceDown, match="cannot read"):
        src.fetch()


def test_replay_source_hands_out_files_in_lexical_order_and_resumes(tmp_path: Path):
    for name in ("10-b.json", "02-a.json", "11-c.csv", "notes.txt"):
        (tmp_path / name).write_text(name)
    src = ReplaySource(tmp_path, 1000)
    assert [src.fetch().name for _ in range(3)] == ["02-a.json", "10-b.json", "11-c.csv"]
    assert src.fetch() is None
    resumed = make_source(FeedConfig(source=str(tmp_path)), tmp_path, resume_after="10-b.json")
    assert resumed.fetch().name == "11-c.csv"


# -- large bodies: collected into a private temporary file as they come (payload.py) --

LARGE = SPOOL_AT + 12_345


def large_body() -> bytes:
    return bytes(i * 31 % 253 for i in range(LARGE))


def test_a_large_http_body_goes_to_a_temporary_file_as_it_arrives(server):
    server.body = large_body()
    server.mode = "plain"
    fetched = HttpSource(url_of(server), feed(url_of(server))).fetch()
    assert fetched is not None
    assert isinstance(fetched.body, SpooledBytes)
    assert bytes(fetched.body) == server.body
    assert fetched.fingerprint == hashlib.sha256(server.body).hexdigest()


def test_a_large_http_body_past_the_limit_is_stopped_and_its_file_let_go(server):
    server.body = large_body()
    server.mode = "no-length"
    src = HttpSource(url_of(server), feed(url_of(server), max_bytes=SPOOL_AT + 100))
    with pytest.raises(SourceDown, match=f"more than {SPOOL_AT + 100} bytes"):
        src.fetch()


def test_a_large_feed_file_rewritten_after_it_is_fetched_is_read_as_it_was(tmp_path: Path):
    """What is parsed is the copy that was hashed: the results system rewriting the file in
    place meanwhile cannot put other bytes under the fingerprint."""
    path = tmp_path / "feed.json"
    original = large_body()
    path.write_bytes(original)
    fetched = FileSource(path, 10 * LARGE).fetch()
    assert fetched is not None
    assert isinstance(fetched.body, SpooledBytes)
    with path.open("r+b") as rewrite:
        rewrite.write(b"X" * 4096)
    assert bytes(fetched.body) == original
    assert fetched.fingerprint == hashlib.sha256(original).hexdigest()
    assert fetched.body[:4096] == original[:4096]


def test_a_snapshot_file_that_grows_past_the_limit_while_read_is_refused(tmp_path: Path):
    path = tmp_path / "01.json"
    path.write_bytes(b"x" * 500)
    with pytest.raises(SourceDown, match="grew past the limit of 100 bytes"):
        fetched_file(path, 100)


def test_a_large_feed_file_rewritten_with_the_same_bytes_is_hashed_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A results system that republishes the same 42 MB on a timer costs a read and a hash
    per poll, not a copy to a temporary file as well; other bytes are still collected."""
    import tempfile

    copies = []
    original = tempfile.TemporaryFile

    def counted(*args, **kwargs):
        copies.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", counted)
    path = tmp_path / "feed.json"
    first = large_body()
    path.write_bytes(first)
    src = FileSource(path, 10 * LARGE)
    fetched = src.fetch()
    assert fetched is not None
    assert isinstance(fetched.body, SpooledBytes)
    assert len(copies) == 1
    path.write_bytes(first)
    os.utime(path, ns=(1, 1))  # rewritten: another time, the same bytes
    assert src.fetch() is None
    assert len(copies) == 1
    second = first[:-1] + b"!"  # the same size: hashed first, then copied
    path.write_bytes(second)
    again = src.fetch()
    assert again is not None
    assert len(copies) == 2
    assert again.fingerprint == hashlib.sha256(second).hexdigest()
    assert bytes(again.body) == second
    # New counts nearly always change the size: such a file is read once, not hashed first.
    digests = []
    monkeypatch.setattr(
        sources, "digest_path", lambda *a: digests.append(1) or payload.digest_path(*a)
    )
    third = second + b" "
    path.write_bytes(third)
    latest = src.fetch()
    assert latest is not None
    assert bytes(latest.body) == third
    assert digests == []
    assert len(copies) == 3
    path.write_bytes(third)
    os.utime(path, ns=(2, 2))
    assert src.fetch() is None
    assert digests == [1]
    assert len(copies) == 3
