"""Hostile and broken input against the real daemon polling a real local HTTP server.

The server hands out one response per request: a good snapshot, then every kind of bad input
the night can bring, then a second good snapshot. The daemon must log each one clearly, keep
the last good state, keep polling, accept the second good snapshot, and stop cleanly; all of
it within bounded time, however the server behaves.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import broadcaster_cmd, write_config
from tests.nist_builder import candidate, candidate_contest, counts, dumps, report

LIMIT = 200_000


def snapshot(a: int, b: int, at: str, **mutations: Any) -> bytes:
    doc = report(
        [
            candidate_contest(
                "c1",
                [("s-a", "can-a", [counts("ru-1", a)]), ("s-b", "can-b", [counts("ru-1", b)])],
                reported=(5, 10),
            )
        ],
        candidates=[candidate("can-a", "Ana", "par-a"), candidate("can-b", "Ben", "par-b")],
        generated=f"2030-07-28T{at}:00+07:00",
    )
    contest = doc["Election"][0]["Contest"][0]
    if "duplicate" in mutations:
        doc["Election"][0]["Contest"].append(json.loads(json.dumps(contest)))
    if "unknown" in mutations:
        contest["ContestSelection"][1]["CandidateIds"] = ["can-zz"]
    if "votes" in mutations:
        contest["ContestSelection"][0]["VoteCounts"][0]["Count"] = mutations["votes"]
    return dumps(doc)


BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE EML [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9)
    )
    + b']>\n<EML xmlns="urn:oasis:names:tc:evs:schema:eml" Id="510b">&j;</EML>'
)
EXTERNAL = (
    b'<?xml version="1.0"?>\n<!DOCTYPE EML [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    b'<EML xmlns="urn:oasis:names:tc:evs:schema:eml" Id="510b">&x;</EML>'
)

# (label, how the server answers, what the log must say)
STEPS: list[tuple[str, dict[str, Any], str]] = [
    ("good", {"body": snapshot(100, 50, "21:00")}, "accepted snapshot"),
    ("too large", {"body": b"[" + b"1," * LIMIT + b"1]"}, f"over the limit of {LIMIT}"),
    (
        "too large, no length",
        {"body": b"[" + b"1," * LIMIT + b"1]", "length": False},
        f"more than {LIMIT} bytes; stopped reading",
    ),
    ("trickle", {"trickle": True}, "not complete after 1 s"),
    ("invalid utf-8", {"body": snapshot(101, 50, "21:05").replace(b"Ana", b"An\xff")}, "UTF-8"),
    ("entity bomb", {"body": BOMB}, "a DTD is not allowed"),
    ("external entity", {"body": EXTERNAL}, "a DTD is not allowed"),
    (
        "deep json",
        {
            "body": b'{"@type": "ElectionResults.ElectionReport", "Election": '
            + b"[" * 50_000
            + b"]" * 50_000
            + b"}"
        },
        "nested too deeply",
    ),
    ("redirect", {"redirect": "file:///etc/passwd"}, "redirected to a 'file' address; refused"),
    ("duplicate ids", {"body": snapshot(102, 50, "21:10", duplicate=1)}, "duplicate contest id"),
    ("unknown candidate", {"body": snapshot(103, 50, "21:10", unknown=1)}, "unknown candidate"),
    ("negative votes", {"body": snapshot(-4, 50, "21:10", votes=-4)}, "got -4"),
    ("fractional votes", {"body": snapshot(5, 50, "21:10", votes=12.5)}, "got 12.5"),
    (
        "html error page",
        {"body": b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"},
        "an HTML page was served",
    ),
    ("good again", {"body": snapshot(300, 80, "21:30")}, "accepted snapshot"),
]


class Script(BaseHTTPRequestHandler):
    """Each request gets the next step's answer; the last step repeats."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv: Any = self.server
        with srv.lock:
            step = STEPS[min(srv.next, len(STEPS) - 1)][1]
            srv.served.append(min(srv.next, len(STEPS) - 1))
            srv.next += 1
        if "redirect" in step:
            self.send_response(302)
            self.send_header("Location", step["redirect"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if step.get("trickle"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100_000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            self.close_connection = True
            return
        body = step["body"]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if step.get("length", True):
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


@pytest.fixture
def script_server() -> Iterator[Any]:
    srv: Any = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.next = 0
    srv.served = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_the_daemon_survives_every_kind_of_hostile_feed(tmp_path: Path, script_server: Any):
    url = f"http://127.0.0.1:{script_server.server_address[1]}/results.json"
    cfg = write_config(
        tmp_path / "c.toml",
        source=url,
        extra="""
[service]
listen = ""
""",
    )
    text = cfg.read_text().replace(
        "poll_interval = 0.2",
        f"poll_interval = 0.2\nmax_bytes = {LIMIT}\ndeadline = 1\nread_timeout = 1\n"
        "backoff_max = 0.5",
    )
    cfg.write_text(text)
    log_path = tmp_path / "daemon.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*broadcaster_cmd(), "--log-format", "json", "run", "--config", str(cfg)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if len(set(script_server.served)) == len(STEPS) and accepted(tmp_path) == 2:
                    break
                assert proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.2)
            else:
                raise AssertionError(
                    f"served {sorted(set(script_server.served))}; log:\n"
                    + log_path.read_text()[-3000:]
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 90, f"took {elapsed:.0f} s"
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    for label, _, expected in STEPS:
        assert any(expected in m for m in messages), f"{label}: no log line with {expected!r}"
    # The state between the two good snapshots was the first one: nothing was posted from the
    # bad ones, and the second good one was diffed against the first.
    db = sqlite3.connect(tmp_path / "state.db")
    try:
        names = db.execute("select accepted, error from snapshots order by id").fetchall()
        votes = db.execute("select count(*) from events").fetchone()[0]
    finally:
        db.close()
    assert [a for a, _ in names].count(1) == 2
    rejected = [e for a, e in names if not a]
    assert len(rejected) >= 8, rejected  # every parse-level problem is on record
    assert votes >= 1


def accepted(folder: Path) -> int:
    db = folder / "state.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("select count(*) from snapshots where accepted").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
