"""The same outbox on PostgreSQL: a throwaway server (tests/conftest.py starts one where the
PostgreSQL binaries are installed, and skips otherwise) carries a whole night exactly as SQLite
does, and several processes can open and write a new database at once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store, events, posts
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import read_jsonl, write_config
from tests.test_store import open_at_once


def night(folder: Path, database: str, files: list[Path]) -> tuple[list[dict], int]:
    """The demo night through a real pipeline and dispatcher on `database`; returns what the
    dry-run publishers posted (all of it, since the first night in `folder`) and the events."""
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
    finally:
        store.close()
    return read_jsonl(folder / "posts.jsonl"), int(n_events)


def what(records: list[dict]) -> Counter:
    return Counter((r["idempotency_key"], r["text"], r["contest_id"]) for r in records)


def test_a_night_on_postgresql_posts_exactly_what_it_posts_on_sqlite(
    tmp_path: Path, postgres_url: str, demo_files: list[Path]
):
    on_sqlite, sqlite_events = night(tmp_path / "sqlite", "sqlite:///state.db", demo_files)
    on_postgres, postgres_events = night(tmp_path / "pg", postgres_url, demo_files)
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
