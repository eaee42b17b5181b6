"""A burst's events and posts are written through the driver in one executemany, each value
converted as SQLAlchemy converts it (issue 13): what the database holds is byte for byte what
SQLAlchemy's own path writes, duplicates are still left alone, and bad values still refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.posts import HoldKind, NewPost, PostState
from broadcaster.outbox import bulk
from broadcaster.outbox.bulk import insert_many
from broadcaster.outbox.errors import database_outage
from broadcaster.outbox.store import Store, _insert_ignore, events, posts, snapshots

AT = datetime(2030, 7, 28, 20, 15, 30, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _always_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests write a few rows: take the driver path however few they are."""
    monkeypatch.setattr(bulk, "FEW", 0)


BANGKOK = timezone(timedelta(hours=7))


def _events() -> list[tuple[Event, dict[str, Any]]]:
    out = []
    for i in range(6):
        at = AT + timedelta(minutes=i) if i % 2 else (AT + timedelta(minutes=i)).astimezone(BANGKOK)
        data = {"contest": f"c{i}", "winner": "ស្រីមុំ" if i == 3 else None, "final": i % 2 == 0}
        out.append(
            (
                Event(
                    key=f"called/c{i}", kind=EventKind.CALLED, at=at, contest_id=f"c{i}", data=data
                ),
                {"parties": {"p": {"name": "Parti Ujian", "votes": i}}} if i else {},
            )
        )
    return out


def _posts(events: list[tuple[Event, dict[str, Any]]]) -> list[NewPost]:
    rows = []
    for n, (ev, _) in enumerate(events):
        for account, platform in (("x-test", "x"), ("fb-test", "facebook")):
            held = n == 2 and platform == "x"
            rows.append(
                NewPost(
                    idempotency_key=f"{ev.key}/{platform}/{account}",
                    event_key=ev.key,
                    account=account,
                    platform=platform,
                    text=None if n == 4 else f"Keputusan {ev.contest_id}: menang ✓",
                    media=("card.png",) if n == 1 else (),
                    dry_run=n % 3 == 0,
                    state=PostState.HELD if held else PostState.PENDING,
                    hold_reason="held by the gate" if held else None,
                    hold_kind=HoldKind.GATE if held else None,
                    title="Batu Sapi" if platform == "facebook" else None,
                    wants_card=n == 5,
                )
            )
    rows.append(rows[0])  # a duplicate key: left alone
    return rows


def _snapshot(conn: Any) -> int:
    """A snapshot for the events to belong to."""
    values = {"fingerprint": "f", "source": "test", "name": "n", "accepted": True}
    result = conn.execute(snapshots.insert().values(**values, received_at=AT, shared={}))
    return int(result.inserted_primary_key[0])


def _write(tmp_path: Path, name: str, fast: bool, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Write the same events and posts through one path; the raw stored rows of both tables."""
    from broadcaster.outbox import store as store_module

    if not fast:

        def through_sqlalchemy(conn: Any, statement: Any, _table: Any, rows: Any) -> int:
            result = conn.execute(statement, list(rows))
            return int(result.rowcount)

        monkeypatch.setattr(store_module, "insert_many", through_sqlalchemy)
    else:
        monkeypatch.setattr(store_module, "insert_many", insert_many)
    store = Store(f"sqlite:///{tmp_path / name}")
    evs = _events()
    new_posts = _posts(evs)
    with store.transaction() as conn:
        ids = store.insert_events(conn, _snapshot(conn), evs)
        added = store.insert_posts(
            conn, new_posts, ids, {ev.key: ev for ev, _ in evs}, test_data=True
        )
        assert added == len(new_posts) - 1
    with store.engine.connect() as conn:
        raw = [
            conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").all()  # noqa: S608
            for table in ("events", "posts")
        ]
    store.close()
    # created_at and updated_at are "now": the same instant is compared by shape only.
    return raw


def _without_now(rows: list[Any], columns: list[str]) -> list[tuple[Any, ...]]:
    skip = {i for i, name in enumerate(columns) if name in ("created_at", "updated_at")}
    return [tuple(v for i, v in enumerate(row) if i not in skip) for row in rows]


def test_the_driver_path_stores_what_sqlalchemy_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _write(tmp_path, "fast.db", True, monkeypatch)
    slow = _write(tmp_path, "slow.db", False, monkeypatch)
    store = Store(f"sqlite:///{tmp_path / 'columns.db'}")
    with store.engine.connect() as conn:
        columns = {
            table: [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]
            for table in ("events", "posts")
        }
    store.close()
    for rows_fast, rows_slow, table in zip(fast, slow, ("events", "posts"), strict=True):
        assert len(rows_fast) == len(rows_slow) > 5
        assert _without_now(rows_fast, columns[table]) == _without_now(rows_slow, columns[table])
    # The times are stored as SQLAlchemy stores them (naive UTC text), whatever their zone.
    at = columns["events"].index("at")
    assert fast[0][0][at] == "2030-07-28 20:15:30.123456"
    assert isinstance(fast[1][0][columns["posts"].index("test_data")], int)


def test_the_driver_path_runs_one_statement_for_all_rows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    statements: list[str] = []
    event.listen(
        store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]), named=False
    )
    evs = _events()
    with store.transaction() as conn:
        ids = store.insert_events(conn, _snapshot(conn), evs)
        statements.clear()
        store.insert_posts(conn, _posts(evs), ids, {e.key: e for e, _ in evs}, test_data=False)
    assert len(statements) == 1
    assert statements[0].startswith("INSERT INTO posts")
    store.close()


def test_a_naive_time_is_still_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    ev = Event(key="called/x", kind=EventKind.CALLED, at=datetime(2030, 1, 1), contest_id="x")
    with (
        pytest.raises(ValueError, match=r"^events\.at cannot store a datetime: .*naive datetime"),
        store.transaction() as conn,
    ):
        store.insert_events(conn, _snapshot(conn), [(ev, {})])
    store.close()


def test_a_value_no_column_takes_is_named_by_column_and_is_the_datas_fault(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    ev = Event(key="called/x", kind=EventKind.CALLED, at=AT, contest_id="x")
    with pytest.raises(bulk.BulkValueError) as caught, store.transaction() as conn:
        store.insert_events(conn, _snapshot(conn), [(ev, {"votes": {1, 2}})])
    message = str(caught.value)
    assert message.startswith("events.context cannot store a dict: TypeError:"), message
    assert "{1, 2}" not in message  # the value itself is not shown
    assert not database_outage(caught.value)  # rejected, never tried again forever
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
    store.close()


def test_columns_the_rows_leave_out_take_sqlalchemys_path(tmp_path: Path) -> None:
    """A row without every column the INSERT fills (defaults) is written by SQLAlchemy."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    evs = _events()
    with store.transaction() as conn:
        ids = store.insert_events(conn, _snapshot(conn), evs)
        row = {
            "idempotency_key": "k",
            "event_id": ids[evs[0][0].key],
            "event_key": evs[0][0].key,
            "event_kind": "called",
            "account": "x-test",
            "platform": "x",
            "state": PostState.PENDING,
            "priority": 1,
            "feed_time": AT,
            "created_at": AT,
            "updated_at": AT,
            "dry_run": True,
            "media": [],
        }
        assert insert_many(conn, _insert_ignore(conn, posts, "idempotency_key"), posts, [row]) == 1
    stored = store.post_by_key("k")
    assert stored.attempts == 0  # from the column's default
    assert stored.wants_card is False
    store.close()


def test_a_few_rows_take_sqlalchemys_cached_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiling the INSERT costs more than SQLAlchemy's cached one for a handful of rows (a
    summary, an announcement): below `FEW` rows the driver path is not taken."""
    from sqlalchemy.engine import Connection

    monkeypatch.setattr(bulk, "FEW", 64)
    driver: list[str] = []
    original = Connection.exec_driver_sql

    def counted(self: Connection, statement: str, *args: Any, **kwargs: Any) -> Any:
        driver.append(statement)
        return original(self, statement, *args, **kwargs)

    monkeypatch.setattr(Connection, "exec_driver_sql", counted)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    evs = _events()
    with store.transaction() as conn:
        ids = store.insert_events(conn, _snapshot(conn), evs)
        added = store.insert_posts(
            conn, _posts(evs), ids, {e.key: e for e, _ in evs}, test_data=False
        )
    assert added == len(_posts(evs)) - 1
    assert not [s for s in driver if s.startswith("INSERT")]
    store.close()


def _sqlite_converter(tmp_path: Path, column_type: Any) -> Callable[[Any], Any]:
    """The bulk path's converter for a column of `column_type`, as on a real SQLite store."""
    from sqlalchemy import Column, MetaData, Table

    table = Table("t", MetaData(), Column("v", column_type))
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    with store.engine.connect() as conn:
        convert = bulk._converter(table, "v", conn.dialect)
    store.close()
    assert convert is not None
    return convert


def test_equal_times_in_other_zones_or_folds_are_each_converted(tmp_path: Path) -> None:
    """The converter remembers what it made of a value; times that compare equal but differ
    in zone or fold (the repeated hour when the clocks go back) are converted each on its own."""
    from zoneinfo import ZoneInfo

    from broadcaster.outbox.store import UTCDateTime

    convert = _sqlite_converter(tmp_path, UTCDateTime())
    london = ZoneInfo("Europe/London")
    first = datetime(2030, 10, 27, 1, 30, tzinfo=london)  # the first 01:30 (BST)
    second = first.replace(fold=1)  # the second 01:30 (GMT), an hour later
    assert convert(first) != convert(second)
    assert convert(second) == "2030-10-27 01:30:00.000000"
    assert convert(first) == "2030-10-27 00:30:00.000000"


def test_a_value_is_converted_as_itself_whatever_was_converted_before_it(tmp_path: Path) -> None:
    """The conversion of the value converted just before is reused when the value is the
    very same object (grouped rows repeat one `created_at`, one event's time): an equal value
    of another type (1 after True) is converted on its own, and an unhashable one (a list) is
    converted each time, even when it is the same object changed in between."""
    from sqlalchemy import JSON

    convert = _sqlite_converter(tmp_path, JSON())
    assert [convert(v) for v in (True, 1, 1, True, 1.0, (), ())] == [
        "true",
        "1",
        "1",
        "true",
        "1.0",
        "[]",
        "[]",
    ]
    media = ["a.png"]
    assert convert(media) == '["a.png"]'
    media.append("b.png")
    assert convert(media) == '["a.png", "b.png"]'
