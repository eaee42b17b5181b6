"""The night itself: the daemon, the checklist before it, and its status."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from broadcaster.cli.app import (
    EXIT_CONFIG,
    config_option,
    database_unusable,
    err,
    load_config_or_exit,
    main,
    out,
    setup_logs,
)
from broadcaster.core.terminal import safe, visible

if TYPE_CHECKING:
    from broadcaster.runtime.status_socket import DaemonStatus


@main.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Force every account to the dry-run publisher.")
@click.pass_context
def run(ctx: click.Context, config_path: Path | None, dry_run: bool) -> None:
    """Run the daemon: poll the feed and publish until SIGTERM or SIGINT."""
    from broadcaster.core.config import ConfigError
    from broadcaster.delivery.videos import wants_videos
    from broadcaster.runtime.daemon import Companion, Daemon

    setup_logs(ctx, dry_run=dry_run)
    config = load_config_or_exit(config_path)
    companions: list[Companion] = []
    if config.live.enabled:  # the live results channel beside the daemon (docs/live.md)
        from broadcaster.live.runner import LiveCompanion  # PyAV: only when asked for

        companions.append(LiveCompanion(config, dry_run=dry_run))
    if config.console.enabled:
        # Imported only when asked for: the daemon needs no web framework of its own.
        from broadcaster.console.server import ConsoleCompanion

        companions.append(ConsoleCompanion(config))
    shorts = None
    if wants_videos(config):  # short result videos for some accounts (docs/live.md)
        from broadcaster.live.shorts import StoreShorts  # PyAV: only when asked for

        shorts = StoreShorts
    try:
        daemon = Daemon(config, dry_run=dry_run, companions=companions, shorts=shorts)
        code = daemon.run()  # refuses at once beside another daemon on one SQLite file
    except ConfigError as exc:
        err.print(f"[bold red]refusing to start[/]: {safe(exc, newlines=True)}")
        raise SystemExit(EXIT_CONFIG) from None
    sys.exit(code)


# -- the live results channel (broadcaster/live/, docs/live.md) ------------------------------


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The night's configuration file (TOML).",
)
def golive(config_path: Path) -> None:
    """Check everything before the real night: configuration, accounts, feed, templates,
    database and cards; one line each, exit status 1 if anything fails."""
    from broadcaster.runtime.golive import run_checks

    config = load_config_or_exit(config_path)
    checks = run_checks(config)
    for check in checks:
        mark = "[green]PASS[/]" if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {safe(check.name)}: {safe(check.detail)}", highlight=False)
    failed = sum(1 for c in checks if not c.ok)
    if failed:
        out.print(f"[bold red]{failed} of {len(checks)} checks failed: not ready to go live[/]")
        raise SystemExit(1)
    out.print(f"[bold green]all {len(checks)} checks passed: ready to go live[/]")


@main.command()
@config_option
@click.option(
    "--direct",
    is_flag=True,
    help="Read the database here even when the running daemon could answer.",
)
def status(config_path: Path | None, direct: bool) -> None:
    """Show the feed, the outbox and any problems, as the running daemon or the database says."""
    if not direct and _print_daemon_status(config_path):
        return
    from broadcaster.outbox.schema import DatabaseUnusable
    from broadcaster.runtime.status import collect_status

    config = load_config_or_exit(config_path)
    try:
        report = collect_status(config)
    except DatabaseUnusable as exc:
        database_unusable(exc)
    _print_status(report)


def _print_daemon_status(config_path: Path | None) -> bool:
    """Print the running daemon's status; False (nothing printed on standard output) when no
    daemon gave one that prints whole."""
    answer = _daemon_status(config_path)
    if answer is None:
        return False
    # Drawn whole before anything is shown: a report whose inner shape is not this version's
    # (a daemon left running across an upgrade) is read around, not printed half.
    try:
        with out.capture() as drawn:
            _print_status(answer.report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        err.print(
            f"[yellow]status[/]: the daemon's report is not of this version's shape "
            f"({type(exc).__name__}: {safe(exc)}); reading the database instead",
            highlight=False,
        )
        return False
    role = f", {answer.role}" if answer.role else ""
    out.print(
        f"as the running daemon answers (pid {answer.pid}, {safe(answer.instance)}{role}); "
        "`status --direct` reads the database here",
        highlight=False,
    )
    out.file.write(drawn.get())
    out.file.flush()
    return True


def _daemon_status(config_path: Path | None) -> DaemonStatus | None:
    """The running daemon's status for this configuration's database, asked on its socket
    (runtime/status_socket.py) without loading the configuration or the database's libraries;
    None when no daemon answers (why is said when it is worth knowing)."""
    from broadcaster.runtime.status_socket import StatusUnavailable, ask, read_config

    config = read_config(config_path)
    if config is None:
        return None  # the full reading says what is wrong with the file
    try:
        return ask(config)
    except StatusUnavailable as exc:
        err.print(f"[yellow]status[/]: {safe(exc)}; reading the database instead", highlight=False)
        return None


def _print_status(report: dict[str, Any]) -> None:
    last = report["last_snapshot"]
    out.print(f"database: {safe(report['database'])}   now: {report['now']}")
    if last:
        out.print(
            f"last accepted snapshot: {safe(last['name'])} (generated {last['generated_at']}, "
            f"received {last['received_at']})"
        )
    else:
        out.print("no snapshot accepted yet")
    out.print(
        f"snapshots accepted: {report['accepted']}, rejected: {report['rejected']}; "
        f"events: {report['events']}"
    )
    for item in report["recent_rejections"]:
        out.print(
            f"  [yellow]rejected[/] {safe(item['name'])} at {item['at']}: {safe(item['error'])}"
        )
    for problem in report.get("problems", []):
        # Why /healthz is degraded: the feed failing or stale, a configured file gone.
        out.print(f"[bold red]degraded[/]: {safe(problem)}", highlight=False)
    _print_leadership(report.get("leadership"))
    accounts = Table(title="Accounts")
    for column in ("account", "platform", "state", "budget left", "next slot", "why"):
        accounts.add_column(column, overflow="fold")
    for a in report["accounts"]:
        state = a["state"] + (" (dry run)" if a["dry_run"] else "")
        left = "-" if a["budget_left"] is None else str(a["budget_left"])
        accounts.add_row(
            a["name"], a["platform"], state, left, a["next_slot"] or "now", safe(a["reason"])
        )
    out.print(accounts)
    table = Table(title="Outbox")
    table.add_column("account")
    table.add_column("platform")
    for state in report["states"]:
        table.add_column(state, justify="right")
    for (account, platform), counts in sorted(report["outbox"].items()):
        table.add_row(account, platform, *[str(counts.get(s, 0)) for s in report["states"]])
    out.print(table)
    for item in report["held"]:
        out.print(f"  [yellow]held[/] #{item['id']} {item['account']}: {safe(item['reason'])}")
    for problem in report["template_problems"]:
        out.print(f"  [red]template[/] {safe(problem)}")
    from broadcaster.runtime.live_health import status_lines

    for line in status_lines(report.get("live")):
        out.print(visible(line), markup=False, highlight=False)
    if report["implausible_held"]:
        out.print(
            f"[yellow]{report['implausible_held']} posts held by the plausibility gates[/]: "
            "`broadcaster outbox list --state held` to review, then approve or cancel"
        )
    for f in report["implausible"]:
        out.print(
            f"  [yellow]implausible[/] {safe(f['snapshot'])} ({f['check']}, {f['action']}): "
            f"{safe(f['message'])}",
            highlight=False,
        )


def _print_leadership(lead: dict[str, Any] | None) -> None:
    """Who publishes (the lease's holder, since when) and each daemon instance's role."""
    if not lead:
        return
    leader = lead["leader"]
    if leader:
        out.print(
            f"leader: {safe(leader['holder'])} since {leader['since']} (epoch {leader['epoch']}, "
            f"lease until {leader['expires_at']})",
            highlight=False,
        )
    elif lead["instances"] or lead["epoch"]:
        out.print("[bold red]leader: none[/] (no instance holds the lease now)", highlight=False)
    for item in lead["instances"]:
        out.print(
            f"  instance {safe(item['id'])}: {item['role']} since {item['since']} "
            f"(last seen {item['seen_at']})",
            highlight=False,
        )


# -- the operator console (docs/console.md) ---------------------------------------------------
# Its commands import starlette, uvicorn and argon2 inside themselves: the other commands, and
# the daemon without a console, never load a web framework.
