"""The database under several processes at once: the daemon starting while an operator runs a
command against the same new file, both writing the same state key."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import shutil
import sqlite3
import stat
import threading
import traceback
import tracemalloc
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broadcaster.domain.model import Snapshot
from broadcaster.domain.posts import HoldKind
from broadcaster.ingest.parsers import parse
from broadcaster.outbox import store as store_module
from broadcaster.outbox.schema import SchemaMismatch, upgrade
from broadcaster.outbox.store import PACKED_AT_ONCE, SCHEMA_VERSION, Store, pack_snapshot
from tests.nist_builder import candidate, candidate_contest, counts, party, report, unit


def _open_and_write(url: str) -> None:
    store = Store(url)
    store.put_state("paused:x", {"by": os.getpid()})
    store.put_state("paused:x", {"by": os.getpid(), "again": True})
    store.close()


def _open_each_at_once(urls: list[str], barrier: Any, errors: Any) -> None:
    # Started once for all the rounds (an interpreter importing SQLAlchemy takes about a second
    # on a loaded machine); the barrier lines the processes up so that they open each new
    # database at the same moment. A process that fails breaks the barrier for the others, and
    # says why first, so the test names the cause rather than the broken barrier.
    try:
        for url in urls:
            barrier.wait(timeout=180)  # a loaded CI machine starts interpreters slowly
            _open_and_write(url)
    except threading.BrokenBarrierError:
        raise
    except BaseException:
        errors.put(traceback.format_exc())
        barrier.abort()
        raise


def open_at_once(urls: str | list[str], processes: int = 4) -> None:
    """Several processes open each database of `urls` and write the same key, all at once; each
    must succeed and the last write must stand."""
    urls = [urls] if isinstance(urls, str) else urls
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    errors = ctx.Queue()
    procs = [
        ctx.Process(target=_open_each_at_once, args=(urls, barrier, errors))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout=240)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    failed = []
    while not errors.empty():
        failed.append(errors.get(timeout=5))
    assert not failed, "a process failed to open the database:\n" + "\n".join(failed)
    assert [p.exitcode for p in procs] == [0] * processes
    for url in urls:
        store = Store(url)
        try:
            assert store.get_state("paused:x")["again"] is True
            assert store.get_state("schema_version") == SCHEMA_VERSION
        finally:
            store.close()


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path):
    open_at_once([f"sqlite:///{tmp_path / f'r{round_}.db'}" for round_ in range(6)])


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path):
    Store(f"sqlite:///{tmp_path / 'state.db'}").close()
    assert stat.S_IMODE((tmp_path / "state.db").stat().st_mode) == 0o600


def _as_schema_1(path: Path) -> None:
    """Turn a database made by this version back into what schema 1 looked like."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        ALTER TABLE posts DROP COLUMN test_data;
        ALTER TABLE posts DROP COLUMN hold_kind;
        ALTER TABLE posts DROP COLUMN gate_reason;
        DROP TABLE audit;
        DROP TABLE leadership;
        DROP TABLE instances;
        DROP TABLE alembic_version;
        DROP INDEX ix_posts_updated;
        UPDATE kv SET value = '1' WHERE key = 'schema_version';
        """
    )
    db.commit()
    db.close()


def test_a_schema_1_database_is_upgraded_in_place(tmp_path: Path, demo_files: list[Path]):
    from broadcaster.rehearsal.replay import rehearse
    from broadcaster.runtime.configuration import load_config

    night = tmp_path / "snapshots"
    night.mkdir()
    for path in demo_files[:3]:  # enough for a few posts to hold; the whole night adds nothing
        shutil.copy(path, night)
    out = tmp_path / "night"
    rehearse(load_config(None), night, out)
    db = out / "state.db"
    store = Store(f"sqlite:///{db}")
    with store.engine.begin() as conn:  # a few holds as schema 1 wrote them
        conn.exec_driver_sql(
            "UPDATE posts SET state='held', hold_reason='template: x.j2:1: boom | then "
            "implausible: votes went down' WHERE id = 1"
        )
        conn.exec_driver_sql(
            "UPDATE posts SET state='held', hold_reason='implausible: votes went down' WHERE id = 2"
        )
        conn.exec_driver_sql(
            "UPDATE posts SET state='held', hold_reason='awaiting approval' WHERE id = 3"
        )
    store.close()
    _as_schema_1(db)

    # Opened as it is, it is refused with the command that migrates it; migrated in place, it
    # opens with everything kept and the new columns filled.
    with pytest.raises(SchemaMismatch, match="broadcaster db upgrade"):
        Store(f"sqlite:///{db}")
    assert upgrade(f"sqlite:///{db}").before == "0001"
    store = Store(f"sqlite:///{db}")
    try:
        assert store.get_state("schema_version") == SCHEMA_VERSION
        rows = {r.id: r for r in store.posts_in_state("held")}
        assert rows[1].hold_kind == HoldKind.TEMPLATE
        assert rows[1].gate_reason == "implausible: votes went down"
        assert rows[2].hold_kind == HoldKind.GATE
        assert rows[3].hold_kind == HoldKind.APPROVAL
        # The demo night is test data: every post of it is marked so, for the send-time guard.
        with store.engine.connect() as conn:
            flags = {v for (v,) in conn.exec_driver_sql("SELECT DISTINCT test_data FROM posts")}
        assert flags == {1}
    finally:
        store.close()


def test_a_rehearsals_database_syncs_at_checkpoints_and_a_nights_at_every_commit(
    tmp_path: Path,
) -> None:
    """A rehearsal's throwaway database skips the fsync of every commit (issue 13: a sixth of
    a rehearsal's time on a disk); the night's keeps it."""
    night = Store(f"sqlite:///{tmp_path / 'night.db'}")
    practice = Store(f"sqlite:///{tmp_path / 'practice.db'}", durable=False)
    try:
        with night.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        with practice.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        night.close()
        practice.close()


def test_rehearse_opens_its_database_as_practice(
    tmp_path: Path, demo_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from broadcaster.rehearsal import replay
    from broadcaster.runtime.configuration import load_config

    opened: list[bool] = []
    original = replay.Store

    def recording(url: str, **kwargs: Any) -> Store:
        opened.append(kwargs.get("durable", True))
        return original(url, **kwargs)

    config = load_config(None)
    config = config.with_overrides(cards=config.cards.model_copy(update={"enabled": False}))
    monkeypatch.setattr(replay, "Store", recording)
    replay.rehearse(config, demo_files[0], tmp_path / "out", speed=None)
    assert opened == [False]


def test_every_accounts_pause_and_wait_are_read_in_one_statement(tmp_path: Path) -> None:
    """The dispatcher asks for every account's pause and platform wait at each turn (issue
    13: a third of a rehearsal's statements); one statement answers what per-key reads do."""
    from datetime import UTC, datetime

    from sqlalchemy import event

    from broadcaster.outbox.state import PauseRecord, State

    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    state = State(store)
    at = datetime(2030, 7, 28, 20, tzinfo=UTC)
    state.set_pause("a", PauseRecord("paused by hand", at=at, until=None, by="op"))
    state.block("b", at)
    state.set_pause("c", PauseRecord("cooling down", at=at, until=at, by="broadcaster"))
    state.block("c", at)
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    both = state.pauses_and_blocks(["a", "b", "c", "d"])
    assert len(statements) == 1
    for name in "abcd":
        assert both[name] == (state.pause(name), state.blocked_until(name))
    assert both["d"] == (None, None)
    assert both["a"][0] is not None
    assert both["a"][0].reason == "paused by hand"
    store.close()


def _one_shot(snapshot: Snapshot) -> bytes:
    """How a snapshot was stored before it was packed piece by piece."""
    text = json.dumps(snapshot.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(text.encode(), 1)


def _night(seats: int) -> Snapshot:
    contests = [
        candidate_contest(
            f"c{i}",
            [(f"s{i}a", f"k{i}a", [counts("ru-1", i)]), (f"s{i}b", f"k{i}b", [counts("ru-1", 7)])],
        )
        for i in range(seats)
    ]
    candidates = [candidate(f"k{i}a", f"សុខ ចាន់ធី {i}", "pa") for i in range(seats)]
    candidates += [candidate(f"k{i}b", f"Ana Binti Ali {i}", "pb") for i in range(seats)]
    doc = report(
        contests,
        candidates=candidates,
        units=[unit("ru-1")],
        parties=[party("pa", "Parti Rakyat"), party("pb", "គណបក្ស")],
    )
    return parse(json.dumps(doc).encode(), "nist", default_tz=UTC)


@pytest.mark.parametrize(
    "seats", [0, 1, PACKED_AT_ONCE, PACKED_AT_ONCE + 1, 2 * PACKED_AT_ONCE + 3]
)
def test_a_snapshot_is_stored_as_its_whole_dict_was_a_few_hundred_contests_at_a_time(
    tmp_path: Path, seats: int
) -> None:
    """The same bytes as the whole dict's text compressed at once, so every database written
    before reads the same; and read back from a real database as the snapshot it was."""
    snapshot = _night(seats) if seats else replace(_night(1), contests=())
    assert len(snapshot.contests) == seats
    assert pack_snapshot(snapshot) == _one_shot(snapshot)
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.transaction() as conn:
            store.insert_snapshot(
                conn,
                fingerprint="f" * 64,
                source="test",
                name="01.json",
                snapshot=snapshot,
                received_at=datetime.now(UTC),
                shared={},
            )
        assert store.last_accepted() == (snapshot, "01.json")
    finally:
        store.close()


def test_storing_a_large_snapshot_never_holds_its_whole_text(monkeypatch: pytest.MonkeyPatch):
    """A 20,000-seat snapshot's dict, text and bytes at once were the largest moment of a large
    night's memory; piece by piece, storing one holds about a piece's worth."""
    snapshot = _night(2000)
    monkeypatch.setattr(store_module, "PACKED_AT_ONCE", 50)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        packed = pack_snapshot(snapshot)
        piecewise = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        at_once = _one_shot(snapshot)
        whole = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert packed == at_once
    assert piecewise < 0.25 * whole, (piecewise, whole)
