"""The database's schema: `broadcaster db upgrade` migrates it in place (Alembic), `db
current` says where it stands."""

from __future__ import annotations

from pathlib import Path

import click

from broadcaster.cli.app import (
    EXIT_CONFIG,
    database_unusable,
    err,
    load_config_or_exit,
    main,
    out,
)
from broadcaster.core.terminal import safe

url_option = click.option(
    "--url",
    default=None,
    metavar="URL",
    help="The database's URL, instead of --config's [database] url (a rehearsal's "
    "sqlite:///OUT/state.db, say).",
)
config_file_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file (TOML) whose [database] url to use.",
)


def _url(config_path: Path | None, url: str | None) -> str:
    if url and config_path:
        raise click.UsageError("give --config or --url, not both")
    if url:
        return url
    if config_path is None:
        raise click.UsageError("give --config FILE (its [database] url) or --url URL")
    return load_config_or_exit(config_path).database_url


def _where(url: str) -> str:
    from broadcaster.outbox.store import _where as where

    return where(url)


@main.group()
def db() -> None:
    """The database's schema (docs/operations.md, 'Upgrading the database')."""


@db.command()
@config_file_option
@url_option
def upgrade(config_path: Path | None, url: str | None) -> None:
    """Migrate the database to this version's schema, in place (back it up first). Safe to run
    again, and while other instances are stopped; a new database is created."""
    from broadcaster.outbox.schema import DatabaseUnusable
    from broadcaster.outbox.schema import upgrade as migrate

    target = _url(config_path, url)
    try:
        done = migrate(target)
    except DatabaseUnusable as exc:
        err.print(f"[bold red]not upgraded[/]: {safe(exc)}", highlight=False)
        raise SystemExit(EXIT_CONFIG) from None
    where = safe(_where(target))
    if done.before == done.after:
        out.print(f"database {where} is already at schema revision {done.after}")
    elif done.before is None:
        out.print(f"database {where} created at schema revision {done.after}")
    else:
        out.print(f"database {where} upgraded from schema revision {done.before} to {done.after}")


@db.command()
@config_file_option
@url_option
def current(config_path: Path | None, url: str | None) -> None:
    """Print the database's schema revision and the one this version needs; exit status 1
    when they differ."""
    from broadcaster.outbox.schema import DatabaseUnusable, head, revision_at

    target = _url(config_path, url)
    try:
        found, wanted = revision_at(target), head()
    except DatabaseUnusable as exc:
        database_unusable(exc)
    out.print(
        f"database {safe(_where(target))}: schema revision {found or 'none (empty)'}; this "
        f"version needs {wanted}"
    )
    if found != wanted:
        raise SystemExit(1)
