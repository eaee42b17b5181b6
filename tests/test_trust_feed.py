"""Issue 10, the feed's half: nothing wrong, leaked or hostile in a feed reaches a real account.

One test (at least) per path, named after it, with the issue's attack strings: feed text is
normalised and anything that would become a link, mention, hashtag or markup is held (6); one
absurd value rejects its snapshot with a named reason and the daemon moves on, /healthz saying
so (7); feed credentials travel in headers, and URLs are shown masked (8); the deadline covers
the whole request and redirects cannot leave the feed's kind of address (9); a configuration
pointing at nothing refuses to start, and files vanishing later degrade health (12).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import socketserver
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import Config, FeedConfig, ServiceConfig
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.domain.model import Snapshot
from broadcaster.domain.posts import PostState
from broadcaster.ingest import gates
from broadcaster.ingest.parsers import FeedError, parse
from broadcaster.ingest.sources import HttpSource, SourceDown, make_fetched
from broadcaster.outbox.store import Store, posts, snapshots
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import (
    DEMO,
    SHARED_FEEDS,
    broadcaster_cmd,
    read_jsonl,
    wait_for,
    write_config,
)
from tests.local_servers import free_port
from tests.nist_builder import (
    candidate,
    candidate_contest,
    coalition,
    counts,
    dumps,
    party,
    report,
    unit,
)
from tests.test_parse_mapped import example

RLO = "\u202e"
NEWLINE_ATTACK = "Alya Rahman\n\nBREAKING: results annulled"


def two_seats(
    names: dict[str, str] | None = None,
    *,
    at: str = "21:00",
    reported: int = 5,
    contest_name: str | None = None,
    party_names: dict[str, str] | None = None,
    coalition_name: str | None = None,
    votes: int = 600,
) -> dict[str, Any]:
    """Two single seats, c1 (Ana v Ben) and c2 (Cai v Dee), half reported; names overridable."""
    n = {"can-a": "Ana", "can-b": "Ben", "can-c": "Cai", "can-d": "Dee", **(names or {})}
    pn = {"par-a": "Party A", "par-b": "Party B", "par-c": "Party C", **(party_names or {})}
    contests = [
        candidate_contest(
            "c1",
            [("s-a", "can-a", [counts("ru-1", votes)]), ("s-b", "can-b", [counts("ru-1", 300)])],
            reported=(reported, 10),
        ),
        candidate_contest(
            "c2",
            [("s-c", "can-c", [counts("ru-2", 200)]), ("s-d", "can-d", [counts("ru-2", 150)])],
            district="ru-2",
            reported=(reported, 10),
        ),
    ]
    if contest_name is not None:
        contests[0]["Name"] = contest_name
    parties = [party(pid, name) for pid, name in pn.items()]
    parties.append(coalition("coal-1", coalition_name or "Unity Front", ["par-c"]))
    return report(
        contests,
        candidates=[
            candidate("can-a", n["can-a"], "par-a"),
            candidate("can-b", n["can-b"], "par-b"),
            candidate("can-c", n["can-c"], "par-c"),
            candidate("can-d", n["can-d"], "par-b"),
        ],
        units=[unit("ru-1"), unit("ru-2")],
        parties=parties,
        generated=f"2030-07-28T{at}:00+07:00",
    )


class Night:
    """A real pipeline and dispatcher (dry run) on a real SQLite file."""

    def __init__(self, folder: Path, *, database: str = "sqlite:///state.db") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        accounts = "".join(
            f'\n[[accounts]]\nname = "{p}-test"\nplatform = "{p}"\ndry_run = true\n'
            f"quota = [{{posts = 100000, seconds = 86400}}]\n"
            for p in ("facebook", "x")
        )
        cfg = write_config(
            folder / "c.toml",
            source="feed.json",
            accounts=accounts,
            gates="",
            database=database,
            extra="[events]\ntally_every = 0\n",
        )
        self.config: Config = load_config(cfg)
        self.store = Store(self.config.database_url)
        self.clock = FeedClock()
        self.pipeline = Pipeline(self.config, self.store, clock=self.clock, dry_run=True)
        self.out = folder / "posts.jsonl"
        env = publisher_env(self.config, self.store, self.clock, self.out)
        self.dispatcher = Dispatcher(
            self.config, self.store, clock=self.clock, env=env, dry_run=True
        )

    def feed(self, doc: dict[str, Any] | bytes, name: str):
        data = doc if isinstance(doc, bytes) else dumps(doc)
        result = self.pipeline.ingest(make_fetched(data, name), "test")
        if result.snapshot is not None:
            self.clock.advance_to(result.snapshot.generated_at)
        self.dispatcher.drain()
        return result

    def rows(self) -> list[Any]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(select(posts).order_by(posts.c.id)))

    def close(self) -> None:
        self.dispatcher.close()
        self.store.close()


@pytest.fixture
def night(tmp_path: Path) -> Iterator[Night]:
    n = Night(tmp_path)
    yield n
    n.close()


def held_and_sent(night: Night) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    held: dict[str, list[Any]] = {}
    sent: dict[str, list[Any]] = {}
    for row in night.rows():
        into = held if row.state == PostState.HELD else sent if row.state == PostState.SENT else {}
        into.setdefault(row.contest_id, []).append(row)
    return held, sent


# -- path 6: feed text is published verbatim ----------------------------------------------------


def test_path6_rtl_override_and_newlines_in_a_name_are_normalised_and_held(night: Night):
    doc = two_seats({"can-a": f"Alya Rahman{RLO}", "can-b": NEWLINE_ATTACK})
    result = night.feed(doc, "1.json")
    assert result.outcome == "accepted", result.error
    names = {s.id: s.name for s in result.snapshot.contests[0].selections}
    assert names == {"s-a": "Alya Rahman", "s-b": "Alya Rahman BREAKING: results annulled"}
    assert {f.check for f in result.findings} == {"feed_markup"}
    assert {f.contest_id for f in result.findings} == {"c1"}

    held, sent = held_and_sent(night)
    assert held.get("c1"), "the contest with the hostile names must be held"
    assert "c1" not in sent
    assert sent.get("c2"), "the other contest is not affected"
    for row in held["c1"]:
        assert RLO not in row.text
        assert "Rahman\n" not in row.text
        assert row.hold_reason.startswith(gates.HOLD_PREFIX)
    reasons = " ".join(r.hold_reason for r in held["c1"])
    assert "bidi control" in reasons
    assert "line break" in reasons
    published = " ".join(r["text"] for r in read_jsonl(night.out))
    assert RLO not in published
    assert "BREAKING" not in published


def test_path6_zero_width_and_invisible_characters_are_dropped_but_script_joiners_kept():
    from broadcaster.ingest.parsers.clean import clean_text

    # Word joiner, BOM, soft hyphen, LRM: invisible, dropped.
    assert clean_text("Al\u2060ya\ufeff Rah\u00adman\u200e", "x") == ("Alya Rahman", [])
    # Khmer needs the zero-width space (word breaks) and the joiners: they stay, byte for byte.
    khmer = "ជាប់\u200bឆ្នោត \u200cក\u200dខ"
    assert clean_text(khmer, "x") == (khmer, [])
    # Decomposed Latin becomes NFC; whitespace runs holding a break collapse to one space.
    assert clean_text("Jose\u0301 \t\r\n  Ramos", "x") == ("José Ramos", ["line break"])


@pytest.mark.parametrize(
    ("attack", "where"),
    [
        ("@POTUS", "selection"),
        ("#ElectionFraud", "selection"),
        ("evil.com", "contest"),
        ("<script>alert(1)</script>", "selection"),
        ("Ana (see http://results.example/annulled)", "selection"),
        ("#ElectionFraud", "party"),
    ],
)
def test_path6_links_mentions_hashtags_and_markup_in_feed_values_are_held(
    night: Night, attack: str, where: str
):
    if where == "selection":
        doc = two_seats({"can-a": attack})
    elif where == "contest":
        doc = two_seats(contest_name=attack)
    else:
        doc = two_seats(party_names={"par-a": attack})  # par-a stands in c1 only
    result = night.feed(doc, "1.json")
    assert result.outcome == "accepted", result.error
    assert {f.check for f in result.findings} == {"feed_markup"}
    assert {f.contest_id for f in result.findings} == {"c1"}
    held, sent = held_and_sent(night)
    assert held.get("c1")
    assert "c1" not in sent
    assert sent.get("c2")
    assert not [r for r in read_jsonl(night.out) if attack in r["text"]]


def test_path6_a_renamed_candidate_party_or_contest_is_held(night: Night):
    assert night.feed(two_seats(), "1.json").findings == []
    renamed = two_seats(
        {"can-a": "Ana Bakar"},
        at="21:30",
        reported=8,
        contest_name="Contest c1 (recounted)",
        party_names={"par-c": "Party C Reborn"},
    )
    result = night.feed(renamed, "2.json")
    assert result.outcome == "accepted"
    messages = {(f.check, f.contest_id, f.message) for f in result.findings}
    assert {c for c, _, _ in messages} == {"renamed"}
    assert {cid for _, cid, _ in messages} == {"c1", "c2"}  # par-c stands in c2
    text = " ".join(m for _, _, m in messages)
    assert "'Ana' to 'Ana Bakar'" in text
    assert "'Contest c1' to 'Contest c1 (recounted)'" in text
    assert "party par-c renamed from 'Party C' to 'Party C Reborn'" in text
    held, _ = held_and_sent(night)
    assert {cid for cid in held} == {"c1", "c2"}


def every_feed() -> list[tuple[str, bytes, str]]:
    feeds = [(p.name, p.read_bytes(), "auto") for p in sorted(DEMO.glob("*.json"))]
    for name in (
        "err-2022-11-08-Massachusetts-Cambridge.json",
        "err-gen-03_synthetic.json",
        "Telling_GR2022_WestMaasenWaal.eml.xml",
        "eml520_test_synthetic_kiesraad.eml.xml",
    ):
        path = SHARED_FEEDS / name
        if path.is_file():
            feeds.append((name, path.read_bytes(), "auto"))
    feeds.append(("simple-csv", example("simple-csv").encode(), "csv"))
    return feeds


def test_path6_no_false_alarm_on_real_feeds_and_the_demo_night():
    previous: Snapshot | None = None
    for name, body, fmt in every_feed():
        snap = parse(body, fmt)
        same_night = previous if name[:2].isdigit() else None
        found = [f for f in gates.check(same_night, snap) if f.check in ("feed_markup", "renamed")]
        assert found == [], name
        if name[:2].isdigit():
            previous = snap
    for name in ("St. John", "St.John", "J.R.R. Tolkien", "A.B. Smith", "Dr Tan, M.Sc"):
        assert gates.markup_in(name) is None, name
    assert gates.markup_in("info@evil.org")


def test_path6_the_demo_night_is_unchanged_by_normalisation():
    """Every name of the demo (and of the real sample feeds) is already clean: normalising
    changes nothing, so the demo and the templates render exactly as before."""
    for name, body, fmt in every_feed():
        raw = json.loads(body) if name.endswith(".json") else None
        snap = parse(body, fmt)
        assert snap.text_flags == (), name
        if raw is not None:
            contents = set(_contents(raw))
            shown = {snap.election} | {c.name for c in snap.contests}
            shown |= {s.name for c in snap.contests for s in c.selections}
            shown |= {p.name for p in snap.parties.values()}
            # Contests sharing an office's name get their district's: "NAME, DISTRICT".
            told_apart = {
                n
                for n in shown - contents
                if any(n[:i] in contents and n[i + 2 :] in contents for i in _commas(n))
            }
            assert shown <= contents | told_apart | {"Write-in"}, name


def _commas(text: str) -> list[int]:
    return [i for i in range(len(text)) if text.startswith(", ", i)]


def _contents(node: Any) -> Iterator[str]:
    """Every text of a NIST document, exactly as the feed gives it."""
    if isinstance(node, dict):
        if isinstance(node.get("Content"), str):
            yield node["Content"]
        for value in node.values():
            yield from _contents(value)
    elif isinstance(node, list):
        for value in node:
            yield from _contents(value)
    elif isinstance(node, str):
        yield node


# -- path 7: one feed value stops publishing, silently ----------------------------------------


def _nul_and_huge(fmt: str, kind: str) -> bytes:
    bad = "Ana\x00" if kind == "nul" else "Ana"
    if fmt == "nist":
        doc = two_seats({"can-a": bad}, votes=10**400 if kind == "huge" else 600)
        if kind == "esc":
            doc = two_seats({"can-a": "Ana\x1b[2J"})
        if kind == "c1":
            doc = two_seats({"can-a": "Ana\x9b31m"})
        return dumps(doc)
    base = example("simple-csv")
    if kind == "huge":
        return base.replace(",5210,", "," + "9" * 400 + ",").encode()
    char = {"nul": "\x00", "esc": "\x1b", "c1": "\x9b"}[kind]
    return base.replace("Alya Rahman", f"Alya{char}Rahman").encode()


@pytest.mark.parametrize("fmt", ["nist", "csv"])
@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("huge", "contests[0].selections[0].votes: a number of 40"),
        ("nul", "contests[0].selections[0].name: control character U+0000"),
        ("esc", "contests[0].selections[0].name: control character U+001B"),
        ("c1", "contests[0].selections[0].name: control character U+009B"),
    ],
)
def test_path7_absurd_counts_and_control_characters_are_rejected_with_a_named_reason(
    fmt: str, kind: str, reason: str
):
    body = _nul_and_huge(fmt, kind)
    with pytest.raises(FeedError) as exc:
        parse(body, fmt)
    assert reason in exc.value.problem
    if kind == "huge":
        assert "[feed] max_count = 10000000000" in exc.value.problem


def test_path7_max_count_is_configurable_and_applies_to_every_count(tmp_path: Path):
    doc = two_seats()
    doc["GpUnit"][0]["VotersRegistered"] = 5000
    body = dumps(doc)
    assert parse(body, max_count=5000).contests[0].electorate == 5000
    with pytest.raises(FeedError, match=r"contests\[0\]\.electorate: 5000 is above"):
        parse(body, max_count=4999)
    with pytest.raises(FeedError, match=r"contests\[0\]\.progress\.total: 10 is above"):
        parse(dumps(two_seats()), max_count=9)
    cfg = write_config(tmp_path / "c.toml", source="f.json", extra="")
    cfg.write_text(
        cfg.read_text().replace("poll_interval = 0.2", "poll_interval = 0.2\nmax_count = 400")
    )
    from broadcaster.ingest.parsers import reader_for

    with pytest.raises(FeedError, match=r"votes: 600 is above .*max_count = 400"):
        reader_for(load_config(cfg))(dumps(two_seats()))


def test_path7_an_unexpected_error_rejects_the_snapshot_and_the_next_one_is_read(
    night: Night, monkeypatch
):
    assert night.feed(two_seats(), "1.json").outcome == "accepted"

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug that one value triggers")

    with monkeypatch.context() as m:
        m.setattr("broadcaster.runtime.cycle.compute_tally", broken)
        result = night.feed(two_seats(at="21:30", reported=8), "2.json")
    assert result.outcome == "rejected"
    assert result.error == "unexpected error: ZeroDivisionError: a bug that one value triggers"
    assert night.feed(two_seats(at="22:00", reported=9), "3.json").outcome == "accepted"
    with night.store.engine.connect() as conn:
        rows = conn.execute(select(snapshots.c.name, snapshots.c.accepted, snapshots.c.error))
        assert [(r.name, r.accepted) for r in rows] == [
            ("1.json", True),
            ("2.json", False),
            ("3.json", True),
        ]


def test_path7_a_nul_byte_in_a_name_is_rejected_on_postgresql(tmp_path: Path, postgres_url: str):
    night = Night(tmp_path, database=postgres_url)
    try:
        assert night.feed(two_seats(), "1.json").outcome == "accepted"
        bad = night.feed(two_seats({"can-a": "Ana\x00Bakar"}, at="21:30", reported=8), "2.json")
        assert bad.outcome == "rejected"
        assert bad.error == "contests[0].selections[0].name: control character U+0000"
        good = night.feed(two_seats(at="22:00", reported=9), "3.json")
        assert good.outcome == "accepted", good.error
        assert night.store.snapshot_counts() == (2, 1)
    finally:
        night.close()


class Running:
    """A daemon started by `running_daemon`: waiting on it fails at once if it exits, with
    the end of its log in the message."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log = proc, log

    def wait(self, predicate: Callable[[], object], timeout: float = 60) -> None:
        wait_for(predicate, timeout, proc=self.proc, log=self.log)


@contextlib.contextmanager
def running_daemon(cfg: Path, folder: Path, env: dict[str, str] | None = None) -> Iterator[Running]:
    """The real daemon in its own process group, killed with its group whatever happens."""
    log = (folder / "daemon.log").open("w")
    proc = subprocess.Popen(
        [*broadcaster_cmd(), "--log-format", "json", "run", "--config", str(cfg), "--dry-run"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )
    try:
        yield Running(proc, folder / "daemon.log")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


def status_of(cli, cfg: Path) -> str:
    return cli("status", "--config", str(cfg), columns=200).stdout


def test_path7_a_bad_value_is_rejected_and_the_daemon_moves_on_and_says_so(tmp_path: Path, cli):
    feed = tmp_path / "feed.json"
    feed.write_bytes(dumps(two_seats()))
    port = free_port()
    cfg = write_config(
        tmp_path / "c.toml",
        source=str(feed),
        extra=f'[service]\nlisten = "127.0.0.1:{port}"\ndegraded_after_failures = 3\n',
    )
    with running_daemon(cfg, tmp_path) as daemon:
        daemon.wait(lambda: healthz(port)[0] == 200 and count(tmp_path, True) == 1)
        feed.write_bytes(dumps(two_seats(at="21:30", reported=8, votes=10**400)))
        daemon.wait(lambda: healthz(port)[0] == 503)
        body = healthz(port)[1]
        assert body["status"] == "degraded"
        problem = " ".join(body["problems"])
        assert "polls failed" in problem
        assert "contests[0].selections[0].votes: a number of 401 digits" in problem
        assert "contests[0].selections[0].votes" in status_of(cli, cfg)
        assert "degraded" in status_of(cli, cfg)

        feed.write_bytes(dumps(two_seats({"can-b": "Ben\x00"}, at="21:40", reported=8)))
        daemon.wait(lambda: count(tmp_path, False) == 2)
        daemon.wait(lambda: "U+0000" in " ".join(healthz(port)[1].get("problems", [])))

        feed.write_bytes(dumps(two_seats(at="22:00", reported=9)))
        daemon.wait(lambda: count(tmp_path, True) == 2)
        daemon.wait(lambda: healthz(port)[0] == 200)
        assert daemon.proc.poll() is None
        time.sleep(1)  # several more polls: nothing is read again
    assert count(tmp_path, False) == 2
    assert count(tmp_path, True) == 2


def count(folder: Path, accepted: bool) -> int:
    db = folder / "state.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(
            "select count(*) from snapshots where accepted = ?", (1 if accepted else 0,)
        ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


# -- issue 11 item 7: feed freshness in /healthz -------------------------------------------------


def test_health_counts_good_and_failed_polls_and_minutes_without_a_good_one():
    from broadcaster.ingest.health import FeedHealth, feed_problems

    service = ServiceConfig(degraded_after_failures=3, feed_stale_after=600)
    health = FeedHealth(started_at=1000.0)
    assert feed_problems(health, service, 1500) == []
    assert feed_problems(health, service, 1600)[0].message.startswith("no good poll for 600 s")
    health.record("accepted", None, 1600)
    for t in (1601, 1602):
        health.record("down", "HTTP 503", t)
    health.record("waiting", None, 1603)  # backing off: no request made, not a failure
    assert feed_problems(health, service, 1604) == []
    health.record("down", "HTTP 503", 1605)
    assert [str(p) for p in feed_problems(health, service, 1606)] == [
        "feed: the last 3 polls failed (down: HTTP 503)"
    ]
    health.record("unchanged", None, 1607)
    assert feed_problems(health, service, 1608) == []
    # A feed stuck on a rejected snapshot (unchanged since) keeps failing.
    health.record("rejected", "contests[0].name: control character U+0000", 1609)
    health.record("unchanged", None, 1610)
    health.record("duplicate", None, 1611)
    assert "U+0000" in str(feed_problems(health, service, 1612)[0])
    assert FeedHealth.from_dict(json.loads(json.dumps(health.to_dict()))) == health


def test_feed_down_or_stale_degrades_healthz_and_status(tmp_path: Path, cli):
    server = Quiet(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    server.answers = [(200, dumps(two_seats()))]  # type: ignore[attr-defined]
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    url = f"http://127.0.0.1:{server.server_address[1]}/feed.json"
    cfg = write_config(
        tmp_path / "c.toml",
        source=url,
        extra=f'[service]\nlisten = "127.0.0.1:{port}"\nfeed_stale_after = 4\n',
    )
    cfg.write_text(
        cfg.read_text().replace("poll_interval = 0.2", "poll_interval = 0.2\nbackoff_max = 0.3")
    )
    try:
        with running_daemon(cfg, tmp_path) as daemon:
            daemon.wait(lambda: count(tmp_path, True) == 1)
            assert healthz(port)[0] == 200
            server.answers = [(503, b"down")]  # type: ignore[attr-defined]
            daemon.wait(lambda: healthz(port)[0] == 503)
            body = healthz(port)[1]
            assert any("polls failed (down:" in p and "HTTP 503" in p for p in body["problems"])
            daemon.wait(lambda: any("no good poll" in p for p in healthz(port)[1]["problems"]))
            assert "no good poll for" in status_of(cli, cfg)
            server.answers = [(200, dumps(two_seats()))]  # type: ignore[attr-defined]
            daemon.wait(lambda: healthz(port)[0] == 200)
    finally:
        server.shutdown()
        server.server_close()


class Quiet(ThreadingHTTPServer):
    """A test server that does not print the connections its clients drop on purpose."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Scripted(BaseHTTPRequestHandler):
    """Answers with the server's current (status, body); records each request's headers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv: Any = self.server
        srv.seen.append((self.path, dict(self.headers)))
        status, body = srv.answers[0]
        if getattr(srv, "token", None) and self.headers.get("Authorization") != srv.token:
            status, body = 401, b"unauthorised"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# -- path 8: feed credentials ------------------------------------------------------------------


def test_path8_safe_url_masks_userinfo_and_query_secrets():
    from broadcaster.ingest.sources import safe_url

    assert (
        safe_url("https://user:s3cret-pass@feed.example/r.json?election=2030&token=abc123def")
        == "https://user:***@feed.example/r.json?election=2030&token=***"
    )
    assert safe_url("https://tok-abcdef@host/x") == "https://***@host/x"
    assert (
        safe_url("https://h/x?X-Amz-Signature=aa&X-Amz-Credential=bb&api_key=cc&sig=dd&a=1")
        == "https://h/x?X-Amz-Signature=***&X-Amz-Credential=***&api_key=***&sig=***&a=1"
    )
    assert safe_url("https://host/plain.json") == "https://host/plain.json"


def test_path8_feed_headers_come_from_the_environment_and_no_url_secret_is_shown_or_stored(
    tmp_path: Path, cli, monkeypatch
):
    header_secret = "Bearer hdr-secret-4567"
    password, query_token = "pa55word-secret", "tok-secret-123456"
    server = Quiet(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    server.token = header_secret  # type: ignore[attr-defined]
    server.answers = [(200, dumps(two_seats()))]  # type: ignore[attr-defined]
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    url = (
        f"http://feeduser:{password}@127.0.0.1:{server.server_address[1]}/feed.json"
        f"?election=2030&token={query_token}"
    )
    cfg = write_config(
        tmp_path / "c.toml",
        source=url,
        extra=f'[service]\nlisten = "127.0.0.1:{port}"\ndegraded_after_failures = 2\n',
    )
    cfg.write_text(
        cfg.read_text().replace(
            "poll_interval = 0.2",
            'poll_interval = 0.2\nbackoff_max = 0.3\nheaders = { Authorization = "FEED_TOKEN" }',
        )
    )
    env = {"FEED_TOKEN": header_secret}
    secrets = (header_secret, "hdr-secret-4567", password, query_token)
    try:
        with running_daemon(cfg, tmp_path, env=env) as daemon:
            daemon.wait(lambda: count(tmp_path, True) == 1)
            server.answers = [(503, b"down")]  # type: ignore[attr-defined]
            daemon.wait(lambda: healthz(port)[0] == 503)
            shown = [json.dumps(healthz(port)[1]), status_of(cli, cfg)]
        monkeypatch.setenv("FEED_TOKEN", header_secret)
        check = cli("feed", "check", url, "--config", str(cfg))
    finally:
        server.shutdown()
        server.server_close()
    assert server.seen[0][1].get("Authorization") == header_secret  # type: ignore[attr-defined]
    assert "token=***" in shown[0]
    assert "token=***" in shown[1]
    assert "feeduser:***@" in check.stderr
    shown += [check.stdout, check.stderr, (tmp_path / "daemon.log").read_text()]
    db = (tmp_path / "state.db").read_bytes()
    for secret in secrets:
        assert secret.encode() not in db
        for text in shown:
            assert secret not in text


def test_path8_feed_headers_are_not_sent_to_another_origin(tmp_path: Path):
    target = Quiet(("127.0.0.1", 0), Scripted)
    target.daemon_threads = True
    target.answers = [(200, b"{}")]  # type: ignore[attr-defined]
    target.seen = []  # type: ignore[attr-defined]
    home = Quiet(("127.0.0.1", 0), Redirecting)
    home.daemon_threads = True
    home.location = f"http://localhost:{target.server_address[1]}/elsewhere"  # type: ignore[attr-defined]
    for srv in (target, home):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{home.server_address[1]}/feed.json"
    try:
        feed = FeedConfig(source=url, headers={"Authorization": "FEED_TOKEN"})
        from broadcaster.core.secrets import Secrets

        src = HttpSource(url, feed, secrets=Secrets(environ={"FEED_TOKEN": "Bearer xyz-123456"}))
        assert src.fetch() is not None
    finally:
        for srv in (target, home):
            srv.shutdown()
            srv.server_close()
    assert home.seen[0].get("Authorization") == "Bearer xyz-123456"  # type: ignore[attr-defined]
    assert "Authorization" not in target.seen[0][1]  # type: ignore[attr-defined]


class Redirecting(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv: Any = self.server
        if not hasattr(srv, "seen"):
            srv.seen = []
        srv.seen.append(dict(self.headers))
        self.send_response(302)
        self.send_header("Location", srv.location)
        self.send_header("Content-Length", "0")
        self.end_headers()


# -- path 9: the network ------------------------------------------------------------------------


class Trickle(socketserver.BaseRequestHandler):
    """Sends the status line and headers one byte every 0.1 s (a minute of headers)."""

    def handle(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 600 + b"\r\nContent-Length: 2\r\n\r\n{}"
        try:
            for i in range(len(head)):
                self.request.sendall(head[i : i + 1])
                time.sleep(0.1)
        except OSError:
            pass  # the client hung up: what we want


def test_path9_the_deadline_covers_a_server_trickling_its_headers():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/feed.json"
    try:
        src = HttpSource(url, FeedConfig(source=url, deadline=1, read_timeout=5))
        started = time.monotonic()
        with pytest.raises(SourceDown, match=r"not complete after 1 s"):
            src.fetch()
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert elapsed < 10, f"the poll was held {elapsed:.0f} s by trickled headers"


def self_signed(folder: Path) -> tuple[Path, Path]:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_path9_a_redirect_from_https_down_to_http_is_refused(tmp_path: Path, monkeypatch):
    cert, key = self_signed(tmp_path)
    plain = Quiet(("127.0.0.1", 0), Scripted)
    plain.answers = [(200, b"{}")]  # type: ignore[attr-defined]
    plain.seen = []  # type: ignore[attr-defined]
    secure = Quiet(("127.0.0.1", 0), Redirecting)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    for srv in (plain, secure):
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    url = f"https://127.0.0.1:{secure.server_address[1]}/feed.json"
    try:
        # https to https (the same server, another path) is followed...
        secure.location = f"https://127.0.0.1:{plain.server_address[1]}/x"  # type: ignore[attr-defined]
        with pytest.raises(SourceDown, match=r"SSLError|ConnectionError"):
            HttpSource(url, FeedConfig(source=url)).fetch()  # plain does not speak TLS
        # ...https to http is not, even to the same host.
        secure.location = f"http://127.0.0.1:{plain.server_address[1]}/feed.json"  # type: ignore[attr-defined]
        with pytest.raises(SourceDown, match=r"redirected from https to http://127\.0\.0\.1"):
            HttpSource(url, FeedConfig(source=url, allow_private_redirects=True)).fetch()
    finally:
        for srv in (plain, secure):
            srv.shutdown()
            srv.server_close()
    assert plain.seen == []  # type: ignore[attr-defined]


def machine_address() -> str | None:
    """This machine's address on its default route (not loopback), if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_path9_a_redirect_may_not_leave_the_feeds_kind_of_address(tmp_path: Path):
    address = machine_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    target = Quiet(("0.0.0.0", 0), Scripted)  # noqa: S104 (both addresses)
    target.answers = [(200, b'{"ok": 1}')]  # type: ignore[attr-defined]
    target.seen = []  # type: ignore[attr-defined]
    home = Quiet(("0.0.0.0", 0), Redirecting)  # noqa: S104
    for srv in (target, home):
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = target.server_address[1]
    try:
        # A loopback feed may redirect to loopback: it does not leave its kind of address.
        home.location = f"http://localhost:{port}/feed.json"  # type: ignore[attr-defined]
        url = f"http://127.0.0.1:{home.server_address[1]}/feed.json"
        assert HttpSource(url, FeedConfig(source=url)).fetch().body == b'{"ok": 1}'
        # A feed on this machine's (private or public) address may not redirect to loopback...
        home.location = f"http://127.0.0.1:{port}/feed.json"  # type: ignore[attr-defined]
        url = f"http://{address}:{home.server_address[1]}/feed.json"
        seen = len(target.seen)  # type: ignore[attr-defined]
        with pytest.raises(SourceDown, match="for a loopback one"):
            HttpSource(url, FeedConfig(source=url)).fetch()
        assert len(target.seen) == seen  # type: ignore[attr-defined]
        # ...unless the configuration allows it.
        allowed = FeedConfig(source=url, allow_private_redirects=True)
        assert HttpSource(url, allowed).fetch().body == b'{"ok": 1}'
    finally:
        for srv in (target, home):
            srv.shutdown()
            srv.server_close()


def test_path9_redirect_policy_by_kind_of_address():
    from broadcaster.ingest.sources import address_kind, redirect_refusal

    assert address_kind("8.8.8.8") == "public"
    assert address_kind("10.1.2.3") == "private"
    assert address_kind("192.168.0.1") == "private"
    assert address_kind("127.0.0.1") == "loopback"
    assert address_kind("::1") == "loopback"
    assert address_kind("169.254.169.254") == "link-local"
    assert address_kind("fe80::1") == "link-local"
    assert address_kind("::ffff:127.0.0.1") == "loopback"
    public, private = {"public"}, {"private"}
    assert redirect_refusal(public, {"public"}, allow_private=False) is None
    for kind in ("private", "loopback", "link-local"):
        assert redirect_refusal(public, {kind}, allow_private=False), kind
        assert redirect_refusal(public, {kind}, allow_private=True) is None
    assert redirect_refusal(private, {"private"}, allow_private=False) is None
    assert redirect_refusal(private, {"loopback"}, allow_private=False)
    assert redirect_refusal({"loopback"}, {"loopback"}, allow_private=False) is None


# -- path 12: quiet failures at start --------------------------------------------------------------


def _config_with(tmp_path: Path, case: str) -> tuple[Path, str]:
    feed = tmp_path / "feed.json"
    feed.write_bytes(sorted(DEMO.glob("*.json"))[0].read_bytes())
    if case == "missing feed":
        return write_config(tmp_path / "c.toml", source="nowhere/feed.json"), "[feed] source"
    if case == "empty folder":
        (tmp_path / "snapshots").mkdir()
        (tmp_path / "snapshots" / "README.txt").write_text("not a snapshot")
        return write_config(tmp_path / "c.toml", source="snapshots"), "[feed] source"
    if case == "missing logo":
        cfg = write_config(tmp_path / "c.toml", source=str(feed), cards=True)
        text = cfg.read_text().replace("enabled = true", 'enabled = true\nlogo = "logo.png"')
        cfg.write_text(text)
        return cfg, "[cards] logo"
    if case == "missing templates":
        extra = '[templates]\ndir = "my-templates"\n'
        return write_config(tmp_path / "c.toml", source=str(feed), extra=extra), "[templates] dir"
    if case == "missing account templates":
        accounts = '\n[[accounts]]\nname = "fb"\nplatform = "facebook"\ntemplates = "fb-tpl"\n'
        cfg = write_config(tmp_path / "c.toml", source=str(feed), accounts=accounts)
        return cfg, "accounts (fb).templates"
    assert case == "missing header secret"
    cfg = write_config(tmp_path / "c.toml", source="https://feed.example/r.json")
    text = cfg.read_text().replace(
        "poll_interval = 0.2", 'poll_interval = 0.2\nheaders = { Authorization = "NO_SUCH_VAR" }'
    )
    cfg.write_text(text)
    return cfg, "[feed] headers.Authorization"


@pytest.mark.parametrize(
    "case",
    [
        "missing feed",
        "empty folder",
        "missing logo",
        "missing templates",
        "missing account templates",
        "missing header secret",
    ],
)
def test_path12_run_refuses_to_start_naming_the_key(tmp_path: Path, cli, case: str):
    from broadcaster.runtime.preflight import preflight

    cfg, key = _config_with(tmp_path, case)
    result = cli("run", "--config", str(cfg), "--dry-run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refusing to start" in result.stderr
    assert key in result.stderr
    assert not (tmp_path / "state.db").exists(), "nothing is created before the checks pass"
    problems = preflight(load_config(cfg))
    assert [p.key for p in problems] == [key]


def test_path12_files_vanishing_while_running_degrade_healthz_and_status(tmp_path: Path, cli):
    from broadcaster.runtime.preflight import runtime_problems

    feed = tmp_path / "feed.json"
    feed.write_bytes(dumps(two_seats()))
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG not really")
    port = free_port()
    cfg = write_config(
        tmp_path / "c.toml",
        source=str(feed),
        extra=f'[service]\nlisten = "127.0.0.1:{port}"\ndegraded_after_failures = 1000\n',
    )
    with running_daemon(cfg, tmp_path) as daemon:
        daemon.wait(lambda: count(tmp_path, True) == 1 and healthz(port)[0] == 200)
        feed.unlink()
        daemon.wait(lambda: healthz(port)[0] == 503)
        problems = healthz(port)[1]["problems"]
        assert any(p.startswith("[feed] source: ") and "does not exist" in p for p in problems)
        assert "[feed] source" in status_of(cli, cfg)
        feed.write_bytes(dumps(two_seats(at="21:30", reported=8)))
        daemon.wait(lambda: healthz(port)[0] == 200)
    config = load_config(cfg).with_overrides(
        cards=load_config(cfg).cards.model_copy(update={"enabled": True, "logo": str(logo)})
    )
    assert runtime_problems(config) == []
    logo.chmod(0)
    if os.access(logo, os.R_OK):  # root reads anything: take the file away instead
        logo.unlink()
    assert [p.key for p in runtime_problems(config)] == ["[cards] logo"]


def test_path6_markup_is_found_again_in_every_snapshot_though_each_name_is_searched_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Names repeat between snapshots, so the gate remembers its answers for the last two
    snapshots (issue 13): a hostile name is still reported in each snapshot that has it, a
    changed name is searched afresh, and an unchanged one is not searched again."""
    searched: list[str] = []
    original = gates.markup_in

    def counted(value: str) -> str | None:
        searched.append(value)
        return original(value)

    monkeypatch.setattr(gates, "markup_in", counted)
    hostile = {"can-a": "Ana evil.com"}
    first = parse(dumps(two_seats(hostile)))
    second = parse(dumps(two_seats(hostile, at="21:30", reported=6)))
    third = parse(dumps(two_seats({"can-a": "Ana Rahman"}, at="22:00", reported=7)))
    for snap in (first, second):
        found = [f for f in gates.check(None, snap) if f.check == "feed_markup"]
        assert [f.contest_id for f in found] == ["c1"]
        assert "evil.com" in found[0].message
    assert searched.count("Ana evil.com") == 1
    searched.clear()
    assert [f for f in gates.check(None, third) if f.check == "feed_markup"] == []
    assert searched == ["Ana Rahman"]
