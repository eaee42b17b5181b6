"""The local stand-in for the platforms, for rehearsals."""

from __future__ import annotations

import click

from broadcaster.cli.app import (
    EXIT_CONFIG,
    err,
    main,
    out,
    setup_logs,
)


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
    """Run the local emulator of the platforms (see broadcaster/rehearsal/emulator/)."""
    import signal
    import threading

    from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, Limits, parse_faults

    setup_logs(ctx)
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
