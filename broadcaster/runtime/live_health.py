"""The live channel's health as `status`, /healthz and /metrics show it.

The channel (broadcaster/live/) writes its report to the database every few seconds, so the same
picture is available from the command line, from the daemon's endpoints and from a channel
running in another process. A report older than `STALE_AFTER` means the channel is not running.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `status_lines` serves `broadcaster status` without the database's libraries
    from broadcaster.outbox.store import Store

STALE_AFTER = 15.0  # seconds without a report before the channel counts as not running
STATES = ("connecting", "live", "reconnecting", "failed", "stopped")


def live_report(store: Store, now: float | None = None) -> dict[str, Any] | None:
    """The channel's last report, with `running` false when it is stale; None if never run."""
    from broadcaster.outbox.state import State

    report = State(store).live_status()
    if report is None:
        return None
    now = time.time() if now is None else now
    age = now - float(report.get("updated_at", 0))
    report = dict(report)
    report["age"] = round(age, 1)
    if age > STALE_AFTER:
        report["running"] = False
    return report


def status_lines(report: dict[str, Any] | None) -> list[str]:
    """Plain lines for `broadcaster status`."""
    if not report:
        return []
    running = (
        "running" if report.get("running") else f"NOT running (last report {report['age']} s ago)"
    )
    lines = [
        f"live channel: {running}; {report.get('size')} at {report.get('fps')} fps, "
        f"{report.get('frames', 0)} frames, {report.get('late_frames', 0)} late; data as of "
        f"{report.get('as_of') or '-'}"
    ]
    for problem in ("feed_problem", "layout_problem"):
        if report.get(problem):
            lines.append(f"  problem: {report[problem]}")
    for name, d in sorted((report.get("destinations") or {}).items()):
        health = f"; platform: {d['platform_health']}" if d.get("platform_health") else ""
        why = f" ({d['reason']})" if d.get("reason") and d.get("state") != "live" else ""
        lines.append(
            f"  {name} ({d.get('kind')}): {d.get('state')}{why}; "
            f"{d.get('bitrate', 0) / 1e6:.2f} Mbit/s, {d.get('dropped_frames', 0)} frames "
            f"dropped, {max(0, d.get('connects', 0) - 1)} reconnects{health}"
        )
    return lines
