"""Previewing posts and checking the templates operators edit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from broadcaster.cli.app import (
    EXIT_CONFIG,
    config_option,
    err,
    load_config_or_exit,
    main,
    out,
)
from broadcaster.content.plurals import count_words
from broadcaster.content.render import RenderError
from broadcaster.content.samples import SampleError, sample_vars
from broadcaster.core.config import (
    LANGUAGES,
    AccountConfig,
    Config,
)
from broadcaster.core.terminal import safe, visible
from broadcaster.domain.events import EventKind
from broadcaster.ingest.parsers import FeedError, reader_for
from broadcaster.publishers.registry import platforms


def _account_for(
    config: Config, platform: str | None, account_name: str | None, lang: str | None
) -> AccountConfig:
    """The account a preview speaks for: the named one, else the first on the platform, else a
    stand-in dry-run account; --lang overrides its language."""
    account = None
    if account_name is not None:
        account = next((a for a in config.accounts if a.name == account_name), None)
        if account is None:
            names = ", ".join(a.name for a in config.accounts)
            err.print(f"[red]no account {account_name!r} in the configuration ({names})[/]")
            raise SystemExit(EXIT_CONFIG)
        if platform is not None and platform != account.platform:
            err.print(f"[red]account {account_name!r} is on {account.platform}, not {platform}[/]")
            raise SystemExit(EXIT_CONFIG)
    elif platform is not None:
        account = next((a for a in config.accounts if a.platform == platform), None)
        if account is None:
            account = AccountConfig(name=f"{platform}-preview", platform=platform)
    else:
        err.print("[red]give --platform or --account[/]")
        raise SystemExit(EXIT_CONFIG)
    if lang is not None:
        account = account.model_copy(update={"language": lang})
    return account


@main.command()
@click.option(
    "--snapshot",
    "snapshot_path",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
)
@click.option("--platform", type=click.Choice(platforms()), default=None)
@click.option("--account", "account_name", default=None, help="Preview as this configured account.")
@click.option("--lang", type=click.Choice(LANGUAGES), default=None, help="Language of the post.")
@click.option(
    "--event",
    "kind",
    type=click.Choice([k.value for k in EventKind]),
    default=None,
    help="Event kind. Default: called if the contest is called, else progress.",
)
@click.option("--contest", "contest_id", default=None, help="Contest id as the feed gives it.")
@click.option(
    "--image",
    "image_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also draw the post's result card into this file.",
)
@config_option
def preview(
    snapshot_path: Path,
    platform: str | None,
    account_name: str | None,
    lang: str | None,
    kind: str | None,
    contest_id: str | None,
    image_path: Path | None,
    config_path: Path | None,
) -> None:
    """Print exactly what an account would post for one snapshot (and draw its card)."""
    from broadcaster.content.cards.draw import CardStyle, render_card
    from broadcaster.content.compose import Composer, locale_for
    from broadcaster.content.samples import display_from
    from broadcaster.ingest.differ import rules_from
    from broadcaster.publishers import capabilities_for

    config = load_config_or_exit(config_path)
    account = _account_for(config, platform, account_name, lang)
    try:
        snapshot = reader_for(config)(snapshot_path.read_bytes())
    except FeedError as exc:
        err.print(f"[red]{safe(snapshot_path)}: {safe(exc.problem)}[/]")
        raise SystemExit(1) from None
    if config.feed.is_test and not snapshot.is_test:
        snapshot = replace(snapshot, is_test=True)
    if kind is None:
        contest = snapshot.contest(contest_id) if contest_id else snapshot.contests[0]
        called = contest is not None and contest.called
        kind = EventKind.CALLED.value if called else EventKind.PROGRESS.value
    composer = Composer(config, dry_run=True)
    try:
        event, variables = sample_vars(
            snapshot,
            EventKind(kind),
            contest_id=contest_id,
            timezone=config.election.timezone,
            rules=rules_from(config),
            election_name=config.election.name,
            issuer=config.election.issuer,
            display=display_from(config),
        )
        parts = composer.compose_text(event, account, variables)
    except (SampleError, RenderError) as exc:
        err.print(f"[red]{safe(exc)}[/]")
        raise SystemExit(1) from None
    for i, part in enumerate(parts):
        if i:
            out.print("\n--- reply ---\n", markup=False)
        if part.title:
            out.print(f"[title] {visible(part.title)}", markup=False)
        out.print(visible(part.text, newlines=True), markup=False)
    if image_path is not None:
        spec = capabilities_for(account.platform).card
        if spec is None:
            err.print(f"[yellow]{account.platform} takes no images; drawing a square card[/]")
            from broadcaster.publishers.base import CardSpec

            spec = CardSpec("PNG", 1080, 1080)
        fmt = "JPEG" if image_path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
        render_card(
            variables,
            replace(spec, format=fmt),
            locale_for(config, account),
            CardStyle.from_config(config.cards, config.base_dir),
            image_path,
        )
        err.print(f"card written to {image_path}")


@main.group()
def templates() -> None:
    """Check the templates operators edit."""


@templates.command(name="lint")
@config_option
@click.option(
    "--snapshot",
    "snapshot_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Check against this snapshot instead of the bundled demo night.",
)
def templates_lint(config_path: Path | None, snapshot_path: Path | None) -> None:
    """Render every template of every account against sample contexts; report path:line."""
    from broadcaster.content.lint import lint_templates

    config = load_config_or_exit(config_path)
    snapshots = None
    if snapshot_path is not None:
        try:
            snapshots = [reader_for(config)(snapshot_path.read_bytes())]
        except FeedError as exc:
            err.print(f"[red]{safe(snapshot_path)}: {safe(exc.problem)}[/]")
            raise SystemExit(1) from None
    report = lint_templates(config, snapshots)
    for problem in report.problems:
        click.echo(problem)
    summary = (
        f"{count_words(report.templates, 'template', 'templates')}, "
        f"{count_words(report.renders, 'render', 'renders')}: "
        f"{count_words(len(report.problems), 'problem', 'problems')}"
    )
    if report.problems:
        err.print(f"[red]{summary}[/]")
        raise SystemExit(1)
    out.print(summary)
