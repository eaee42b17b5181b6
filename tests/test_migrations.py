"""Schema migrations (broadcaster/outbox/schema.py, Alembic revisions in
broadcaster/outbox/migrations): the revisions applied to an empty database make exactly the
schema the code makes; a version-1 database (from before Alembic) is upgraded in place by
`broadcaster db upgrade`, on SQLite and PostgreSQL; `run` refuses a database older or newer than
the code, naming what to do."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from broadcaster.domain.posts import HoldKind
from broadcaster.outbox.schema import (
    HEAD,
    REVISIONS,
    SchemaMismatch,
    alembic_config,
    alembic_revisions,
    head,
    require_sqlite_folder,
    upgrade,
)
from broadcaster.outbox.store import SCHEMA_VERSION, Store
from tests.conftest import write_config


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_the_revisions_written_in_the_code_are_alembic_s():
    """Opening a database checks its revision against REVISIONS without importing Alembic; a
    new migration must be added there too, or this fails."""
    assert list(REVISIONS) == alembic_revisions()
    assert HEAD == alembic_revisions()[-1] == head()


def test_the_revisions_make_exactly_the_schema_the_code_makes(empty_db: str):
    done = upgrade(empty_db)
    assert (done.before, done.after) == (None, head())
    engine = create_engine(empty_db)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            from broadcaster.outbox.store import metadata

            assert compare_metadata(context, metadata) == []
            version = conn.execute(text("SELECT value FROM kv WHERE key = 'schema_version'"))
            assert int(version.scalar_one()) == SCHEMA_VERSION
    finally:
        engine.dispose()
    Store(empty_db).close()  # and the code accepts it as its own


def _version_1(url: str) -> None:
    """A database as broadcaster made it before Alembic, at schema 1, with three held posts
    whose hold reasons schema 1 wrote as text, one of them test data."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0001")
            conn.execute(text("DROP TABLE alembic_version"))
            conn.commit()
        now = datetime.now(UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO snapshots (id, fingerprint, source, name, accepted, received_at,"
                    " shared) VALUES (1, 'f', 's', 'n', true, :now, :shared)"
                ),
                {"now": now, "shared": '{"election": {"is_test": true}}'},
            )
            conn.execute(
                text(
                    "INSERT INTO events (id, key, kind, at, snapshot_id, data, context, "
                    "created_at) VALUES (1, 'contest/P1/called', 'called', :now, 1, '{}', '{}', "
                    ":now)"
                ),
                {"now": now},
            )
            reasons = [
                "template: x.j2:1: boom | then implausible: votes went down",
                "implausible: votes went down",
                "awaiting approval",
            ]
            for n, reason in enumerate(reasons, 1):
                conn.execute(
                    text(
                        "INSERT INTO posts (id, idempotency_key, event_id, event_key, event_kind,"
                        " account, platform, state, priority, media, attempts, feed_time, "
                        "created_at, updated_at, dry_run, wants_card, hold_reason) VALUES "
                        "(:n, :key, 1, 'contest/P1/called', 'called', 'x', 'x', 'held', 1, '[]',"
                        " 0, :now, :now, :now, true, false, :reason)"
                    ),
                    {"n": n, "key": f"k{n}", "now": now, "reason": reason},
                )
    finally:
        engine.dispose()


def test_a_version_1_database_is_upgraded_in_place(empty_db: str):
    _version_1(empty_db)
    with pytest.raises(SchemaMismatch, match=r"0001, older .*broadcaster db upgrade"):
        Store(empty_db)
    done = upgrade(empty_db)
    assert (done.before, done.after) == ("0001", head())
    store = Store(empty_db)
    try:
        held = {r.id: r for r in store.posts_in_state("held")}
        assert held[1].hold_kind == HoldKind.TEMPLATE
        assert held[1].gate_reason == "implausible: votes went down"
        assert held[2].hold_kind == HoldKind.GATE
        assert held[3].hold_kind == HoldKind.APPROVAL
        assert all(r.test_data for r in held.values())
        assert store.get_state("schema_version") == SCHEMA_VERSION
    finally:
        store.close()
    assert upgrade(empty_db).before == head(), "upgrading again changes nothing"


def test_run_refuses_an_older_database_and_db_upgrade_brings_it_up(
    tmp_path: Path, demo_files: list[Path], run_cli
):
    config = write_config(tmp_path / "c.toml", source=str(demo_files[0]))
    _version_1(f"sqlite:///{tmp_path / 'state.db'}")
    refused = run_cli("run", "--config", str(config), cwd=tmp_path, columns=400)
    assert refused.returncode == 2
    assert "schema revision 0001, older than" in refused.stderr
    assert "broadcaster db upgrade --config FILE" in refused.stderr
    current = run_cli("db", "current", "--config", str(config), cwd=tmp_path, columns=400)
    assert current.returncode == 1
    assert f"schema revision 0001; this version needs {head()}" in current.stdout
    done = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path, columns=400)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from schema revision 0001 to {head()}" in done.stdout
    assert run_cli("db", "current", "--config", str(config), cwd=tmp_path).returncode == 0
    again = run_cli("db", "upgrade", "--config", str(config), cwd=tmp_path, columns=400)
    assert "already at schema revision" in again.stdout


def test_a_database_newer_than_the_code_is_refused_and_never_migrated_down(
    tmp_path: Path, demo_files: list[Path], run_cli
):
    config = write_config(tmp_path / "c.toml", source=str(demo_files[0]))
    db = tmp_path / "state.db"
    Store(f"sqlite:///{db}").close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE alembic_version SET version_num = '0099'")
    conn.commit()
    conn.close()
    refused = run_cli("run", "--config", str(config), cwd=tmp_path, columns=400)
    assert refused.returncode == 2
    assert "made by a newer version of broadcaster" in refused.stderr
    upgraded = run_cli("db", "upgrade", "--url", f"sqlite:///{db}", columns=400)
    assert upgraded.returncode == 2
    assert "never migrated downwards" in upgraded.stderr
    status = run_cli("status", "--config", str(config), cwd=tmp_path, columns=400)
    assert status.returncode == 2
    assert "made by a newer version" in status.stderr


def test_a_database_folder_that_is_not_there_is_said_plainly_and_not_made(
    tmp_path: Path, demo_files: list[Path], run_cli
):
    """A typo in `[database] url`: every command that opens the database says which folder is
    missing, with exit status 2, instead of the driver's traceback; none creates it (a second,
    empty night elsewhere)."""
    config = write_config(
        tmp_path / "c.toml", source=str(demo_files[0]), database="sqlite:///stat/state.db"
    )
    said = f"the SQLite database's folder {tmp_path / 'stat'} does not exist"
    for args in (
        ["run", "--dry-run"],
        ["status"],
        ["status", "--direct"],
        ["outbox", "list"],
        ["pause", "x-test"],
        ["doctor"],
        ["db", "upgrade"],
        ["db", "current"],
    ):
        done = run_cli(*args, "--config", str(config), cwd=tmp_path, columns=400)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr, args
    assert not (tmp_path / "stat").exists()
    (tmp_path / "stat").write_text("a file where the folder should be")
    done = run_cli("status", "--config", str(config), cwd=tmp_path, columns=400)
    assert done.returncode == 2
    assert f"folder {tmp_path / 'stat'} is not a folder" in done.stderr
    # A folder where no file can be made (read-only, or special: a piped configuration's
    # relative path resolves under /proc/PID/fd).
    special = write_config(
        tmp_path / "p.toml", source=str(demo_files[0]), database="sqlite:////proc/self/fd/s.db"
    )
    done = run_cli("status", "--config", str(special), cwd=tmp_path, columns=400)
    assert done.returncode == 2, done.stderr
    assert "the SQLite database cannot be created there" in done.stderr
    assert "Traceback" not in done.stderr
    # A `file:` URI is SQLite's to read (`?uri=true`), not a folder to check.
    require_sqlite_folder("sqlite:///file:nowhere/s.db?mode=ro&uri=true")
