"""The operator console: serving it and managing its users."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from broadcaster.cli.app import (
    config_option,
    err,
    load_config_or_exit,
    main,
    out,
    setup_logs,
)
from broadcaster.core.terminal import safe


@main.group(name="console", invoke_without_command=True)
@config_option
@click.pass_context
def console_cmd(ctx: click.Context, config_path: Path | None) -> None:
    """Serve the operator console ([console] in the configuration); or manage its users."""
    ctx.ensure_object(dict)
    ctx.obj["console_config"] = config_path
    if ctx.invoked_subcommand is not None:
        return
    import signal
    import threading

    from broadcaster.console.server import ConsoleServer
    from broadcaster.console.users import UserStore, users_path

    setup_logs(ctx)
    config = load_config_or_exit(config_path)
    users = UserStore(users_path(config))
    if not users.path.exists():
        err.print(
            f"[yellow]no console users yet ({safe(users.path)}): add one with "
            "`broadcaster console adduser NAME --role admin`[/]"
        )
    try:
        server = ConsoleServer(config, users=users).start()
    except OSError as exc:
        err.print(f"[bold red]console not started[/]: {safe(exc)}")
        raise SystemExit(1) from None
    out.print(f"operator console on {server.url} (Ctrl-C to stop)")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        if not server.thread.is_alive():
            err.print("[bold red]the console stopped unexpectedly[/]")
            raise SystemExit(1)
    server.stop()


def _console_users(config_path: Path | None) -> Any:
    from broadcaster.console.users import UserStore, users_path

    ctx = click.get_current_context()
    config = load_config_or_exit(config_path or (ctx.obj or {}).get("console_config"))
    return UserStore(users_path(config))


def _new_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _console_user_error(exc: Exception) -> None:
    err.print(f"[red]{safe(exc)}[/]")
    raise SystemExit(1) from None


@console_cmd.command(name="adduser")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator", "editor", "admin"]),
    required=True,
    help="viewer reads; operator acts on posts and accounts; editor edits templates; admin "
    "manages users.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@config_option
def console_adduser(name: str, role: str, password_stdin: bool, config_path: Path | None) -> None:
    """Add a console user; the password is asked on the terminal (stored as an argon2 hash)."""
    from broadcaster.console.users import Role, UserError

    users = _console_users(config_path)
    try:
        users.add(name, Role(role), _new_password(password_stdin))
    except UserError as exc:
        _console_user_error(exc)
    out.print(f"console user {safe(name)} added ({role}) in {safe(users.path)}")


@console_cmd.command(name="passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@config_option
def console_passwd(name: str, password_stdin: bool, config_path: Path | None) -> None:
    """Set a console user's password (their open sessions end)."""
    from broadcaster.console.users import UserError

    users = _console_users(config_path)
    try:
        if users.get(name) is None:
            raise UserError(f"no console user {name!r}")
        users.set_password(name, _new_password(password_stdin))
    except UserError as exc:
        _console_user_error(exc)
    out.print(f"password of {safe(name)} changed")


@console_cmd.command(name="deluser")
@click.argument("name")
@config_option
def console_deluser(name: str, config_path: Path | None) -> None:
    """Remove a console user (their open sessions end)."""
    from broadcaster.console.users import UserError

    users = _console_users(config_path)
    try:
        users.remove(name)
    except UserError as exc:
        _console_user_error(exc)
    out.print(f"console user {safe(name)} removed")


@console_cmd.command(name="users")
@config_option
def console_users(config_path: Path | None) -> None:
    """List the console's users and their roles."""
    from broadcaster.console.users import UserError

    users = _console_users(config_path)
    try:
        rows = users.all()
    except UserError as exc:
        _console_user_error(exc)
    table = Table(title=f"Console users ({safe(users.path)})")
    for column in ("name", "role", "since"):
        table.add_column(column)
    for user in rows:
        table.add_row(safe(user.name), user.role.value, user.created)
    out.print(table)
