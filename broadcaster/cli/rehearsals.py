"""Rehearsals: the bundled demo night and replays of recorded nights."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from broadcaster.cli.app import (
    EXIT_CONFIG,
    config_option,
    err,
    load_config_or_exit,
    main,
    out,
    setup_logs,
)
from broadcaster.core.config import (
    Config,
)
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.core.terminal import safe
from broadcaster.delivery.videos import wants_videos
from broadcaster.domain.events import EventKind
from broadcaster.outbox.store import ModeMismatch
from broadcaster.rehearsal.replay import RehearsalReport, rehearse
from broadcaster.runtime.cycle import CycleResult


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
        shorts = None
        if wants_videos(config):  # short result videos for some accounts (docs/live.md)
            from broadcaster.live.shorts import StoreShorts  # PyAV: only when asked for

            shorts = StoreShorts

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
                shorts=shorts,
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
    setup_logs(ctx, quiet=True)
    config = load_config_or_exit(None)
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
    setup_logs(ctx, quiet=True)
    config = load_config_or_exit(config_path)
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
