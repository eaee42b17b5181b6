"""The database's schema: a new database is made at the current revision; an existing one must
be at it, or is refused with the command that migrates it (Alembic, `broadcaster db upgrade`).

Revisions live in broadcaster/outbox/migrations/versions, inside the package, so that an
installed wheel can migrate without the source tree. Databases made before Alembic carry their
schema version in kv only (1 or 2): they are stamped at the matching revision, then upgraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, String, Table, create_engine, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from broadcaster.core.paths import sqlite_file
from broadcaster.outbox.store import SCHEMA_VERSION, _insert_ignore, _where, kv, metadata

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")
# Every revision, oldest first, and so the one this code's schema is. Written here so that
# opening a database (every command) does not import Alembic and read its scripts: about 0.3 s
# of each command's start. tests/test_migrations.py checks them against Alembic's own.
REVISIONS = ("0001", "0002", "0003")
HEAD = REVISIONS[-1]
# kv's schema_version of a database made before Alembic -> its revision.
LEGACY = {1: "0001", 2: "0002"}
SCHEMA_LOCK = 0x62726F61  # PostgreSQL advisory lock: one process creates or migrates at a time
UPGRADE = "`broadcaster db upgrade --config FILE` (or `--url URL`)"

# Alembic's own bookkeeping table, as Alembic makes it.
_version_meta = MetaData()
alembic_version = Table(
    "alembic_version", _version_meta, Column("version_num", String(32), primary_key=True)
)


class DatabaseUnusable(RuntimeError):
    """The database cannot be used as it is; the message says why and what puts it right."""


class SchemaMismatch(DatabaseUnusable):
    """The database's schema is not the one this version of broadcaster uses; the message says
    which command puts it right."""


def require_sqlite_folder(url: str) -> Path | None:
    """The SQLite file `url` names, once its folder is known to be there; None when it names
    no plain file. DatabaseUnusable when the folder is missing or not a folder: said plainly,
    not as the driver's "unable to open database file", and never created here (a typo in
    `[database] url` must not start a second, empty night elsewhere)."""
    file = sqlite_file(url)
    if file is None or "mode=memory" in url or str(file).startswith("file:"):
        return None  # in memory, or a `file:` URI (`?uri=true`): SQLite opens it its own way
    folder = file.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DatabaseUnusable(
            f"{file}: the SQLite database's folder {folder} {what} (check `[database] url`, "
            "or make the folder)"
        )
    return file


@dataclass(frozen=True, slots=True)
class Upgrade:
    before: str | None  # the revision found (None: a new, empty database)
    after: str


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # only to migrate (see REVISIONS)

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The revision this version of broadcaster needs."""
    return HEAD


def known_revisions() -> list[str]:
    """Every revision, oldest first."""
    return list(REVISIONS)


def alembic_revisions() -> list[str]:
    """Every revision as Alembic reads them from the scripts, oldest first (for the test that
    keeps REVISIONS true)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def current_revision(conn: Connection) -> str | None:
    """The database's revision: Alembic's, else the one its legacy schema version stands for
    ("schema N" when unknown); None for a new database (or one another process is creating)."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        found = conn.execute(select(alembic_version.c.version_num)).scalars().all()
        if found:
            return str(found[0])
    if "kv" in tables:
        version = conn.execute(select(kv.c.value).where(kv.c.key == "schema_version")).scalar()
        if version is not None:
            return LEGACY.get(int(version), f"schema {version}")
    return None


def prepare(engine: Engine, where: str) -> None:
    """Make a new database at the current revision, or check an existing one is at it (raise
    SchemaMismatch, naming the command to run, when it is older or newer)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            _prepare(conn, where)
        return
    # SQLite: the write lock is taken before anything is read (BEGIN IMMEDIATE waits for it,
    # up to the busy timeout), so two processes opening a new file at once never see each
    # other's tables half made. Python's sqlite3 would otherwise commit each CREATE TABLE on its
    # own and read outside any transaction: one process then found a table without its row and
    # read the newest schema version as "made by a newer broadcaster".
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            _prepare(conn, where)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _prepare(conn: Connection, where: str) -> None:
    found = current_revision(conn)
    wanted = head()
    if found is None:
        metadata.create_all(conn)
        alembic_version.create(conn, checkfirst=True)
        conn.execute(
            _insert_ignore(conn, alembic_version, "version_num").values(version_num=wanted)
        )
        conn.execute(
            _insert_ignore(conn, kv, "key").values(key="schema_version", value=SCHEMA_VERSION)
        )
        found = current_revision(conn)
    if found != wanted:
        raise SchemaMismatch(mismatch(where, found, wanted))


def mismatch(where: str, found: str | None, wanted: str) -> str:
    """What is wrong with a database at `found`, and what to do."""
    if found in known_revisions():
        return (
            f"database {where} has schema revision {found}, older than this version's "
            f"{wanted}: back it up, then run {UPGRADE} before starting broadcaster"
        )
    return (
        f"database {where} has schema revision {found}, made by a newer version of broadcaster "
        f"than this one (which knows up to {wanted}): run that newer version (a database is "
        "never migrated downwards)"
    )


def upgrade(url: str) -> Upgrade:
    """Migrate the database at `url` to the current revision, in place (a new database is made
    by running every revision). Raises SchemaMismatch for a database newer than this code."""
    from alembic import command  # only to migrate (see REVISIONS)

    require_sqlite_folder(url)
    engine = create_engine(url, future=True)
    wanted = head()
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
                conn.commit()
            try:
                before = current_revision(conn)
                conn.commit()
                if before is not None and before not in known_revisions():
                    raise SchemaMismatch(mismatch(_where(url), before, wanted))
                config = alembic_config(conn)
                if before is not None and not _has_version_table(conn):
                    command.stamp(config, before)  # a database from before Alembic
                    conn.commit()
                command.upgrade(config, "head")
                conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})
                    conn.commit()
    finally:
        engine.dispose()
    return Upgrade(before=before, after=wanted)


def revision_at(url: str) -> str | None:
    """The revision of the database at `url` (None when it is new), without changing it."""
    require_sqlite_folder(url)
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


def _has_version_table(conn: Connection) -> bool:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn)
    return context.get_current_revision() is not None
