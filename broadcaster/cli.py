"""The `broadcaster` command."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from broadcaster.config import (
    LANGUAGES,
    PLATFORM_NAMES,
    AccountConfig,
    Config,
    ConfigError,
    load_config,
)
from broadcaster.events import EventKind
from broadcaster.logs import setup_logging
from broadcaster.parsers import FeedError, parse
from broadcaster.paths import DEMO_SNAPSHOTS
from broadcaster.pipeline import CycleResult
from broadcaster.rehearsal import RehearsalReport, rehearse
from broadcaster.render import RenderError
from broadcaster.samples import SampleError, sample_vars

EXIT_CONFIG = 2

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _load(config_path: Path | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{exc}", markup=True, highlight=False)
        raise SystemExit(EXIT_CONFIG) from None


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file (TOML). Default: the bundled rehearsal configuration.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR."
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "text"]),
    default="auto",
    show_default=True,
    help="auto: JSON lines unless writing to a terminal.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str) -> None:
    """Publish official election results to social media as they come in."""
    ctx.obj = {"log_level": log_level, "log_format": log_format}


def _setup_logs(ctx: click.Context, *, quiet: bool = False, **context: Any) -> None:
    fmt = ctx.obj["log_format"]
    level = "WARNING" if quiet and ctx.obj["log_level"].upper() == "INFO" else ctx.obj["log_level"]
    setup_logging(level, json_lines=None if fmt == "auto" else fmt == "json", context=context)


# -- rehearsals ------------------------------------------------------------------------------


def _run_rehearsal(
    config: Config,
    replay: Path,
    out_dir: Path,
    speed: float | None,
    title: str,
    emulator: bool = False,
) -> RehearsalReport:
    from broadcaster.rehearsal import replay_files

    try:
        total = len(replay_files(replay))
    except FileNotFoundError as exc:
        err.print(f"[red]{exc}[/]")
        raise SystemExit(EXIT_CONFIG) from None
    pace = "back to back" if speed is None else f"{speed:g}x the feed's own pace"
    out.print(f"[bold]{title}[/]: {total} snapshots from {replay}, {pace}")
    out.print(f"Output folder: {out_dir}  (posts.jsonl, state.db)")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=out,
        transient=False,
    ) as bar:
        task = bar.add_task("snapshots", total=total, note="")

        def step(path: Path, result: CycleResult) -> None:
            if result.outcome == "rejected":
                bar.console.print(f"[yellow]rejected {path.name}[/]: {result.error}")
            note = {
                "accepted": f"{path.name}: {result.events} events, {result.posts} posts",
                "duplicate": f"{path.name}: already processed",
                "rejected": f"{path.name}: rejected",
            }.get(result.outcome, path.name)
            bar.update(task, advance=1, note=note)

        report = rehearse(config, replay, out_dir, speed=speed, on_step=step, emulator=emulator)
    _print_report(report)
    return report


def _print_report(report: RehearsalReport) -> None:
    kinds = [k.value for k in EventKind]
    platforms = sorted({p for p, _ in report.table})
    title = (
        "Posts sent to the platform emulator"
        if report.emulator is not None
        else "Posts that would have gone out (dry run)"
    )
    table = Table(title=title, show_lines=False)
    table.add_column("platform")
    for kind in kinds:
        table.add_column(kind, justify="right")
    table.add_column("total", justify="right", style="bold")
    for platform in platforms:
        counts = [report.table.get((platform, k), 0) for k in kinds]
        table.add_row(platform, *[str(c) for c in counts], str(sum(counts)))
    out.print(table)
    where = (
        "to the emulator" if report.emulator is not None else f"to {report.out_dir / 'posts.jsonl'}"
    )
    out.print(
        f"{report.snapshots} snapshots: {report.accepted} accepted, "
        f"{len(report.rejected)} rejected, {report.duplicates} already processed. "
        f"{report.events} new events, {report.new_posts} new posts, {report.sent} sent {where}"
    )
    for name, why in report.rejected:
        out.print(f"  [yellow]rejected[/] {name}: {why}")
    if report.emulator is not None:
        received = report.emulator["posts"]
        by_platform: dict[str, int] = {}
        for post in received:
            by_platform[post["platform"]] = by_platform.get(post["platform"], 0) + 1
        summary = ", ".join(f"{k} {v}" for k, v in sorted(by_platform.items())) or "nothing"
        out.print(f"The emulator received {len(received)} posts: {summary}")
    if report.waiting:
        out.print(f"[yellow]{len(report.waiting)} posts still waiting at the end:[/]")
        for post_id, account, state, why in report.waiting[:20]:
            out.print(f"  #{post_id} {account} {state}: {why}")
        if len(report.waiting) > 20:
            out.print(f"  ... and {len(report.waiting) - 20} more (see the outbox in state.db)")


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Output folder. Default: a new temporary folder.",
)
@click.pass_context
def demo(ctx: click.Context, out_dir: Path | None) -> None:
    """Rehearse the bundled fictional election night (dry run, no accounts, no network)."""
    _setup_logs(ctx, quiet=True)
    config = _load(None)
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="broadcaster-demo-"))
    out.print("[bold]All results in this demo are fictional TEST data.[/]")
    _run_rehearsal(config, DEMO_SNAPSHOTS, out_dir, None, "Demo rehearsal")


@main.command(name="rehearse")
@click.argument("replay", type=click.Path(path_type=Path, exists=True))
@config_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Output folder for posts.jsonl and the state database. Default: ./rehearsal-<name>.",
)
@click.option("--fast", is_flag=True, help="Process snapshots back to back.")
@click.option(
    "--emulator",
    "use_emulator",
    is_flag=True,
    help="Post through the real adapters to the local platform emulator instead of dry-run.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Replay N times faster than the snapshots' own timestamps.",
)
@click.pass_context
def rehearse_cmd(
    ctx: click.Context,
    replay: Path,
    config_path: Path | None,
    out_dir: Path | None,
    fast: bool,
    use_emulator: bool,
    speed: float | None,
) -> None:
    """Replay a recorded night (a folder of snapshots, or one file) and show every post."""
    if fast and speed is not None:
        raise click.UsageError("use either --fast or --speed N, not both")
    _setup_logs(ctx, quiet=True)
    config = _load(config_path)
    if out_dir is None:
        out_dir = Path.cwd() / f"rehearsal-{replay.resolve().stem}"
    if not fast and speed is None:
        speed = 1.0
        out.print("Replaying in real time; use --fast or --speed N to go faster.")
    _run_rehearsal(
        config, replay, out_dir, None if fast else speed, "Rehearsal", emulator=use_emulator
    )


# -- the daemon ------------------------------------------------------------------------------


@main.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Force every account to the dry-run publisher.")
@click.pass_context
def run(ctx: click.Context, config_path: Path | None, dry_run: bool) -> None:
    """Run the daemon: poll the feed and publish until SIGTERM or SIGINT."""
    from broadcaster.daemon import Daemon

    _setup_logs(ctx, dry_run=dry_run)
    config = _load(config_path)
    sys.exit(Daemon(config, dry_run=dry_run).run())


# -- operators' tools ------------------------------------------------------------------------


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
            account = AccountConfig(name=f"{platform}-preview", platform=platform)  # type: ignore[arg-type]
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
@click.option("--platform", type=click.Choice(PLATFORM_NAMES), default=None)
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
    from broadcaster.cards import CardStyle, render_card
    from broadcaster.compose import Composer, locale_for
    from broadcaster.pipeline import rules_from
    from broadcaster.publishers import capabilities_for
    from broadcaster.samples import display_from

    config = _load(config_path)
    account = _account_for(config, platform, account_name, lang)
    try:
        snapshot = parse(
            snapshot_path.read_bytes(), config.feed.format, default_tz=config.election.tz
        )
    except FeedError as exc:
        err.print(f"[red]{snapshot_path}: {exc.problem}[/]")
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
        err.print(f"[red]{exc}[/]", markup=True)
        raise SystemExit(1) from None
    for i, part in enumerate(parts):
        if i:
            out.print("\n--- reply ---\n", markup=False)
        if part.title:
            out.print(f"[title] {part.title}", markup=False)
        out.print(part.text, markup=False)
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8089, show_default=True)
@click.option("--faults", default="", help="Faults to inject, e.g. 'x:429:2,tiktok:timeout'.")
@click.option("--x-daily-cap", type=int, default=None, help="Posts per day on X (tier).")
@click.pass_context
def emulator(
    ctx: click.Context, host: str, port: int, faults: str, x_daily_cap: int | None
) -> None:
    """Run the local emulator of the four platforms (see broadcaster/emulator.py)."""
    import signal
    import threading

    from broadcaster.emulator import Emulator, EmulatorServer, Limits, parse_faults

    _setup_logs(ctx)
    try:
        parse_faults(faults)
    except ValueError as exc:
        err.print(f"[red]--faults: {exc}[/]")
        raise SystemExit(EXIT_CONFIG) from None
    limits = Limits() if x_daily_cap is None else Limits(x_daily=x_daily_cap)
    emu = Emulator(limits)
    emu.add_faults(faults)
    server = EmulatorServer(host, port, emu).start()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            "[yellow]warning: the emulator accepts any token; it is reachable off this machine[/]"
        )
    out.print(
        f"platform emulator listening on {server.url} (inspect: {server.url}/_emulator/posts)"
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop()


@main.command()
@config_option
def doctor(config_path: Path | None) -> None:
    """Check every account's credentials, permissions and target; one line each."""
    from broadcaster.clock import WallClock
    from broadcaster.dispatcher import publisher_env
    from broadcaster.publishers import PublishError, platform_module
    from broadcaster.secrets import SecretError
    from broadcaster.store import Store

    config = _load(config_path)
    store = Store(config.database_url)
    env = publisher_env(config, store, WallClock(), Path(config.output.posts))
    failures = 0
    try:
        for account in config.accounts:
            label = f"{account.name} ({account.platform})"
            if account.dry_run or account.platform == "dryrun":
                out.print(f"[dim]--[/] {label}: dry run, not checked against the platform")
                continue
            check = getattr(platform_module(account.platform), "doctor", None)
            try:
                line = check(account, env) if check else "no check for this platform"
            except (PublishError, SecretError) as exc:
                failures += 1
                out.print(f"[red]FAIL[/] {label}: {type(exc).__name__}: {exc}")
                continue
            out.print(f"[green]ok[/]   {label}: {line}")
    finally:
        store.close()
    raise SystemExit(1 if failures else 0)


@main.command()
@click.argument("platform", type=click.Choice(["facebook", "youtube", "tiktok", "x"]))
@click.option(
    "--account", "account_name", default=None, help="The account (default: the only one)."
)
@config_option
def auth(platform: str, account_name: str | None, config_path: Path | None) -> None:
    """Authorise an account and keep its tokens in the token store."""
    from broadcaster.clock import WallClock
    from broadcaster.dispatcher import publisher_env
    from broadcaster.publishers import PublishError, platform_module
    from broadcaster.secrets import SecretError
    from broadcaster.store import Store

    config = _load(config_path)
    candidates = [
        a
        for a in config.accounts
        if a.platform == platform and (account_name is None or a.name == account_name)
    ]
    if len(candidates) != 1:
        err.print(f"[red]name one {platform} account with --account (found {len(candidates)})[/]")
        raise SystemExit(EXIT_CONFIG)
    account = candidates[0]
    store = Store(config.database_url)
    env = publisher_env(config, store, WallClock(), Path(config.output.posts))

    def prompt(text: str, hide: bool = False) -> str:
        return str(click.prompt(text, hide_input=hide))

    try:
        tokens = platform_module(platform).authorize(account, env, prompt)  # type: ignore[union-attr]
        if tokens:
            assert env.tokens is not None
            env.tokens.put(account.name, tokens)
            out.print(f"tokens for {account.name} saved in {env.tokens.path}")
        store.put_state(f"paused:{account.name}", None)
    except (PublishError, SecretError) as exc:
        err.print(f"[red]{account.name}: {exc}[/]")
        raise SystemExit(1) from None
    finally:
        store.close()


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
    from broadcaster.lint import lint_templates

    config = _load(config_path)
    snapshots = None
    if snapshot_path is not None:
        try:
            snapshots = [
                parse(snapshot_path.read_bytes(), config.feed.format, default_tz=config.election.tz)
            ]
        except FeedError as exc:
            err.print(f"[red]{snapshot_path}: {exc.problem}[/]")
            raise SystemExit(1) from None
    report = lint_templates(config, snapshots)
    for problem in report.problems:
        click.echo(problem)
    summary = (
        f"{report.templates} templates, {report.renders} renders: {len(report.problems)} problems"
    )
    if report.problems:
        err.print(f"[red]{summary}[/]")
        raise SystemExit(1)
    out.print(summary)


@main.command()
@config_option
def status(config_path: Path | None) -> None:
    """Show the feed, the outbox and any problems, from the database."""
    from broadcaster.status import collect_status

    config = _load(config_path)
    report = collect_status(config)
    _print_status(report)


def _print_status(report: dict[str, Any]) -> None:
    last = report["last_snapshot"]
    out.print(f"database: {report['database']}")
    if last:
        out.print(f"last accepted snapshot: {last['name']} (generated {last['generated_at']})")
    else:
        out.print("no snapshot accepted yet")
    out.print(f"snapshots accepted: {report['accepted']}, rejected: {report['rejected']}")
    for item in report["recent_rejections"]:
        out.print(f"  [yellow]rejected[/] {item['name']} at {item['at']}: {item['error']}")
    table = Table(title="Outbox")
    table.add_column("account")
    table.add_column("platform")
    for state in report["states"]:
        table.add_column(state, justify="right")
    for (account, platform), counts in sorted(report["outbox"].items()):
        table.add_row(account, platform, *[str(counts.get(s, 0)) for s in report["states"]])
    out.print(table)
    for item in report["held"]:
        out.print(f"  [yellow]held[/] #{item['id']} {item['account']}: {item['reason']}")
    for problem in report["template_problems"]:
        out.print(f"  [red]template[/] {problem}")


if __name__ == "__main__":  # pragma: no cover
    main()
