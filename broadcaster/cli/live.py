"""The live results channel."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

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
    ConfigError,
)


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

    setup_logs(ctx, quiet=replay is not None, dry_run=dry_run)
    config = load_config_or_exit(config_path)
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
