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

from broadcaster.content.render import RenderError
from broadcaster.content.samples import SampleError, sample_vars
from broadcaster.core.config import (
    LANGUAGES,
    PLATFORM_NAMES,
    AccountConfig,
    Config,
    ConfigError,
    load_config,
)
from broadcaster.core.logs import setup_logging
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.core.terminal import safe, visible
from broadcaster.domain.events import EventKind
from broadcaster.ingest.parsers import FeedError, reader_for
from broadcaster.outbox.store import ModeMismatch, PostState
from broadcaster.rehearsal.replay import RehearsalReport, rehearse
from broadcaster.runtime.cycle import CycleResult

EXIT_CONFIG = 2
POST_STATES = list(PostState.ALL)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _load(config_path: Path | None) -> Config:
    from broadcaster.core.secrets import register_config_secrets

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{safe(exc, newlines=True)}", highlight=False)
        raise SystemExit(EXIT_CONFIG) from None
    # Before anything is printed: a platform's error stored in the outbox may echo a token.
    register_config_secrets(config)
    return config


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
@click.option(
    "--as",
    "actor",
    default=None,
    metavar="NAME",
    help="Who is acting, for the audit trail (default: $BROADCASTER_OPERATOR or your user).",
)
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str, actor: str | None) -> None:
    """Publish official election results to social media as they come in."""
    ctx.obj = {"log_level": log_level, "log_format": log_format, "actor": actor}


def _actor() -> str:
    from broadcaster.outbox.audit import current_actor

    ctx = click.get_current_context()
    return current_actor((ctx.find_root().obj or {}).get("actor"))


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
    tail_minutes: float = 60.0,
) -> RehearsalReport:
    from broadcaster.rehearsal.replay import replay_files

    try:
        total = len(replay_files(replay))
    except FileNotFoundError as exc:
        err.print(f"[red]{safe(exc)}[/]")
        raise SystemExit(EXIT_CONFIG) from None
    pace = "back to back" if speed is None else f"{speed:g}x the feed's own pace"
    out.print(f"[bold]{title}[/]: {total} snapshots from {safe(replay)}, {pace}")
    out.print(f"Output folder: {safe(out_dir)}  (posts.jsonl, state.db)")
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
                bar.console.print(f"[yellow]rejected {safe(path.name)}[/]: {safe(result.error)}")
            note = {
                "accepted": f"{safe(path.name)}: {result.events} events, {result.posts} posts",
                "duplicate": f"{safe(path.name)}: already processed",
                "rejected": f"{safe(path.name)}: rejected",
            }.get(result.outcome, safe(path.name))
            bar.update(task, advance=1, note=note)

        try:
            report = rehearse(
                config,
                replay,
                out_dir,
                speed=speed,
                on_step=step,
                emulator=emulator,
                tail=tail_minutes * 60,
            )
        except ModeMismatch as exc:
            err.print(f"[bold red]refusing to rehearse[/]: {safe(exc)}")
            raise SystemExit(EXIT_CONFIG) from None
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
    # Event kinds down, platforms across: it stays readable in an 80-column terminal.
    table = Table(title=title, show_lines=False, show_footer=True)
    table.add_column("event", footer="total")
    for platform in platforms:
        total = sum(report.table.get((platform, k), 0) for k in kinds)
        table.add_column(platform, justify="right", footer=str(total))
    table.add_column("total", justify="right", style="bold", footer=str(sum(report.table.values())))
    for kind in kinds:
        counts = [report.table.get((p, kind), 0) for p in platforms]
        table.add_row(kind, *[str(c) for c in counts], str(sum(counts)))
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
        out.print(f"  [yellow]rejected[/] {safe(name)}: {safe(why)}")
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
            out.print(f"  #{post_id} {account} {state}: {safe(why)}")
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
    _demo_channel(config, out_dir)


def _demo_channel(config: Config, out_dir: Path) -> None:
    """Optional last step of the demo: a few seconds of the live results channel over the same
    night, in channel.mp4. It never fails the demo: a problem is one line and the demo is done."""
    import time

    started = time.monotonic()
    try:
        # PyAV (FFmpeg) is loaded here, not at the top: no other part of the demo needs it.
        from broadcaster.live.rehearse import render_replay

        video = render_replay(
            config,
            sorted(DEMO_SNAPSHOTS.glob("*.json")),
            out_dir / "channel.mp4",
            seconds=6,
            tail=2,
            size=(854, 480),
            fps=25,
        )
    except Exception as exc:
        out.print(f"[yellow]live channel preview not written: {type(exc).__name__}: {exc}[/]")
        return
    out.print(
        f"Live channel preview: {video.path} ({video.seconds:.0f} s of video, made in "
        f"{time.monotonic() - started:.1f} s)"
    )


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
@click.option(
    "--tail",
    "tail_minutes",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Minutes of feed time to keep dispatching after the last snapshot (paced posts).",
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
    tail_minutes: float,
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
        config,
        replay,
        out_dir,
        None if fast else speed,
        "Rehearsal",
        emulator=use_emulator,
        tail_minutes=tail_minutes,
    )


# -- the feed ----------------------------------------------------------------------------------


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

    config = _load(config_path)
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


@main.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Force every account to the dry-run publisher.")
@click.pass_context
def run(ctx: click.Context, config_path: Path | None, dry_run: bool) -> None:
    """Run the daemon: poll the feed and publish until SIGTERM or SIGINT."""
    from broadcaster.runtime.daemon import Daemon

    _setup_logs(ctx, dry_run=dry_run)
    config = _load(config_path)
    try:
        daemon = Daemon(config, dry_run=dry_run)
    except ConfigError as exc:
        err.print(f"[bold red]refusing to start[/]: {safe(exc, newlines=True)}")
        raise SystemExit(EXIT_CONFIG) from None
    sys.exit(daemon.run())


# -- the live results channel (broadcaster/live/, docs/live.md) ------------------------------


@main.command(name="live")
@config_option
@click.option("--dry-run", is_flag=True, help="Write the stream to [live] dry_run_file instead.")
@click.option(
    "--rehearse",
    "replay",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Render a recorded night (a folder of snapshots, or one file) into a video file.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="With --rehearse: the MP4 to write (default: ./channel-<name>.mp4).",
)
@click.option(
    "--hls",
    "hls_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="With --rehearse: write an HLS folder (index.m3u8 and segments) instead of an MP4.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="With --rehearse: feed seconds per second of video.",
)
@click.pass_context
def live_cmd(
    ctx: click.Context,
    config_path: Path | None,
    dry_run: bool,
    replay: Path | None,
    out_file: Path | None,
    hls_dir: Path | None,
    speed: float,
) -> None:
    """Stream the live results channel to every [[live.destinations]] until SIGTERM, or render
    a recorded night into a video file (--rehearse)."""
    # PyAV (FFmpeg) is imported inside this command only: loading it costs time and memory
    # that no other command should pay.
    import signal
    import threading

    from broadcaster.outbox.store import Store

    _setup_logs(ctx, quiet=replay is not None, dry_run=dry_run)
    config = _load(config_path)
    if replay is not None:
        from broadcaster.live.rehearse import render_replay
        from broadcaster.rehearsal.replay import replay_files

        if out_file is not None and hls_dir is not None:
            raise click.UsageError("use either --out FILE or --hls DIR, not both")
        target = (hls_dir / "index.m3u8") if hls_dir else out_file
        target = target or Path.cwd() / f"channel-{replay.resolve().stem}.mp4"
        try:
            files = replay_files(replay)
        except FileNotFoundError as exc:
            err.print(f"[red]{exc}[/]")
            raise SystemExit(EXIT_CONFIG) from None
        with Progress(TextColumn("frames"), BarColumn(), MofNCompleteColumn(), console=out) as bar:
            task = bar.add_task("frames", total=None)
            video = render_replay(
                config,
                files,
                target,
                speed=speed,
                on_frame=lambda done, total: bar.update(task, completed=done, total=total),
            )
        out.print(
            f"{video.path}: {video.seconds:.1f} s of video from {video.snapshots} snapshots "
            f"at {video.speed:g}x the feed's pace"
        )
        return
    from broadcaster.live.runner import make_channel

    store = Store(config.database_url)
    stop = threading.Event()
    try:
        channel = make_channel(config, store, dry_run=dry_run, stop=stop)
    except (ConfigError, ValueError) as exc:  # ValueError: an unreadable [live] audio file
        store.close()
        err.print(f"[bold red]refusing to start[/]: {exc}")
        raise SystemExit(EXIT_CONFIG) from None
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        channel.run()
    finally:
        store.close()


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
    from broadcaster.content.cards.draw import CardStyle, render_card
    from broadcaster.content.compose import Composer, locale_for
    from broadcaster.content.samples import display_from
    from broadcaster.publishers import capabilities_for
    from broadcaster.runtime.cycle import rules_from

    config = _load(config_path)
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8089, show_default=True)
@click.option("--faults", default="", help="Faults to inject, e.g. 'x:429:2,tiktok:timeout'.")
@click.option("--x-daily-cap", type=int, default=None, help="Posts per day on X (tier).")
@click.option(
    "--delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds each platform answer waits after the platform acted (a slow platform).",
)
@click.pass_context
def emulator(
    ctx: click.Context,
    host: str,
    port: int,
    faults: str,
    x_daily_cap: int | None,
    delay: float,
) -> None:
    """Run the local emulator of the four platforms (see broadcaster/rehearsal/emulator.py)."""
    import signal
    import threading

    from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, Limits, parse_faults

    _setup_logs(ctx)
    try:
        parse_faults(faults)
    except ValueError as exc:
        err.print(f"[red]--faults: {exc}[/]")
        raise SystemExit(EXIT_CONFIG) from None
    limits = Limits(response_delay=delay)
    if x_daily_cap is not None:
        limits.x_daily = x_daily_cap
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
    from broadcaster.core.clock import WallClock
    from broadcaster.core.secrets import SecretError
    from broadcaster.delivery.dispatcher import publisher_env
    from broadcaster.outbox.store import Store
    from broadcaster.publishers import PublishError, platform_module

    config = _load(config_path)
    store = Store(config.database_url, file_mode=config.output.mode)
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
                out.print(f"[red]FAIL[/] {label}: {type(exc).__name__}: {safe(exc)}")
                continue
            out.print(f"[green]ok[/]   {label}: {safe(line)}")
    finally:
        store.close()
    raise SystemExit(1 if failures else 0)


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

    config = _load(config_path)
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
@click.argument("platform", type=click.Choice(["facebook", "youtube", "tiktok", "x"]))
@click.option(
    "--account", "account_name", default=None, help="The account (default: the only one)."
)
@config_option
def auth(platform: str, account_name: str | None, config_path: Path | None) -> None:
    """Authorise an account and keep its tokens in the token store."""
    from broadcaster.core.clock import WallClock
    from broadcaster.core.secrets import SecretError
    from broadcaster.delivery.dispatcher import publisher_env
    from broadcaster.outbox.store import Store
    from broadcaster.publishers import PublishError, platform_module

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
    store = Store(config.database_url, file_mode=config.output.mode)
    env = publisher_env(config, store, WallClock(), Path(config.output.posts))

    def prompt(text: str, hide: bool = False) -> str:
        return str(click.prompt(text, hide_input=hide))

    try:
        tokens = platform_module(platform).authorize(account, env, prompt)  # type: ignore[union-attr]
        if tokens:
            assert env.tokens is not None
            env.tokens.put(account.name, tokens)
            out.print(f"tokens for {account.name} saved in {env.tokens.path}")
        from broadcaster.outbox.operations import resume

        resume(store, [account.name], actor=_actor(), why="re-authorised")
    except (PublishError, SecretError) as exc:
        err.print(f"[red]{account.name}: {safe(exc)}[/]")
        raise SystemExit(1) from None
    finally:
        store.close()


# -- the outbox and the accounts, while the daemon runs ------------------------------------------


def _store(config_path: Path | None) -> tuple[Config, Any]:
    from broadcaster.outbox.store import Store

    config = _load(config_path)
    return config, Store(config.database_url, file_mode=config.output.mode)


@main.group()
def outbox() -> None:
    """Inspect and act on the outbox (works while the daemon runs)."""


@outbox.command(name="list")
@click.option("--state", type=click.Choice(POST_STATES), default=None)
@click.option("--platform", default=None)
@click.option("--limit", type=int, default=200, show_default=True)
@config_option
def outbox_list(
    state: str | None, platform: str | None, limit: int, config_path: Path | None
) -> None:
    """List posts, newest last."""
    from broadcaster.outbox.operations import list_posts

    config, store = _store(config_path)
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

    config, store = _store(config_path)
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

    _, store = _store(config_path)
    try:
        changes = action(store, ids, actor=_actor())
    except OperatorError as exc:
        err.print(f"[red]{exc}[/]")
        raise SystemExit(1) from None
    finally:
        store.close()
    for change in changes:
        out.print(f"#{change.post_id}: {change.before} -> {change.after}")
    out.print(f"{len(changes)} posts {verb}")


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

    config, store = _store(config_path)
    try:
        names = _accounts_named(config, target)
        pause(store, names, reason, actor=_actor())
    finally:
        store.close()
    out.print(f"paused: {', '.join(names)}")


@main.command(name="resume")
@click.argument("target")
@config_option
def resume_cmd(target: str, config_path: Path | None) -> None:
    """Resume posting to an account, or to every account of a platform."""
    from broadcaster.outbox.operations import resume

    config, store = _store(config_path)
    try:
        names = _accounts_named(config, target)
        resume(store, names, actor=_actor())
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

    config, store = _store(config_path)
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

    config = _load(config_path)
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
    from broadcaster.runtime.status import collect_status

    config = _load(config_path)
    report = collect_status(config)
    _print_status(report)


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
    from broadcaster.live.health import status_lines

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


# -- the operator console (docs/console.md) ---------------------------------------------------
# Its commands import starlette, uvicorn and argon2 inside themselves: the other commands, and
# the daemon without a console, never load a web framework.


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

    _setup_logs(ctx)
    config = _load(config_path)
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
    config = _load(config_path or (ctx.obj or {}).get("console_config"))
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


if __name__ == "__main__":  # pragma: no cover
    main()
