"""Many rows inserted in one `executemany` through the driver, for a burst's events and posts.

SQLAlchemy converts every value of every row through its column's type one at a time; writing
a 20,000-seat burst (160,000 posts), that cost three times what SQLite itself spent. Here, on
SQLite, the statement is compiled by SQLAlchemy once, each column's converter is the one
SQLAlchemy would use (`dialect_impl(...).bind_processor`), and a value seen before in the same
column (the burst's one `created_at`, an event's time shared by its posts on every account) is
converted once. What reaches the database is the same (tests/test_bulk_insert.py compares).
Other databases take SQLAlchemy's own path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

FEW = 64  # rows below which SQLAlchemy's own path is taken
_NOTHING = object()


class BulkValueError(ValueError):
    """A value its column's converter refused: the data's fault, not the database's (so never
    taken for an outage and tried again forever)."""


def insert_many(
    conn: Connection, statement: Any, table: Table, rows: Sequence[dict[str, Any]]
) -> int:
    """Run `statement` (an INSERT into `table`, e.g. with ON CONFLICT DO NOTHING) for each of
    `rows` (dicts with the same keys: every column the INSERT fills); the rows it added."""
    if not rows:
        return 0
    names = list(rows[0])
    dialect = conn.dialect
    compiled = order = None
    # A handful of rows costs less through SQLAlchemy's cached statement than compiling here.
    if len(rows) >= FEW and dialect.name == "sqlite":
        compiled = statement.compile(dialect=dialect, column_keys=names)
        order = compiled.positiontup
    if compiled is None or order is None or sorted(order) != sorted(names):
        # Few rows, not SQLite's "?" placeholders, or columns filled from defaults.
        result = conn.execute(statement, list(rows))
    else:
        take = itemgetter(*order)
        converted = [
            (i, func)
            for i, func in enumerate(_converter(table, name, dialect) for name in order)
            if func is not None
        ]
        params: list[Any] = []
        for row in rows:
            values = list(take(row)) if len(order) > 1 else [take(row)]
            for i, func in converted:
                values[i] = func(values[i])
            params.append(tuple(values))
        result = conn.exec_driver_sql(compiled.string, params)
    count = result.rowcount
    return count if count is not None and count >= 0 else len(rows)


def _converter(table: Table, name: str, dialect: Any) -> Callable[[Any], Any] | None:
    """The column's value converter as SQLAlchemy applies it (None: values go as they are),
    remembering what it made of each hashable value (a tuple too, so a post's media list given
    as a tuple is written once per distinct list; dicts are converted each time)."""
    processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return None
    memo: dict[Any, Any] = {}
    where = f"{table.name}.{name}"

    def func(value: Any) -> Any:
        try:
            return processor(value)
        except Exception as exc:
            # Named by column, as SQLAlchemy's own path would (its error names the statement);
            # the value itself is not shown: it may be a whole event's data.
            raise BulkValueError(
                f"{where} cannot store a {type(value).__name__}: {type(exc).__name__}: {exc}"
            ) from exc

    last: list[Any] = [_NOTHING, None]  # the hashable value converted last, and to what

    def convert(value: Any) -> Any:
        # Rows come grouped (an event's posts on every account, one `created_at` for all), so
        # the value is most often the very object converted just before: no key to build.
        if value is last[0]:
            return last[1]
        # True and 1 are equal keys but not the same JSON; two times equal but in another zone,
        # or the same clock time either side of a change (fold), may not convert alike.
        key = (type(value), value, getattr(value, "tzinfo", None), getattr(value, "fold", None))
        try:
            made = memo[key]
        except KeyError:
            made = memo[key] = func(value)
        except TypeError:  # unhashable (a dict, a list: it could change), so never remembered
            return func(value)
        last[0], last[1] = value, made
        return made

    return convert
