"""Alerts to the operators: try every destination before the night."""

from __future__ import annotations

from pathlib import Path

from broadcaster.cli.app import config_option, err, load_config_or_exit, main, out
from broadcaster.core.terminal import safe


@main.group()
def alerts() -> None:
    """Alerts to the operators ([[alerts]] and [alerting]; docs/operations.md)."""


@alerts.command(name="test")
@config_option
def alerts_test(config_path: Path | None) -> None:
    """Send a test alert to every [[alerts]] destination; one line each, exit 1 if one fails."""
    from broadcaster.alerts.destinations import AlertNotSent, build
    from broadcaster.alerts.model import Alert, Context
    from broadcaster.core.clock import WallClock

    config = load_config_or_exit(config_path)
    clock = WallClock()
    posts = config.path(config.output.posts) or Path("posts.jsonl")
    destinations = build(config, clock, posts.parent)
    if not destinations:
        err.print("[yellow]no [[alerts]] destination is configured (or enabled)[/]")
        raise SystemExit(1)
    alert = Alert(
        kind="test",
        subject="test",
        summary="a test alert: this destination reaches the operators",
        resolve="nothing: `broadcaster alerts test` sent it",
    )
    ctx = Context(
        election=config.election.name or "election",
        mode="TEST",
        console_url=config.alerting.console_url,
        at=clock.now().astimezone(config.election.tz),
    )
    failures = 0
    for dest in destinations:
        label = f"{dest.name} ({type(dest).__name__.removesuffix('Destination').lower()})"
        try:
            dest.send(alert, ctx)
        except AlertNotSent as exc:
            failures += 1
            out.print(f"[red]FAIL[/] {label}: {safe(exc)}")
        else:
            out.print(f"[green]sent[/] {label}")
        finally:
            dest.close()
    raise SystemExit(1 if failures else 0)
