"""The same outbox on PostgreSQL: a throwaway server (tests/conftest.py starts one where the
PostgreSQL binaries are installed, and skips otherwise) carries a whole night exactly as SQLite
does, and several processes can open and write a new database at once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.posts import NewPost, PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox import store as store_module
from broadcaster.outbox.lease import Lease
from broadcaster.outbox.store import Store, events, posts
from broadcaster.runtime import cycle as cycle_module
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import read_jsonl, write_config
from tests.test_bulk_insert import _snapshot
from tests.test_store import open_at_once


def night(
    folder: Path, database: str, files: list[Path], rebuilds: list[int] | None = None
) -> tuple[list[dict], int]:
    """The demo night through a real pipeline and dispatcher on `database`; returns what the
    dry-run publishers posted (all of it, since the first night in `folder`) and the events.
    `rebuilds` gets how many times the dispatcher built its queues from the database."""
    folder.mkdir(parents=True, exist_ok=True)
    config = load_config(write_config(folder / "c.toml", source="f", database=database))
    store = Store(config.database_url)
    clock = FeedClock()
    pipeline = Pipeline(config, store, clock=clock, dry_run=True)
    env = publisher_env(config, store, clock, folder / "posts.jsonl")
    dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
    try:
        for path in files:
            result = pipeline.ingest(make_fetched(path.read_bytes(), path.name), "t")
            if result.snapshot is not None:
                clock.advance_to(result.snapshot.generated_at)
            dispatcher.drain()
        with store.engine.connect() as conn:
            n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
            unsent = conn.execute(
                select(func.count())
                .select_from(posts)
                .where(posts.c.state.not_in([PostState.SENT, PostState.SUPERSEDED]))
            ).scalar_one()
        assert unsent == 0
        if rebuilds is not None:
            rebuilds.append(dispatcher.queues.rebuilds)
    finally:
        store.close()
    return read_jsonl(folder / "posts.jsonl"), int(n_events)


def what(records: list[dict]) -> Counter:
    return Counter((r["idempotency_key"], r["text"], r["contest_id"]) for r in records)


def test_a_night_on_postgresql_posts_exactly_what_it_posts_on_sqlite(
    tmp_path: Path, postgres_url: str, demo_files: list[Path]
):
    rebuilds: list[int] = []
    on_sqlite, sqlite_events = night(
        tmp_path / "sqlite", "sqlite:///state.db", demo_files, rebuilds
    )
    on_postgres, postgres_events = night(tmp_path / "pg", postgres_url, demo_files, rebuilds)
    # New posts reach the dispatcher's queues as they do on SQLite, read by id, not by
    # building the queues again from the whole backlog (posts become visible in id order).
    assert rebuilds[1] == rebuilds[0], rebuilds
    assert on_postgres
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            sent = conn.execute(select(func.count()).select_from(posts)).scalar_one()
        assert sent >= len(on_postgres), "the outbox lives in PostgreSQL"
    finally:
        engine.dispose()
    assert postgres_events == sqlite_events
    assert what(on_postgres) == what(on_sqlite)
    # A restart on the same database with the whole night again: nothing new.
    again, events_after = night(tmp_path / "pg", postgres_url, demo_files)
    assert what(again) == what(on_postgres)
    assert events_after == postgres_events


def test_merges_retirements_and_deferred_renders_run_alike_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    """The statements dispatch steps build once (outbox/store.py's `_statements`): summaries,
    posts retired in bulk, texts rendered when due, the queue read a slice at a time; the
    same outbox after the same steps on both databases."""
    from tests.test_dispatch_cost import _night

    def outcome(folder: Path, database: str) -> tuple[list[tuple[Any, ...]], int]:
        dispatcher, store, _counter = _night(folder, 300, database)
        try:
            account = dispatcher.accounts["x-test"]
            for _ in range(40):
                dispatcher._step(account)
            with store.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        posts.c.idempotency_key,
                        posts.c.state,
                        posts.c.text,
                        posts.c.hold_reason,
                        posts.c.superseded_by.is_not(None),
                    ).order_by(posts.c.idempotency_key)
                ).all()
            return [tuple(r) for r in rows], dispatcher.queues.rebuilds
        finally:
            dispatcher.close()
            store.close()

    on_sqlite, sqlite_rebuilds = outcome(tmp_path / "sqlite", "sqlite:///state.db")
    on_postgres, postgres_rebuilds = outcome(tmp_path / "pg", postgres_url)
    states = Counter(state for _, state, _, _, _ in on_sqlite)
    assert states[PostState.SENT] >= 30
    assert any(merged for *_, merged in on_sqlite)  # summaries replaced posts
    assert any(reason and "summary" not in reason for _, _, _, reason, _ in on_sqlite)
    assert on_postgres == on_sqlite
    assert postgres_rebuilds == sqlite_rebuilds


def test_the_queue_is_read_with_any_limit_on_postgresql(postgres_url: str) -> None:
    """The queue's limit is a bound parameter of the statement built once: typed as
    `.limit(n)` types a large n (BIGINT), not refused as out of an INTEGER's range."""
    store = Store(postgres_url)
    try:
        assert store.queued_posts(0, 2**31) == []
        assert store.queued_posts(5, 2**40) == []
    finally:
        store.close()


def test_processes_opening_a_new_postgresql_database_at_once_all_succeed(postgres_url: str):
    open_at_once(postgres_url)


def test_connections_dropped_by_the_server_are_replaced(postgres_url: str):
    store = Store(postgres_url)
    try:
        store.put_state("k", 1)  # a connection now waits in the pool
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            dropped = conn.execute(
                text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
            ).scalar_one()
        admin.dispose()
        assert dropped >= 1
        store.put_state("k", 2)
        assert store.get_state("k") == 2
    finally:
        store.close()


def _event_and_posts(n: int, count: int = 1) -> tuple[Event, list[NewPost]]:
    at = datetime(2030, 7, 28, 20, n, tzinfo=UTC)
    ev = Event(key=f"called/c{n}", kind=EventKind.CALLED, at=at, contest_id=f"c{n}", data={})
    made = [
        NewPost(
            idempotency_key=f"{ev.key}/x/x-test" + (f"/{i}" if i else ""),
            event_key=ev.key,
            account="x-test",
            platform="x",
            text=f"[TEST] c{n}",
            media=(),
            dry_run=True,
            state=PostState.PENDING,
        )
        for i in range(count)
    ]
    return ev, made


def _add(store: Store, conn: Connection, snapshot_id: int, n: int, count: int = 1) -> int:
    """Add one event and `count` posts of it in `conn`'s transaction, the posts last (as an
    ingest's chunk ends); the first post's id."""
    ev, made = _event_and_posts(n, count)
    ids = store.insert_events(conn, snapshot_id, [(ev, {})])
    found = conn.execute(select(func.coalesce(func.max(posts.c.id), 0))).scalar_one()
    assert store.insert_posts(conn, made, ids, {ev.key: ev}, test_data=True) == count
    return int(found) + 1


def _writer_in_thread(store: Store, snapshot_id: int, n: int) -> tuple[threading.Thread, list[Any]]:
    """Another writer adding post `n` in its own transaction, in a thread; `out` gets the
    post's id or the exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            with store.transaction() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '30s'"))  # never hangs the run
                out.append(_add(store, conn, snapshot_id, n))
        except Exception as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.fixture
def outbox(postgres_url: str) -> Iterator[tuple[Store, int]]:
    """A store on PostgreSQL and a snapshot for events to belong to."""
    store = Store(postgres_url)
    try:
        with store.transaction() as conn:
            snapshot_id = _snapshot(conn)
        yield store, snapshot_id
    finally:
        store.close()


@pytest.fixture
def quick_outbox(outbox: tuple[Store, int], monkeypatch: pytest.MonkeyPatch) -> tuple[Store, int]:
    """`outbox`, with the server told to end a lock-holding transaction after 1 s of silence."""
    monkeypatch.setattr(store_module, "IDLE_IN_TRANSACTION_MS", 1000)
    return outbox


def test_posts_become_visible_in_id_order_on_postgresql(outbox: tuple[Store, int]) -> None:
    # Ids are handed out at insert, commits come later: without the lock, a later
    # transaction's post (a higher id) could be seen first, and a dispatcher reading "the
    # posts above the last id seen" would never queue the earlier one.
    store, snapshot_id = outbox
    first = store.engine.connect()
    trans = first.begin()
    try:
        first_id = _add(store, first, snapshot_id, 1)
        thread, out = _writer_in_thread(store, snapshot_id, 2)
        thread.join(1.0)
        assert thread.is_alive(), "a second writer of posts waits for the first to end"
        assert store.outbox_marker()[0] < first_id  # nothing of either is visible yet
        trans.commit()
    finally:
        first.close()
    thread.join(30)
    assert not thread.is_alive()
    (second_id,) = out
    assert isinstance(second_id, int)
    assert second_id > first_id


def test_a_writer_of_posts_that_stops_answering_is_ended_by_the_server(
    outbox: tuple[Store, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen process (a paused VM, SIGSTOP) holding the lock must not stop every other
    # writer of posts, its successor's included, for as long as its connection lives.
    monkeypatch.setattr(store_module, "IDLE_IN_TRANSACTION_MS", 1000)
    store, snapshot_id = outbox
    frozen = store.engine.connect()
    try:
        trans = frozen.begin()
        # Holds the lock, then says nothing. Several posts, as an ingest's chunk ends: psycopg
        # sends them as a pipeline whose last message stopped the server's idle timer.
        _add(store, frozen, snapshot_id, 1, count=3)
        thread, out = _writer_in_thread(store, snapshot_id, 2)  # its successor
        thread.join(30)
        assert not thread.is_alive()
        assert isinstance(out[0], int), out
        with pytest.raises(DBAPIError):
            trans.commit()  # the server ended that transaction: nothing of it is kept
    finally:
        frozen.close()
    with store.engine.connect() as conn:
        keys = conn.execute(select(posts.c.idempotency_key)).scalars().all()
    assert keys == ["called/c2/x/x-test"]


def test_a_stricter_idle_limit_of_the_servers_is_kept(outbox: tuple[Store, int]) -> None:
    store, snapshot_id = outbox
    ours = f"{store_module.IDLE_IN_TRANSACTION_MS // 1000}s"
    for session, expected in (("0", ours), ("3s", "3s"), ("10min", ours)):
        with store.engine.connect() as conn:
            conn.execute(text(f"SET idle_in_transaction_session_timeout = '{session}'"))
            conn.commit()
            with conn.begin():
                _add(store, conn, snapshot_id, {"0": 7, "3s": 8}.get(session, 9))
                shown = conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
            assert shown == expected
            conn.execute(text("RESET idle_in_transaction_session_timeout"))
            conn.commit()


# -- an instance that freezes must not hold up the others for longer than the idle limit --


def _in_thread(call: Any, name: str | None = None) -> tuple[threading.Thread, list[Any]]:
    """`call` run in a thread (named `name`); `out` gets its result or the exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, out


def _frozen_before_commit(store: Store, thread: str) -> tuple[threading.Event, threading.Event]:
    """Transactions of the thread named `thread` stop answering just before they commit (all
    their statements run, their locks held): `reached` is set then, and they go on once
    `release` is set."""
    reached, release = threading.Event(), threading.Event()

    @sa_event.listens_for(store.engine, "commit")
    def frozen(_conn: Any) -> None:
        if threading.current_thread().name == thread:
            reached.set()
            release.wait(20)

    return reached, release


def _not_held_up(store: Store, frozen_call: Any, waiter: Any) -> Any:
    """Run `frozen_call` in a thread that freezes just before it commits, then `waiter`, which
    needs what the frozen transaction locked; `waiter`'s result, once it is clear that it did
    not wait for the frozen one to be let go and that the server ended the frozen one."""
    reached, release = _frozen_before_commit(store, "frozen")
    frozen, ended = _in_thread(frozen_call, "frozen")
    try:
        assert reached.wait(20), ended  # its statements made, its locks held
        thread, out = _in_thread(waiter)
        thread.join(8)  # the limit is 1 s: far longer means it waited for the release
        assert not thread.is_alive(), "held up by the frozen instance"
    finally:
        release.set()
        frozen.join(30)
    assert isinstance(ended[0], DBAPIError), ended  # the server ended it
    return out[0]


def _pipeline(folder: Path, database: str) -> tuple[Pipeline, Store]:
    config = load_config(write_config(folder / "c.toml", source="f", database=database))
    store = Store(config.database_url)
    return Pipeline(config, store, clock=FeedClock(), dry_run=True), store


def test_an_ingest_renders_its_posts_before_it_opens_its_transaction(
    tmp_path: Path, postgres_url: str, demo_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server ends a transaction that holds the post-ids lock and goes quiet for longer
    # than the idle limit: rendering between its statements (a large night's slow templates)
    # must not count as quiet.
    monkeypatch.setattr(store_module, "IDLE_IN_TRANSACTION_MS", 1000)
    monkeypatch.setattr(cycle_module, "CHUNK", 1)  # one event per chunk: several chunks
    pipeline, store = _pipeline(tmp_path, postgres_url)
    render_all = Pipeline._render_all
    calls = 0

    def slow(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            time.sleep(1.6)  # a second chunk that takes longer than the limit to render
        return render_all(self, *args, **kwargs)

    try:
        for path in demo_files[:3]:
            pipeline.ingest(make_fetched(path.read_bytes(), path.name), "t")
        with store.engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(posts)).scalar_one()
        monkeypatch.setattr(Pipeline, "_render_all", slow)
        path = demo_files[3]  # fourteen new events
        result = pipeline.ingest(make_fetched(path.read_bytes(), path.name), "t")
        assert calls > 2
        assert result.outcome == "accepted", result.error
        with store.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(posts)).scalar_one()
        assert stored - before == result.posts > 0
    finally:
        store.close()


def test_an_ingest_frozen_at_its_first_row_is_ended_and_nothing_of_it_is_lost(
    tmp_path: Path, postgres_url: str, demo_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Frozen just after writing the snapshot's row, before any event or post: the idle
    # limit already applies, so the rows it locked (old snapshots' bodies) are let go.
    monkeypatch.setattr(store_module, "IDLE_IN_TRANSACTION_MS", 1000)
    pipeline, store = _pipeline(tmp_path, postgres_url)
    reached, release = threading.Event(), threading.Event()
    insert_snapshot = store.insert_snapshot

    def frozen(*args: Any, **kwargs: Any) -> int:
        snapshot_id = insert_snapshot(*args, **kwargs)
        reached.set()
        release.wait(20)
        return snapshot_id

    path = demo_files[0]
    monkeypatch.setattr(store, "insert_snapshot", frozen)
    thread, out = _in_thread(
        lambda: pipeline.ingest(make_fetched(path.read_bytes(), path.name), "t")
    )
    try:
        assert reached.wait(20)
        time.sleep(2.5)  # longer than the limit
        release.set()
        thread.join(30)
        assert not thread.is_alive()
        (result,) = out
        # The server ended it: raised as the database failing, so the same bytes are tried
        # again (not rejected, which would have them skipped as seen).
        assert isinstance(result, DBAPIError), result
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(posts)).scalar_one() == 0
        monkeypatch.setattr(store, "insert_snapshot", insert_snapshot)
        again = pipeline.ingest(make_fetched(path.read_bytes(), path.name), "t")
        assert again.outcome == "accepted", again.error
        assert again.posts > 0
    finally:
        release.set()
        store.close()


def test_a_standby_takes_over_from_an_instance_frozen_while_taking_the_lease(
    quick_outbox: tuple[Store, int],
) -> None:
    store, _ = quick_outbox
    first = Lease(store, "a", seconds=1)
    standby = Lease(store, "b", seconds=1)
    # Frozen holding the lease row FOR UPDATE (and the row itself, new and uncommitted).
    assert _not_held_up(store, first.tick, standby.tick) is True


def test_a_standby_takes_over_from_a_leader_frozen_inside_its_fence(
    quick_outbox: tuple[Store, int],
) -> None:
    store, _ = quick_outbox
    leader = Lease(store, "a", seconds=1)
    assert leader.tick()
    standby = Lease(store, "b", seconds=1)

    def claim() -> None:
        with store.engine.begin() as conn:
            leader.check(conn, False)  # the lease row read FOR SHARE

    def take_over() -> bool:
        time.sleep(1.2)  # the leader's lease runs out
        return standby.tick()

    assert _not_held_up(store, claim, take_over) is True
    assert standby.epoch == 2


def test_a_standby_is_not_held_up_by_an_instance_frozen_while_giving_the_lease_up(
    quick_outbox: tuple[Store, int],
) -> None:
    store, _ = quick_outbox
    leaving = Lease(store, "a", seconds=30)
    assert leaving.tick()
    standby = Lease(store, "b", seconds=30)
    # The release was undone with its transaction: a's lease stands.
    assert _not_held_up(store, leaving.release, standby.tick) is False


def test_a_post_being_released_by_a_frozen_instance_is_not_locked_for_long(
    quick_outbox: tuple[Store, int],
) -> None:
    store, snapshot_id = quick_outbox
    with store.transaction() as conn:
        post_id = _add(store, conn, snapshot_id, 1)
        conn.execute(posts.update().where(posts.c.id == post_id).values(state=PostState.HELD))
    _, (fixed,) = _event_and_posts(1)

    def cancel() -> int:
        with store.engine.begin() as conn:
            return conn.execute(
                posts.update().where(posts.c.id == post_id).values(hold_reason="cancel")
            ).rowcount

    assert _not_held_up(store, lambda: store.replace_held(post_id, [fixed]), cancel) == 1


def test_the_idle_limit_is_set_again_after_a_savepoint_that_set_it_is_rolled_back(
    outbox: tuple[Store, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "IDLE_IN_TRANSACTION_MS", 2000)
    store, _ = outbox
    with store.engine.connect() as conn, conn.begin():
        savepoint = conn.begin_nested()
        store_module.limit_idle(conn)
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "2s"
        savepoint.rollback()  # undoes the setting
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "0"
        store_module.limit_idle(conn)
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "2s"
