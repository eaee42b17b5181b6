"""Steering the outbox and the accounts while the daemon runs, and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from broadcaster.cli.app import (
    EXIT_CONFIG,
    acting,
    config_option,
    err,
    main,
    open_store,
    out,
)
from broadcaster.content.plurals import count_words
from broadcaster.core.config import (
    Config,
)
from broadcaster.core.terminal import safe, visible
from broadcaster.domain.posts import ALL_STATES


@main.group()
def outbox() -> None:
    """Inspect and act on the outbox (works while the daemon runs)."""


@outbox.command(name="list")
@click.option("--state", type=click.Choice([s.value for s in ALL_STATES]), default=None)
@click.option("--platform", default=None)
@click.option("--limit", type=int, default=200, show_default=True)
@config_option
def outbox_list(
    state: str | None, platform: str | None, limit: int, config_path: Path | None
) -> None:
    """List posts, newest last."""
    from broadcaster.outbox.operations import list_posts

    config, store = open_store(config_path)
    try:
        rows = list_posts(store, state=state, platform=platform, limit=limit)
    finally:
        store.close()
    table = Table(title=f"Outbox ({len(rows)} posts)")
    for column in ("id", "state", "account", "event", "feed time", "note"):
        table.add_column(column, overflow="fold")
    tz = config.election.tz
    for r in rows:
        note = r.hold_reason or r.last_error or (r.platform_post_id or "")
        table.add_row(
            str(r.id),
            r.state,
            r.account,
            safe(r.event_key),
            r.feed_time.astimezone(tz).strftime("%H:%M"),
            safe(str(note)[:80]),
        )
    out.print(table)


@outbox.command(name="show")
@click.argument("post_id", type=int)
@config_option
def outbox_show(post_id: int, config_path: Path | None) -> None:
    """Show one post in full."""
    from broadcaster.outbox.operations import OperatorError, show_post

    config, store = open_store(config_path)
    try:
        row, event = show_post(store, post_id)
    except OperatorError as exc:
        err.print(f"[red]{exc}[/]")
        raise SystemExit(1) from None
    finally:
        store.close()
    fields = [
        ("post", f"#{row.id} {row.idempotency_key}"),
        ("state", row.state),
        ("account", f"{row.account} ({row.platform}){' dry run' if row.dry_run else ''}"),
        ("event", f"{event.kind} {event.key} at {event.at.astimezone(config.election.tz)}"),
        ("attempts", str(row.attempts)),
        ("reason", row.hold_reason or ""),
        ("last error", row.last_error or ""),
        ("platform id", row.platform_post_id or ""),
        ("url", row.platform_url or ""),
        ("media", ", ".join(row.media or [])),
        ("title", row.title or ""),
        ("thread", row.thread_parent or ""),
        ("replaced by", f"#{row.superseded_by}" if row.superseded_by else ""),
        ("corrects", f"#{row.corrects}" if row.corrects else ""),
    ]
    for name, value in fields:
        if value:
            out.print(f"[bold]{name:>12}[/] {safe(value)}", highlight=False)
    out.print()
    out.print(visible(row.text or "(no text yet)", newlines=True), markup=False)


def _ids(ids: tuple[int, ...], every: bool) -> list[int] | None:
    if every and ids:
        raise click.UsageError("give post ids or --all, not both")
    if not every and not ids:
        raise click.UsageError("give at least one post id, or --all")
    return None if every else list(ids)


def _act(action: Any, config_path: Path | None, ids: list[int] | None, verb: str) -> None:
    from broadcaster.outbox.operations import OperatorError

    _, store = open_store(config_path)
    try:
        changes = action(store, ids, actor=acting())
    except OperatorError as exc:
        err.print(f"[red]{exc}[/]")
        raise SystemExit(1) from None
    finally:
        store.close()
    for change in changes:
        out.print(f"#{change.post_id}: {change.before} -> {change.after}")
    out.print(f"{count_words(len(changes), 'post', 'posts')} {verb}")


@outbox.command(name="hold")
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every pending post.")
@config_option
def outbox_hold(ids: tuple[int, ...], every: bool, config_path: Path | None) -> None:
    """Hold pending posts: they wait until approved."""
    from broadcaster.outbox.operations import hold

    _act(hold, config_path, _ids(ids, every), "held")


@outbox.command(name="approve")
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every held post but those a gate holds.")
@click.option(
    "--include-gated",
    is_flag=True,
    help="With --all: also the posts a plausibility or feed-text gate holds.",
)
@config_option
def outbox_approve(
    ids: tuple[int, ...], every: bool, include_gated: bool, config_path: Path | None
) -> None:
    """Release held posts (one held "in doubt": after checking it is not on the platform)."""
    from broadcaster.outbox.operations import approve, gated_held

    if include_gated and not every:
        raise click.UsageError("--include-gated goes with --all")

    def act(store: Any, targets: list[int] | None, *, actor: str) -> Any:
        changes = approve(store, targets, actor=actor, include_gated=include_gated)
        if targets is None and not include_gated and (left := gated_held(store)):
            err.print(
                f"[yellow]{left} posts held by a gate were left held[/]: review each "
                "(`broadcaster outbox list --state held`), then approve it by id, or use "
                "--all --include-gated"
            )
        return changes

    _act(act, config_path, _ids(ids, every), "approved")


@outbox.command(name="retry")
@click.argument("ids", type=int, nargs=-1, required=True)
@config_option
def outbox_retry(ids: tuple[int, ...], config_path: Path | None) -> None:
    """Send failed posts again."""
    from broadcaster.outbox.operations import retry

    _act(retry, config_path, list(ids), "queued again")


@outbox.command(name="cancel")
@click.argument("ids", type=int, nargs=-1, required=True)
@config_option
def outbox_cancel(ids: tuple[int, ...], config_path: Path | None) -> None:
    """Never send these posts."""
    from broadcaster.outbox.operations import cancel

    _act(cancel, config_path, list(ids), "cancelled")


@outbox.command(name="mark-sent")
@click.argument("post_id", type=int)
@click.option("--url", default=None, help="Where the post is on the platform.")
@config_option
def outbox_mark_sent(post_id: int, url: str | None, config_path: Path | None) -> None:
    """Record a held post as published: you found it on the account (an in-doubt post)."""
    from broadcaster.outbox.operations import mark_sent

    _act(
        lambda store, ids, actor: mark_sent(store, ids[0], url, actor=actor),
        config_path,
        [post_id],
        "marked sent",
    )


def _accounts_named(config: Config, target: str) -> list[str]:
    names = [a.name for a in config.accounts if target in (a.name, a.platform)]
    if not names:
        known = ", ".join(sorted({x for a in config.accounts for x in (a.name, a.platform)}))
        err.print(f"[red]no account or platform {target!r} in the configuration ({known})[/]")
        raise SystemExit(EXIT_CONFIG)
    return names


@main.command(name="pause")
@click.argument("target")
@click.option("--reason", default="paused by an operator", show_default=True)
@config_option
def pause_cmd(target: str, reason: str, config_path: Path | None) -> None:
    """Stop posting to an account, or to every account of a platform."""
    from broadcaster.outbox.operations import pause

    config, store = open_store(config_path)
    try:
        names = _accounts_named(config, target)
        pause(store, names, reason, actor=acting())
    finally:
        store.close()
    out.print(f"paused: {', '.join(names)}")


@main.command(name="resume")
@click.argument("target")
@config_option
def resume_cmd(target: str, config_path: Path | None) -> None:
    """Resume posting to an account, or to every account of a platform."""
    from broadcaster.outbox.operations import resume

    config, store = open_store(config_path)
    try:
        names = _accounts_named(config, target)
        resume(store, names, actor=acting())
    finally:
        store.close()
    out.print(f"resumed: {', '.join(names)}")


@main.command(name="audit")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--actor", default=None, help="Only this person's actions.")
@click.option("--action", default=None, help="Only this action (approve, pause, ...).")
@config_option
def audit_cmd(limit: int, actor: str | None, action: str | None, config_path: Path | None) -> None:
    """Who did what to the outbox and the accounts, and when (newest first)."""
    from broadcaster.outbox.audit import entries

    config, store = open_store(config_path)
    try:
        rows = entries(store, limit=limit, actor=actor, action=action)
    finally:
        store.close()
    table = Table(title=f"Audit trail ({len(rows)} entries, newest first)")
    for column in ("when", "who", "action", "target", "detail"):
        table.add_column(column, overflow="fold")
    tz = config.election.tz
    for r in rows:
        table.add_row(
            r.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
            safe(r.actor),
            r.action,
            safe(r.target),
            safe(r.detail or ""),
        )
    out.print(table)
