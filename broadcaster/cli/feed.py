"""Checking a results feed before the night."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from broadcaster.cli.app import (
    EXIT_CONFIG,
    config_option,
    err,
    load_config_or_exit,
    main,
    out,
)
from broadcaster.core.config import (
    ConfigError,
)
from broadcaster.core.terminal import safe


@main.group()
def feed() -> None:
    """Check a results feed before the night."""


@feed.command(name="check")
@click.argument("target")
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "nist", "csv", "eml", "mapped"]),
    default=None,
    help="The feed's format (default: the configuration's).",
)
@click.option(
    "--mapping",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A mapping file for a JSON or CSV feed of any shape (docs/feed-format.md).",
)
@click.option("--all", "show_all", is_flag=True, help="List every contest, not the first 40.")
def feed_check(
    target: str,
    config_path: Path | None,
    fmt: str | None,
    mapping: Path | None,
    show_all: bool,
) -> None:
    """Read one snapshot (a FILE or a URL) and print what it understood, or every problem."""
    from broadcaster.ingest.feedcheck import check_feed

    config = load_config_or_exit(config_path)
    feed_settings = config.feed
    if mapping is not None:
        feed_settings = feed_settings.model_copy(
            update={"mapping": str(mapping.resolve()), "format": "mapped"}
        )
    elif fmt is not None:
        feed_settings = feed_settings.model_copy(update={"format": fmt, "mapping": None})
    try:
        config = config.with_overrides(feed=feed_settings)
        result = check_feed(target, config)
    except ConfigError as exc:
        err.print(f"[red]{safe(exc)}[/]", highlight=False)
        raise SystemExit(EXIT_CONFIG) from None
    if result.snapshot is None:
        err.print(
            f"[red]{safe(result.where)}: rejected: {safe(result.problem or '')}[/]",
            highlight=False,
            soft_wrap=True,
        )
        raise SystemExit(1)
    snap = result.snapshot
    tz = config.election.tz
    table = Table(title=f"{safe(snap.election)}: {len(snap.contests)} contests")
    for column in ("contest", "name", "kind", "reported", "seats", "votes", "leader / winners"):
        table.add_column(column, overflow="fold")
    shown = snap.contests if show_all else snap.contests[:40]
    for c in shown:
        if c.called:
            outcome = ", ".join(
                f"{s.name} ({s.seats})" if s.seats else s.name
                for s in c.selections
                if s.winner or s.seats
            )
        else:
            outcome = f"{c.leader.name} ahead" if c.leader else ""
        pct = c.progress.percent
        reported = (
            f"{c.progress.reported}/{c.progress.total} ({pct:.0f} %)"
            if pct is not None
            else str(c.progress.reported or "")
        )
        table.add_row(
            safe(c.id),
            safe(c.name),
            c.kind.value,
            reported,
            "" if c.seats is None else str(c.seats),
            f"{c.total_votes:,} in {len(c.selections)}",
            safe(outcome),
        )
    out.print(table)
    if len(snap.contests) > len(shown):
        out.print(f"... and {len(snap.contests) - len(shown)} more contests (--all)")
    selections = sum(len(c.selections) for c in snap.contests)
    votes = sum(c.total_votes for c in snap.contests)
    called = sum(1 for c in snap.contests if c.called)
    out.print(
        f"{result.size:,} bytes; status {snap.status.value}; generated "
        f"{snap.generated_at.astimezone(tz).isoformat()}; {selections:,} selections; "
        f"{votes:,} votes; {called} of {len(snap.contests)} contests declared; "
        f"{len(snap.parties)} parties; test data: {'yes' if snap.is_test else 'no'}",
        highlight=False,
        soft_wrap=True,
    )
    for finding in result.findings or []:
        out.print(
            f"[yellow]implausible ({finding.check})[/]: {safe(finding.message)}",
            highlight=False,
            soft_wrap=True,
        )


# -- the daemon ------------------------------------------------------------------------------
