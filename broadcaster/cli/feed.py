"""Checking a results feed before the night."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.cells import cell_len

from broadcaster.cli.app import (
    EXIT_CONFIG,
    config_option,
    err,
    load_config_or_exit,
    main,
    out,
)
from broadcaster.content.plurals import count_words
from broadcaster.core.config import (
    ConfigError,
)
from broadcaster.core.terminal import safe
from broadcaster.domain.model import Contest, ContestState, Snapshot
from broadcaster.domain.status import contest_stage, election_stage
from broadcaster.domain.status import label as status_label

SHOWN_CONTESTS = 40
SHOWN_SELECTIONS = 5


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
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=f"List every contest and every selection, not the first {SHOWN_CONTESTS} contests "
    f"and their top {SHOWN_SELECTIONS}.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the normalised snapshot as JSON (for scripts) instead of the listing.",
)
def feed_check(
    target: str,
    config_path: Path | None,
    fmt: str | None,
    mapping: Path | None,
    show_all: bool,
    as_json: bool,
) -> None:
    """Read one snapshot (a FILE or a URL) and print what it understood, or every problem."""
    from broadcaster.ingest.feedcheck import check_feed, snapshot_json, terminal_json

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
    if as_json:
        click.echo(terminal_json(snapshot_json(snap, result.findings)))
        return
    tz = config.election.tz
    out.print(
        f"[bold]{safe(snap.election)}[/]: {count_words(len(snap.contests), 'contest', 'contests')}"
        f"; {safe(status_label(election_stage(snap), 'en').lower())}",
        highlight=False,
        soft_wrap=True,
    )
    shown = snap.contests if show_all else snap.contests[:SHOWN_CONTESTS]
    for contest in shown:
        _print_contest(snap, contest, None if show_all else SHOWN_SELECTIONS)
    if len(snap.contests) > len(shown):
        more = len(snap.contests) - len(shown)
        out.print(f"... and {count_words(more, 'more contest', 'more contests')} (--all)")
    selections = sum(len(c.selections) for c in snap.contests)
    votes = sum(c.total_votes for c in snap.contests if c.votes_known)
    called = sum(1 for c in snap.contests if c.called)
    states = Counter(c.state.value for c in snap.contests if c.state is not ContestState.NORMAL)
    not_normal = "".join(f"; {n} {state}" for state, n in sorted(states.items()))
    out.print(
        f"{result.size:,} bytes; status {snap.status.value}; generated "
        f"{snap.generated_at.astimezone(tz).isoformat()}; "
        f"{count_words(selections, 'selection', 'selections')}; "
        f"{count_words(votes, 'vote', 'votes')}; {called} of "
        f"{count_words(len(snap.contests), 'contest', 'contests')} declared{not_normal}; "
        f"{count_words(len(snap.parties), 'party', 'parties')}; "
        f"test data: {'yes' if snap.is_test else 'no'}",
        highlight=False,
        soft_wrap=True,
    )
    for finding in result.findings or []:
        out.print(
            f"[yellow]implausible ({finding.check})[/]: {safe(finding.message)}",
            highlight=False,
            soft_wrap=True,
        )


def _print_contest(snap: Snapshot, c: Contest, top: int | None) -> None:
    """A contest's facts on one line, then its selections with their figures, most first."""
    pct = c.progress.percent
    if pct is not None:
        reported = f"{c.progress.reported}/{c.progress.total} ({pct:.0f} %)"
    elif c.progress.reported is not None:
        reported = f"{c.progress.reported} units"
    else:
        reported = "progress unknown"
    facts = [c.kind.value]
    if c.seats is not None:
        facts.append(count_words(c.seats, "seat", "seats"))
    facts += [
        contest_stage(c, snap.status).value,
        c.state.value,
        reported,
        count_words(c.total_votes, "vote", "votes") if c.votes_known else "no vote counts",
    ]
    if c.called:
        facts.append("declared")
    elif c.tied:
        facts.append("tied")
    elif c.leader is not None:
        facts.append(f"{c.leader.name} ahead")
    out.print(f"[bold]{safe(c.id)}[/]  {safe(c.name)}", highlight=False, soft_wrap=True)
    out.print(f"    {safe(' · '.join(facts))}", highlight=False, soft_wrap=True)
    total = c.total_votes
    ranked = c.ranked()
    rows = []
    for s in ranked[:top] if top else ranked:
        name = s.name
        if s.party_id and s.party_id in snap.parties and snap.parties[s.party_id].name != s.name:
            party = snap.parties[s.party_id]
            name += f" ({party.abbreviation or party.name})"
        coalition = snap.coalition_for(s)
        if coalition is not None and coalition.id != s.party_id:
            name += f" [{coalition.abbreviation or coalition.name}]"
        figures = []
        if c.votes_known:
            share = f"{100.0 * s.votes / total:.1f} %" if total else "-"
            figures.append(f"{s.votes:>12,}  {share:>7}")
        if s.seats:
            figures.append(count_words(s.seats, "seat", "seats"))
        if s.winner:
            figures.append("winner")
        rows.append((safe(name), safe("  ".join(figures))))
    # Names padded to one column (by terminal cells: Khmer is narrower than its code points).
    width = min(48, max((cell_len(n) for n, _ in rows), default=0))
    for i, (name, shown) in enumerate(rows, 1):
        pad = " " * max(0, width - cell_len(name))
        out.print(f"    {i:>3}. {name}{pad}  {shown}", highlight=False, soft_wrap=True)
    if top and len(ranked) > top:
        out.print(f"         ... {count_words(len(ranked) - top, 'more', 'more')} (--all)")


# -- the daemon ------------------------------------------------------------------------------
