"""End to end on real SQLite files: the commands in this process (`cli`), and the real
`broadcaster` command as a subprocess where a process is the point (the demo from any folder,
a rehearsal and the daemon killed and resumed)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from tests.conftest import DEMO, broadcaster_cmd, invoke, read_jsonl, wait_for, write_config


@pytest.fixture(scope="module")
def test_config(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("cfg") / "c.toml", source="feed")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, test_config) -> list[dict]:
    """The posts of one uninterrupted fast rehearsal of the demo night."""
    out = tmp_path_factory.mktemp("reference")
    result = invoke(
        "rehearse", str(DEMO), "--fast", "--config", str(test_config), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    return read_jsonl(out / "posts.jsonl")


def signature(records: list[dict]) -> Counter:
    """What was posted where, ignoring account names (tests name their accounts differently)."""
    return Counter((r["event_key"], r["platform"], r["text"]) for r in records)


def assert_same_night(records: list[dict], db: Path | str, reference: list[dict]) -> None:
    """A daemon's night against a rehearsal's: nothing posted twice, nothing skipped, the same
    words. When posts go out depends on timing, so a progress post may have been superseded by
    the call of its contest in one and sent in the other; either way each event is accounted
    for exactly once. `db`: the daemon's SQLite file, or its database URL."""
    posted = Counter((r["event_key"], r["platform"]) for r in records)
    assert max(posted.values()) == 1, "a post went out twice"
    engine = create_engine(db if isinstance(db, str) else f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            superseded = {
                (key, platform): kind
                for key, platform, kind in conn.execute(
                    text(
                        "select event_key, platform, event_kind from posts"
                        " where state = 'superseded'"
                    )
                )
            }
    finally:
        engine.dispose()
    expected = {(r["event_key"], r["platform"]): r["text"] for r in reference}
    for r in records:
        key = (r["event_key"], r["platform"])
        assert key in expected, f"{key} was not posted in the rehearsal"
        assert r["text"] == expected[key]
    for key in expected:
        assert key in posted or key in superseded, f"{key} was skipped"
        if key in superseded:
            assert superseded[key] in ("progress", "leader", "tally"), key


def test_demo_runs_from_any_folder_and_summarises(tmp_path: Path, run_cli):
    result = run_cli("demo", "--out", str(tmp_path / "d"), cwd=tmp_path, columns=80)
    assert result.returncode == 0, result.stderr
    assert "fictional TEST data" in result.stdout
    # The summary table, readable in an 80-column terminal: no name cut short.
    header = next(line for line in result.stdout.splitlines() if line.split()[1:2] == ["event"])
    for platform in ("facebook", "youtube", "tiktok", "x"):
        assert f" {platform} " in header
    for kind in ("progress", "leader", "called", "corrected", "tally", "majority", "summary"):
        assert any(line.split()[1:2] == [kind] for line in result.stdout.splitlines()), kind
    assert "…" not in result.stdout.split("Posts that would have gone out")[1].split("total")[0]
    assert "15 accepted" in result.stdout
    records = read_jsonl(tmp_path / "d" / "posts.jsonl")
    assert records
    assert all(r["text"].startswith("[TEST]") for r in records)


def test_rehearse_twice_into_the_same_folder_posts_nothing_new(
    tmp_path: Path, cli, reference, test_config
):
    out = tmp_path / "r"
    first = cli("rehearse", str(DEMO), "--fast", "--config", str(test_config), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert signature(read_jsonl(out / "posts.jsonl")) == signature(reference)
    second = cli("rehearse", str(DEMO), "--fast", "--config", str(test_config), "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert "0 new posts" in second.stdout
    assert "15 already processed" in second.stdout
    assert signature(read_jsonl(out / "posts.jsonl")) == signature(reference)


def test_rehearse_names_and_skips_rejected_snapshots(tmp_path: Path, cli, test_config):
    replay = tmp_path / "night"
    shutil.copytree(DEMO, replay)
    (replay / "05-2131-broken.json").write_text(
        '{"@type": "ElectionResults.ElectionReport", "Status"'
    )
    (replay / "07-2231-empty.json").write_text("")
    result = cli(
        "rehearse",
        str(replay),
        "--fast",
        "--config",
        str(test_config),
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 0, result.stderr
    assert "rejected 05-2131-broken.json" in result.stdout
    assert "malformed JSON" in result.stdout
    assert "rejected 07-2231-empty.json" in result.stdout
    assert "2 rejected" in result.stdout


def test_rehearse_speed_follows_the_feed_clock(tmp_path: Path, cli, reference, test_config):
    # 15 snapshots 30 minutes apart at 36000x: about 0.05 s between snapshots.
    result = cli(
        "rehearse",
        str(DEMO),
        "--speed",
        "36000",
        "--config",
        str(test_config),
        "--out",
        str(tmp_path / "s"),
    )
    assert result.returncode == 0, result.stderr
    records = read_jsonl(tmp_path / "s" / "posts.jsonl")
    assert signature(records) == signature(reference)
    # published_at is feed time: the night's own clock, not today's.
    assert all(r["published_at"].startswith(("2030-07-28", "2030-07-29")) for r in records)


def test_rehearsal_killed_midway_resumes_without_duplicates_or_losses(
    tmp_path: Path, reference, test_config, processes
):
    out = tmp_path / "k"
    proc = processes.start(
        [
            *broadcaster_cmd(),
            "rehearse",
            str(DEMO),
            "--speed",
            "3600",
            "--config",
            str(test_config),
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: len(read_jsonl(out / "posts.jsonl")) >= 40, proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    partial = read_jsonl(out / "posts.jsonl")
    assert 0 < len(partial) < len(reference)
    result = invoke(
        "rehearse", str(DEMO), "--fast", "--config", str(test_config), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert signature(read_jsonl(out / "posts.jsonl")) == signature(reference), result.stdout


def test_preview_prints_the_post(cli):
    snap = sorted(DEMO.glob("*.json"))[-1]
    result = cli(
        "preview",
        "--snapshot",
        str(snap),
        "--platform",
        "x",
        "--event",
        "called",
        "--contest",
        "cc-D05",
    )
    assert result.returncode == 0, result.stderr
    assert "wins D05 Old Quarry" in result.stdout
    assert result.stdout.startswith("[TEST]")
    missing = cli("preview", "--snapshot", str(snap), "--platform", "x", "--contest", "nope")
    assert missing.returncode == 1
    assert "no contest 'nope'" in missing.stderr


# -- the daemon ---------------------------------------------------------------------------------


def db_count(db: Path | str, sql: str) -> int:
    """A count from the daemon's database (its SQLite file, or its URL); 0 before it exists."""
    if isinstance(db, str):
        engine = create_engine(db)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(sql)).scalar_one())
        except ProgrammingError:  # the daemon has not created its tables yet
            return 0
        finally:
            engine.dispose()
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


class Daemon:
    """`broadcaster run` as a subprocess; its log goes to a file (a pipe nobody reads would fill
    up and block the daemon's logging)."""

    def __init__(self, cfg: Path, *extra: str) -> None:
        self.log_path = cfg.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*broadcaster_cmd(), "--log-format", "json", "run", "--config", str(cfg), *extra],
            cwd=cfg.parent,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own group: killed whole if the test fails
        )

    def wait(self, predicate: Callable[[], object], timeout: float = 60) -> None:
        """`wait_for`, failing at once if the daemon exits, with its log in the message."""
        self._log.flush()
        wait_for(predicate, timeout, proc=self.proc, log=self.log_path)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the daemon did not stop within {timeout} s:\n{self.log_path.read_text()[-2000:]}"
            ) from None
        self._log.close()
        return code, self.log_path.read_text()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


RUNNING: list[Daemon] = []


def start_daemon(cfg: Path, *extra: str) -> Daemon:
    daemon = Daemon(cfg, *extra)
    RUNNING.append(daemon)
    return daemon


@pytest.fixture(autouse=True)
def _no_daemon_left_behind():
    """A test that fails half-way must not leave its daemon running after the suite."""
    yield
    while RUNNING:
        RUNNING.pop().kill()


def all_sent(db: Path | str, snapshots: int) -> bool:
    processed = db_count(db, "select count(*) from snapshots")
    waiting = db_count(db, "select count(*) from posts where state not in ('sent', 'superseded')")
    return processed >= snapshots and waiting == 0


def test_daemon_stops_cleanly_and_resumes_after_sigterm_and_sigkill(tmp_path: Path, reference):
    replay = tmp_path / "feed"
    shutil.copytree(DEMO, replay)
    (replay / "06-2201-broken.json").write_text("{not json")
    cfg = write_config(tmp_path / "c.toml", source="feed")
    db = tmp_path / "state.db"

    first = start_daemon(cfg, "--dry-run")
    first.wait(lambda: db_count(db, "select count(*) from snapshots") >= 5)
    code, err = first.stop(signal.SIGTERM)
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err
    assert all(line.get("dry_run") is True for line in lines), "every log line says dry run"
    assert any("DRY RUN" in line["msg"] for line in lines)
    assert lines[-1]["msg"] == "stopped cleanly"

    second = start_daemon(cfg, "--dry-run")
    second.wait(lambda: db_count(db, "select count(*) from snapshots") >= 10)
    second.stop(signal.SIGKILL)

    third = start_daemon(cfg, "--dry-run")
    third.wait(lambda: all_sent(db, 16))
    code, err3 = third.stop(signal.SIGINT)
    assert code == 0, err3
    assert db_count(db, "select count(*) from snapshots where accepted = 0") == 1
    logs = err + second.log_path.read_text() + err3
    assert logs.count("rejected snapshot 06-2201-broken.json") == 1
    posts = read_jsonl(tmp_path / "posts.jsonl")
    assert_same_night(posts, db, reference)


def test_daemon_polls_a_file_rewritten_in_place(tmp_path: Path, reference):
    feed = tmp_path / "results.json"
    files = sorted(DEMO.glob("*.json"))
    feed.write_bytes(files[0].read_bytes())
    cfg = write_config(tmp_path / "c.toml", source="results.json")
    db = tmp_path / "state.db"
    daemon = start_daemon(cfg, "--dry-run")
    try:
        daemon.wait(lambda: db_count(db, "select count(*) from snapshots") >= 1)
        for i, path in enumerate(files[1:], start=2):
            tmp = feed.with_suffix(".tmp")
            tmp.write_bytes(path.read_bytes())
            tmp.replace(feed)
            daemon.wait(lambda i=i: db_count(db, "select count(*) from snapshots") >= i)
        daemon.wait(lambda: all_sent(db, len(files)))
    finally:
        code, err = daemon.stop()
    assert code == 0, err
    assert_same_night(read_jsonl(tmp_path / "posts.jsonl"), db, reference)


def test_daemon_on_postgresql_resumes_after_sigkill(
    tmp_path: Path, reference, postgres_url: str, cli
):
    replay = tmp_path / "feed"
    shutil.copytree(DEMO, replay)
    cfg = write_config(tmp_path / "c.toml", source="feed", database=postgres_url)
    first = start_daemon(cfg, "--dry-run")
    first.wait(lambda: db_count(postgres_url, "select count(*) from snapshots") >= 6)
    first.stop(signal.SIGKILL)
    # An operator's command against the same database, between the two runs.
    status = cli("status", "--config", str(cfg))
    assert status.returncode == 0, status.stderr
    assert "x-test" in status.stdout
    second = start_daemon(cfg, "--dry-run")
    second.wait(lambda: all_sent(postgres_url, len(list(DEMO.glob("*.json")))))
    code, err = second.stop(signal.SIGTERM)
    assert code == 0, err
    assert_same_night(read_jsonl(tmp_path / "posts.jsonl"), postgres_url, reference)


def test_status_is_answered_by_the_running_daemon_as_the_database_would(tmp_path: Path, run_cli):
    """`broadcaster status` asks the running daemon (its socket beside the SQLite file) and
    prints what reading the database itself prints; with no daemon it reads the database, and
    says so when a killed daemon left its socket behind."""
    shutil.copytree(DEMO, tmp_path / "feed")
    cfg = write_config(tmp_path / "c.toml", source="feed")
    db = tmp_path / "state.db"
    sock = tmp_path / "state.db.status.sock"
    snapshots = len(list(DEMO.glob("*.json")))

    def body(output: str) -> list[str]:
        # Less what moves by the second: the time, and the lease, renewed every few seconds.
        moving = ("as the running daemon", "database: sqlite   now:", "leader: ", "  instance ")
        return [line for line in output.splitlines() if not line.startswith(moving)]

    daemon = start_daemon(cfg, "--dry-run")
    daemon.wait(lambda: sock.exists() and all_sent(db, snapshots))
    asked = run_cli("status", "--config", str(cfg), columns=200)
    direct = run_cli("status", "--config", str(cfg), "--direct", columns=200)
    assert asked.returncode == 0, asked.stderr
    assert direct.returncode == 0, direct.stderr
    assert asked.stdout.startswith(f"as the running daemon answers (pid {daemon.proc.pid}, ")
    assert "as the running daemon" not in direct.stdout
    assert "x-test" in asked.stdout
    assert "snapshots accepted: " in asked.stdout
    assert body(asked.stdout) == body(direct.stdout)
    assert asked.stderr == ""

    # The file edited while the daemon runs on the old one: its answer would hide the edit
    # (here a mistake) until the next restart refused it. The file is read instead.
    good = cfg.read_text()
    cfg.write_text(good.replace("poll_interval", "poll_intervall", 1))
    edited = run_cli("status", "--config", str(cfg), columns=200)
    assert edited.returncode == 2, edited.stdout
    assert "started with another configuration" in edited.stderr
    assert "poll_intervall" in edited.stderr
    cfg.write_text(good)
    again = run_cli("status", "--config", str(cfg), columns=200)
    assert again.stdout.startswith("as the running daemon answers"), again.stderr

    code, log = daemon.stop(signal.SIGTERM)
    assert code == 0, log
    assert not sock.exists(), "a daemon that stops removes its socket"
    after = run_cli("status", "--config", str(cfg), columns=200)
    assert after.returncode == 0, after.stderr
    assert after.stderr == "", "no note: a daemon that stopped cleanly left nothing to explain"
    assert "as the running daemon" not in after.stdout
    stopped = run_cli("status", "--config", str(cfg), "--direct", columns=200)
    assert body(after.stdout) == body(stopped.stdout)

    killed = start_daemon(cfg, "--dry-run")
    killed.wait(lambda: sock.exists())
    killed.stop(signal.SIGKILL)
    left = run_cli("status", "--config", str(cfg), columns=200)
    assert left.returncode == 0, left.stderr
    assert "no daemon answers on it: the daemon is not running" in left.stderr
    assert "as the running daemon" not in left.stdout
    assert "x-test" in left.stdout
    assert "snapshots accepted: " in left.stdout
