"""Local servers for tests and benchmarks: a free port, and a throwaway PostgreSQL server (from
the PostgreSQL binaries, on 127.0.0.1) with a fresh database per use."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_binary(name: str) -> str | None:
    """A PostgreSQL program on the PATH or in Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).is_file():
            return str(folder / name)
    return None


@contextlib.contextmanager
def throwaway_postgres(prefix: str = "broadcaster-pg-") -> Iterator[str]:
    """A PostgreSQL server of our own on 127.0.0.1, its URL yielded, removed afterwards. Raises
    PostgresUnavailable where it cannot run, RuntimeError (with its log) where it fails."""
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise PostgresUnavailable("PostgreSQL server (initdb, pg_ctl) not installed")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root and there is no postgres user to run PostgreSQL"
            ) from None
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix=prefix))
    if as_user:
        shutil.chown(base, "postgres")
    data, port = base / "data", free_port()
    quiet: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 120}
    try:
        made = subprocess.run(
            [*as_user, initdb, "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8"],
            **quiet,
        )
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed: {made.stderr}")
        options = f"-F -p {port} -c listen_addresses=127.0.0.1 -k {base}"
        ctl = [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w"]
        started = subprocess.run([*ctl, "start"], **quiet)
        if started.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}{log}")
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **quiet)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server: str, prefix: str = "broadcaster_test") -> Iterator[str]:
    """A new, empty database on `server` (a URL to its `postgres` database), its URL yielded,
    dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
